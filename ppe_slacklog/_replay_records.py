"""JSON lines written by ``JsonFormatter`` back into training-event records.

Used by ``ppe-slacklog replay``. A line holds what the record contract
says (``ppe_event``, ``run_id``, ``epoch``, ...; see
``docs/record-contract.md``) plus ``timestamp``, ``level``, ``logger``,
``message``, the exception's ``exc_type`` / ``exc_message`` /
``traceback``, and the fields a ``ProcessorFilter`` added.

The file does not hold the extension's templates, and the default texts of
start, end, error, interrupted and stopped name *this* process (user, host,
PID, command line), which would be wrong for a replay. So those events get
their text here (``ppe_text``, which a handler sends unless it has a template
of its own for the event): the same headline as the default, without the
identity, and a note on the start message that the thread is a replay.
Trigger events keep the handler's template (by default ppe's
``Epoch #<epoch>``).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from .events import (
    ALERT_ATTR,
    DEFAULT_LOGGER,
    EVENT_FIELDS,
    EVENT_KINDS,
    EXTRA_ATTR,
    RunFacts,
)
from .templates import escape

__all__ = ["ReplayFile", "read_events"]

_STANDARD: Final = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "message",
        *EVENT_FIELDS,
        "exc_type",
        "exc_message",
        "traceback",
    }
)


class ReplayedError(Exception):
    """Stands in for the exception of a replayed ``error`` event.

    Its class name is the original exception's type name; ``{error}`` in a
    template shows the original message.
    """


@dataclass
class ReplayFile:
    """What a JSON-lines file holds, grouped for replay.

    Attributes:
        runs: Training-event records per run id, in file order.
        other: Lines that are not training events (skipped by replay).
        no_run_id: Training events without a run id (skipped: a replay
            could not tell whether they were posted before).
        bad_lines: Line numbers that are not JSON objects.
        files: File names events asked to upload (replay uploads none).
    """

    runs: dict[str, list[logging.LogRecord]] = field(default_factory=dict)
    other: int = 0
    no_run_id: int = 0
    bad_lines: list[int] = field(default_factory=list)
    files: int = 0

    @property
    def events(self) -> int:
        """How many training events the runs hold."""
        return sum(len(records) for records in self.runs.values())


def read_events(lines: Iterable[str | bytes], source: str) -> ReplayFile:
    """Reads JSON lines into records that ``event_of`` reads as training events.

    Args:
        lines: The file's lines (``bytes`` lines are decoded as UTF-8).
        source: The file's name, for the note on a replayed start message.

    Example:
        >>> line = '{"ppe_event": "trigger", "run_id": "r1", "epoch": 2}'
        >>> found = read_events([line, "not json", '{"message": "hi"}'], "e.jsonl")
        >>> [r.epoch for r in found.runs["r1"]], found.other, found.bad_lines
        ([2], 1, [2])
    """
    found = ReplayFile()
    for number, raw in enumerate(lines, start=1):
        try:
            # Bytes (a file opened in binary): a line that is not UTF-8 is a
            # bad line like any other, not the end of the replay.
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            found.bad_lines.append(number)
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            found.bad_lines.append(number)
            continue
        if not isinstance(data, dict):
            found.bad_lines.append(number)
            continue
        if data.get("ppe_event") not in EVENT_KINDS:
            found.other += 1
            continue
        run_id = data.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            found.no_run_id += 1
            continue
        filenames = data.get("filenames")
        found.files += len(filenames) if isinstance(filenames, list) else 0
        found.runs.setdefault(run_id, []).append(_record(data, source))
    return found


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return kind(0)


def _record(data: dict[str, Any], source: str) -> logging.LogRecord:
    kind = str(data["ppe_event"])
    level_name = str(data.get("level") or "info").upper()
    level = logging.getLevelName(level_name)
    attrs: dict[str, Any] = {
        "name": str(data.get("logger") or DEFAULT_LOGGER),
        "levelname": level_name,
        "levelno": level if isinstance(level, int) else logging.INFO,
        "msg": str(data.get("message") or ""),
        "args": (),
        "ppe_event": kind,
        "run_id": data["run_id"],
        "epoch": _number(data.get("epoch", 0), int),
        "iteration": _number(data.get("iteration", 0), int),
        "elapsed_time": _number(data.get("elapsed_time", 0.0), float),
        "observations": dict(data.get("observations") or {}),
        "context": data.get("context"),
        # Files named in the file live where the training ran: replay
        # uploads none (see the module docstring of _cli_replay).
        "filenames": [],
    }
    created = _created(data.get("timestamp"))
    if created is not None:
        attrs["created"] = created
    for name in RunFacts._fields:
        if data.get(name) is not None:
            attrs[name] = data[name]
    if isinstance(data.get(ALERT_ATTR), dict):
        attrs[ALERT_ATTR] = data[ALERT_ATTR]  # an alert's own fields
    extra = {k: v for k, v in data.items() if k not in _STANDARD}
    if extra:
        attrs[EXTRA_ATTR] = extra
    if kind == "error" and data.get("exc_type"):
        error_type = type(str(data["exc_type"]), (ReplayedError,), {})
        error = error_type(str(data.get("exc_message") or ""))
        attrs["exc_info"] = (error_type, error, None)
    text = _text(kind, data, source)
    if text is not None:
        attrs["ppe_text"] = text
    return logging.makeLogRecord(attrs)


def _created(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _duration(seconds: Any) -> str:
    try:
        return str(datetime.timedelta(seconds=int(float(seconds))))
    except (TypeError, ValueError, OverflowError):
        return f"{seconds}s"


def _text(kind: str, data: dict[str, Any], source: str) -> str | None:
    """The replayed text of a non-trigger event (``None``: the handler's)."""
    epoch, iteration = data.get("epoch", 0), data.get("iteration", 0)
    where = f"epoch {escape(str(epoch))}, iteration {escape(str(iteration))}"
    reason = escape(str(data.get("reason") or "the process exited"))
    if kind == "start":
        head = (
            f"🔁 *Training resumed from {where}!*"
            if data.get("resumed")
            else "🏃 *Training started!*"
        )
        when = escape(str(data.get("timestamp") or "at an unknown time"))
        return (
            f"{head}\n_Replayed from `{escape(source)}` by ppe-slacklog; "
            f"logged {when}._"
        )
    if kind == "end":
        elapsed = _duration(data.get("elapsed_time", 0))
        return f"✅ *Training finished!* ({where}, after {elapsed})"
    if kind == "error":
        error_type = escape(str(data.get("exc_type") or "Error"))
        message = escape(str(data.get("exc_message") or ""))
        trace = escape(str(data.get("traceback") or "").strip())
        text = f"❌ *Error during training.*\n{error_type}: {message}"
        return text + (f"\nTraceback:\n```\n{trace}\n```" if trace else "")
    if kind == "interrupted":
        elapsed = _duration(data.get("elapsed_time", 0))
        return (
            f"⚠️ *Training interrupted: {reason}.*\nStopped at {where}, after {elapsed}."
        )
    if kind == "stopped":
        elapsed = _duration(data.get("elapsed_time", 0))
        return (
            f"⏹️ *Training stopped at {where} before its stop trigger; "
            f"{reason}.*\nRan for {elapsed}."
        )
    return None
