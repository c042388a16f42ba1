"""Logging filters for routing and enriching records.

``EventFilter`` chooses training events by kind (send only ``end``,
``error`` and ``interrupted`` to an alerts channel); ``ProcessorFilter`` runs structlog
processors on every record (add the host, the git revision) and attaches
what they add, so that Slack messages, JSON lines and the console all show it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import socket
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from structlog.typing import EventDict, Processor, WrappedLogger

from .events import EVENT_KINDS, EXTRA_ATTR

__all__ = ["EventFilter", "ProcessorFilter", "add_git_revision", "add_host"]


class EventFilter(logging.Filter):
    """Lets through training events of the given kinds (and, optionally, others).

    Args:
        events: Event kinds to let through, any of ``start``, ``trigger``,
            ``end``, ``error``, ``interrupted`` (the run was stopped from
            outside: ``SIGTERM``, ``KeyboardInterrupt``, an uncaught
            exception, ``sys.exit`` with an error status) and ``stopped``
            (the loop ended before its stop trigger and the process exited
            normally), and the alerts ``stall``, ``resume_progress``,
            ``nonfinite`` and ``alert``; all of them by default. An alerts
            channel wants ``[end, error, interrupted]``: a pre-empted run is
            news too (and ``[stall, nonfinite, alert]`` for the alerts).
        others: Whether records that are not training events pass too.

    Example:
        >>> import logging
        >>> only_end = EventFilter(events=["end", "error"])
        >>> only_end.filter(logging.makeLogRecord({"ppe_event": "trigger"}))
        False
        >>> only_end.filter(logging.makeLogRecord({"ppe_event": "end"}))
        True
    """

    def __init__(self, events: Iterable[str] = EVENT_KINDS, others: bool = False):
        super().__init__()
        self.events = frozenset(events)
        unknown = self.events - set(EVENT_KINDS)
        if unknown:
            raise ValueError(
                f"unknown event kind(s) {sorted(unknown)}; use {list(EVENT_KINDS)}"
            )
        self.others = others

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.__dict__.get("ppe_event")
        if kind is None:
            return self.others
        return kind in self.events


def _resolve(processor: Processor | str) -> Processor:
    if not isinstance(processor, str):
        return processor
    path = processor.removeprefix("ext://")
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"processor {processor!r} is not a dotted path")
    resolved: Processor = getattr(importlib.import_module(module), name)
    return resolved


class ProcessorFilter(logging.Filter):
    """Runs structlog processors on each record and attaches what they add.

    The processors see an event dict with ``event`` (the message),
    ``level``, ``logger`` and, for training events, ``ppe_event``, ``run_id``,
    ``epoch`` and ``iteration``. Keys they add or change travel on the record
    as ``record.ppe_extra``: the JSON and console formatters write them as
    fields, Slack messages show them in a footer line, and training-event
    templates can use them by name (``{git_revision}``). Attach it to a
    logger (every handler sees the result) or to a handler.

    Args:
        processors: structlog processors, or dotted paths to them (as
            written in a logging configuration file).

    Example:
        >>> import logging
        >>> def add_team(logger, method, event_dict):
        ...     event_dict["team"] = "vision"
        ...     return event_dict
        >>> record = logging.makeLogRecord({"msg": "hi"})
        >>> ProcessorFilter([add_team]).filter(record)
        True
        >>> record.ppe_extra
        {'team': 'vision'}
    """

    def __init__(self, processors: Sequence[Processor | str] = ()) -> None:
        super().__init__()
        self.processors = [_resolve(p) for p in processors]

    def filter(self, record: logging.LogRecord) -> bool:
        d = record.__dict__
        base: dict[str, Any] = {
            "event": record.msg if isinstance(record.msg, str) else str(record.msg),
            "level": str(record.levelname).lower(),
            "logger": record.name,
        }
        for name in ("ppe_event", "run_id", "epoch", "iteration"):
            if name in d:
                base[name] = d[name]
        event_dict: Any = dict(base)
        method = base["level"]
        try:
            for processor in self.processors:
                event_dict = processor(None, method, event_dict)
        except Exception as exc:  # enriching must never lose the record
            event_dict = {**event_dict, "enrich_error": f"{type(exc).__name__}: {exc}"}
        if not isinstance(event_dict, dict):
            return True
        added = {
            k: v for k, v in event_dict.items() if k not in base or base[k] is not v
        }
        added.pop("event", None)
        if added:
            d[EXTRA_ATTR] = {**d.get(EXTRA_ATTR, {}), **added}
        return True


@functools.cache
def _host() -> str:
    return socket.gethostname()


def add_host(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor adding ``host`` (this machine's name).

    Example:
        >>> "host" in add_host(None, "info", {})
        True
    """
    event_dict.setdefault("host", _host())
    return event_dict


@functools.cache
def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def add_git_revision(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor adding ``git_revision`` (of the working directory).

    Read once per process with ``git rev-parse --short HEAD``; ``unknown``
    outside a git checkout.

    Example:
        >>> "git_revision" in add_git_revision(None, "info", {})
        True
    """
    event_dict.setdefault("git_revision", _git_revision())
    return event_dict
