"""structlog-based formatters for the other sinks: JSON lines and the console.

Both accept any record: training events (with their contract attributes),
plain ``logging`` records, and structlog events routed through the standard
library with ``ProcessorFormatter.wrap_for_formatter``.

Both work in every form ``logging.config`` knows: dictConfig's ``()``
factory (options as keys), and dictConfig's ``class:`` and fileConfig's
``class=``, which pass only ``format``, ``datefmt`` and ``style``: there the
options go in ``format``, as ``name=value`` pairs separated by ``;``
(``format: "colors=false"``, ``format: "processors=mypkg.add_host"``).

Example:
    >>> import logging.config
    >>> logging.config.dictConfig({
    ...     "version": 1,
    ...     "disable_existing_loggers": False,
    ...     "formatters": {"json": {"()": "ppe_slacklog.JsonFormatter"}},
    ...     "handlers": {"file": {"class": "logging.FileHandler",
    ...                           "filename": "events.jsonl", "formatter": "json"}},
    ...     "loggers": {"ppe_slacklog.training": {"handlers": ["file"],
    ...                                           "level": "INFO"}},
    ... })  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import traceback
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ._safetext import describe, format_message, text_of
from .events import EXTRA_ATTR, RunFacts

__all__ = ["ConsoleFormatter", "JsonFormatter", "record_fields"]

# The record contract's attributes, in the order they are written.
_EVENT_FIELDS: Final = (
    "ppe_event",
    "run_id",
    "epoch",
    "iteration",
    "elapsed_time",
    "observations",
    "filenames",
    "context",
    # Alerts' own fields (events.ALERT_ATTR).
    "alert",
    # Set only when they apply (see events.RunFacts).
    *RunFacts._fields,
)
_MAX_REPR: Final = 1000


def _safe(value: Any, depth: int = 0, name: str = "value") -> Any:
    """A JSON-ready copy of ``value``: containers walked, the rest stringified.

    Never raises: a value that fails on the way (a ``context`` whose
    attribute access raises) is written as its ``repr``, or as
    ``[unprintable: name]`` when even that raises.
    """
    if value is None or isinstance(value, (bool, int, str)):
        if type(value) is not str and isinstance(value, str):
            return str.__str__(value)  # a str subclass (a marker): plain text
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON: keep them readable, as strings.
        return value if math.isfinite(value) else str(value)
    if depth > 8:
        return _short_repr(value, name)
    try:
        return _walk(value, depth, name)
    except Exception:
        return _short_repr(value, name)


def _walk(value: Any, depth: int, name: str) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            text = text_of(key, "key")
            out[text] = _safe(item, depth + 1, text)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_safe(v, depth + 1, name) for v in value]
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    numel = getattr(value, "numel", None)
    if callable(item) and (size == 1 or (callable(numel) and numel() == 1)):
        try:
            return _safe(item(), depth + 1, name)  # tensors and NumPy scalars
        except Exception:
            pass
    return _short_repr(value, name)


def _short_repr(value: Any, name: str = "value") -> str:
    # A broken __repr__ must not break the line.
    text = text_of(value, name, repr)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 1] + "…"


def _exception_fields(exc_info: Any) -> dict[str, str]:
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):  # structlog's exc_info=exc
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return {}
    etype, evalue, tb = exc_info
    return {
        "exc_type": etype.__name__,
        "exc_message": text_of(evalue, "error", key=("error", etype.__qualname__)),
        "traceback": "".join(traceback.format_exception(etype, evalue, tb)),
    }


def record_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor adding what a record knows to the event dict.

    Timestamp (ISO 8601, UTC, from the record's creation time), level,
    logger name, the record contract's fields for training events, the
    exception (type, message, traceback) and what a
    :class:`~ppe_slacklog.ProcessorFilter` attached. Every value is made
    JSON-ready. The message goes under ``message``.
    """
    record: logging.LogRecord | None = event_dict.get("_record")
    out: dict[str, Any] = {}
    if record is not None:
        created = datetime.fromtimestamp(record.created, tz=timezone.utc)
        out["timestamp"] = created.isoformat(timespec="milliseconds")
        out["level"] = text_of(record.levelname, "level").lower()
        out["logger"] = text_of(record.name, "logger name")
    out["message"] = _message(event_dict.get("event", ""))
    if record is not None:
        d = record.__dict__
        for name in _EVENT_FIELDS:
            if name in d:
                out[name] = _safe(d[name], name=name)
        out.update(_exception_fields(event_dict.get("exc_info") or record.exc_info))
        extra = _safe(d.get(EXTRA_ATTR) or {}, name=EXTRA_ATTR)
        for key, value in (extra if isinstance(extra, dict) else {}).items():
            out.setdefault(key, value)
    for key, value in event_dict.items():
        if key in ("event", "exc_info", "_record", "_from_structlog"):
            continue
        text = text_of(key, "key")
        out.setdefault(text, _safe(value, name=text))
    # ProcessorFormatter.remove_processors_meta takes these off again.
    out["_record"] = record
    out["_from_structlog"] = event_dict.get("_from_structlog", False)
    return out


def _message(event: Any) -> str:
    return text_of(event, "message")


def _json_renderer(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    # ASCII only: a lone surrogate (an undecodable file name) could not be
    # written to a UTF-8 file, and U+2028 would split the line for some
    # readers. No NaN either: it is not JSON, whoever added it.
    try:
        return json.dumps(
            event_dict, ensure_ascii=True, allow_nan=False, default=_short_repr
        )
    except (ValueError, TypeError):  # NaN, or keys JSON cannot hold
        return json.dumps(_safe(event_dict), ensure_ascii=True, default=_short_repr)


def _printable(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` whose message is text already (no arguments left)."""
    copy = logging.makeLogRecord(record.__dict__)
    msg = record.msg
    if isinstance(msg, str):
        copy.msg = format_message(text_of(msg, "message"), record.args)
    elif not isinstance(msg, Mapping):  # structlog's event dicts stay dicts
        copy.msg = text_of(msg, "message")
    copy.args = ()
    return copy


class _SafeProcessorFormatter(structlog.stdlib.ProcessorFormatter):
    """A ProcessorFormatter whose output is one line, whatever the record."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception:
            pass
        try:
            # Most likely the message could not be made (an argument whose
            # __str__ raises): the same line with the message made total.
            return super().format(_printable(record))
        except Exception as exc:  # never an exception, never a broken line
            return json.dumps(
                {
                    "level": text_of(getattr(record, "levelname", "?"), "level"),
                    "logger": text_of(getattr(record, "name", "?"), "logger name"),
                    "message": _short_repr(getattr(record, "msg", ""), "message"),
                    "format_error": describe(exc),
                },
                ensure_ascii=True,
            )


class JsonFormatter(_SafeProcessorFormatter):
    """One JSON object per line for any record, built on structlog.

    Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
    ``message``; training events add ``ppe_event``, ``run_id``, ``epoch``,
    ``iteration``, ``elapsed_time``, ``observations`` (numbers stay numbers),
    ``filenames`` and ``context``; errors add ``exc_type``, ``exc_message``
    and ``traceback``. Values JSON cannot hold are written as their ``repr``
    (NaN and infinities as strings), so every line loads with ``json.loads``.

    Args:
        fmt: Options, for the configuration forms that pass only ``format``
            (dictConfig ``class:``, fileConfig ``class=``):
            ``"processors=mypkg.mod.fn, mypkg.mod.fn2"``.
        datefmt: Not supported (timestamps are ISO 8601); must be ``None``.
        style: Accepted for ``logging.Formatter`` compatibility; unused.
        validate: Accepted for ``logging.Formatter`` compatibility; unused.
        defaults: Not supported (every field is written); must be empty.
        processors: structlog processors to run before rendering (after the
            record's fields were added), e.g. to add or rename keys; a
            dotted name (``"mypkg.mod.fn"``) is imported.

    Raises:
        ValueError: An unknown option in ``fmt``, an option given twice, a
            ``datefmt`` or ``defaults``.

    Example:
        >>> import logging, json
        >>> record = logging.makeLogRecord(
        ...     {"name": "myproject", "levelname": "WARNING", "msg": "disk full"})
        >>> line = JsonFormatter().format(record)
        >>> json.loads(line)["message"], json.loads(line)["level"]
        ('disk full', 'warning')
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        processors: Sequence[Processor | str] = (),
    ) -> None:
        options = _options(type(self), fmt, datefmt, defaults, ("processors",))
        if "processors" in options:
            if processors:
                raise ValueError(_twice(type(self), "processors"))
            processors = [n for n in options["processors"].split(",") if n.strip()]
        super().__init__(
            processors=[
                record_fields,
                *[_resolve(p) for p in processors],
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _json_renderer,
            ],
            foreign_pre_chain=[],
        )


def _console_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # The summary line already holds epoch, iteration and observations.
    fields = record_fields(_, __, event_dict)
    for name in ("observations", "epoch", "iteration", "elapsed_time", "context"):
        fields.pop(name, None)
    if not fields.get("filenames"):
        fields.pop("filenames", None)
    fields["event"] = fields.pop("message")
    trace = fields.pop("traceback", None)
    fields.pop("exc_message", None)
    fields.pop("exc_type", None)
    if trace:
        fields["exception"] = trace
    return fields


class ConsoleFormatter(_SafeProcessorFormatter):
    """A readable, optionally coloured view of any record, one line each.

    Uses structlog's ``ConsoleRenderer``: time, level, the message (for
    training events the one-line summary), the logger, then key=value pairs
    (``ppe_event``, ``run_id``, what a ProcessorFilter added).

    Args:
        fmt: Options, for the configuration forms that pass only ``format``
            (dictConfig ``class:``, fileConfig ``class=``): ``"colors=false"``
            (``true``, ``false`` or ``auto``).
        datefmt: Not supported (timestamps are ISO 8601); must be ``None``.
        style: Accepted for ``logging.Formatter`` compatibility; unused.
        validate: Accepted for ``logging.Formatter`` compatibility; unused.
        defaults: Not supported (every field is written); must be empty.
        colors: Colour the output; by default only when stderr is a terminal.

    Raises:
        ValueError: An unknown option in ``fmt``, an option given twice, a
            ``datefmt`` or ``defaults``.

    Example:
        >>> import logging
        >>> fmt = ConsoleFormatter(colors=False)
        >>> record = logging.makeLogRecord(
        ...     {"name": "myproject", "levelname": "INFO", "msg": "ready"})
        >>> "ready" in fmt.format(record) and "myproject" in fmt.format(record)
        True
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        colors: bool | None = None,
    ) -> None:
        options = _options(type(self), fmt, datefmt, defaults, ("colors",))
        if "colors" in options:
            if colors is not None:
                raise ValueError(_twice(type(self), "colors"))
            colors = _flag(options["colors"])
        if colors is None:
            colors = sys.stderr.isatty()
        super().__init__(
            processors=[
                _console_fields,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=colors),
            ],
            foreign_pre_chain=[],
        )


# -- options of the configuration forms that pass only format/datefmt/style --

_FLAGS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
    "auto": None,
}


def _options(
    cls: type,
    fmt: str | None,
    datefmt: str | None,
    defaults: Mapping[str, Any] | None,
    known: tuple[str, ...],
) -> dict[str, str]:
    """The ``name=value; ...`` options in ``fmt``; refuses what cannot apply.

    dictConfig's ``class:`` and fileConfig's ``class=`` call a formatter
    class as ``cls(format, datefmt, style[, validate][, defaults=])`` and
    nothing else, so ``format`` is the only place for options there.
    """
    name = cls.__name__
    if datefmt is not None:
        raise ValueError(
            f"{name} writes ISO 8601 timestamps and takes no datefmt (got {datefmt!r})"
        )
    if defaults:
        raise ValueError(f"{name} writes every field and takes no defaults")
    options: dict[str, str] = {}
    for item in (fmt or "").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(
                f"{name} takes no format string; its format holds options as "
                f"'name=value; ...' with name one of {list(known)} (got {fmt!r})"
            )
        if key in options:
            raise ValueError(_twice(cls, key))
        options[key] = value.strip()
    return options


def _twice(cls: type, option: str) -> str:
    return f"{cls.__name__}: {option} is given both as a keyword and in format"


def _flag(value: str) -> bool | None:
    try:
        return _FLAGS[value.lower()]
    except KeyError:
        raise ValueError(
            f"colors must be one of {list(_FLAGS)}, got {value!r}"
        ) from None


def _resolve(processor: Processor | str) -> Processor:
    """``processor``, or the object its dotted name (``pkg.mod.fn``) names."""
    if not isinstance(processor, str):
        return processor
    name = processor.strip().removeprefix("ext://")
    parts = name.replace(":", ".").split(".")
    # The longest importable module prefix, then attributes (as logging.config).
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                found = getattr(found, attr)
        except AttributeError:
            break
        if callable(found):
            return found  # type: ignore[no-any-return]
        break
    raise ValueError(f"processor {name!r} does not name a callable")
