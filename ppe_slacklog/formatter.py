"""Turning log records into Slack message text.

Training events are rendered with the documented templates (the handler's
own, else the ones the extension put on the record); every other record, from
any library or from structlog, becomes one readable message: a level marker,
the logger name, the message and the traceback in a code block.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any, Final

from ._safetext import (
    Unprintable,
    describe,
    discard_shown_since,
    format_message,
    replay_shown,
    shown,
    text_of,
    warn_unprintable,
)
from .events import (
    ALERT_ATTR,
    ALERT_KINDS,
    EXTRA_ATTR,
    EventKind,
    ManagerSnapshot,
    RunFacts,
    TrainingEvent,
    event_of,
)
from .templates import (
    Template,
    alert_text,
    default_text,
    escape,
    escaped_view,
    render_template,
    renders_at_event,
    template_fields,
)

__all__ = ["LEVEL_MARKERS", "UNSET", "SlackFormatter"]

#: One emoji per level, so the severity of a plain record reads at a glance.
LEVEL_MARKERS: Final[Mapping[int, str]] = {
    logging.DEBUG: "🔍",
    logging.INFO: "ℹ️",
    logging.WARNING: "⚠️",
    logging.ERROR: "❌",
    logging.CRITICAL: "🔥",
}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Use the template the record carries" (``None`` means "do not post").
UNSET: Final = _Unset()

# structlog keys that are bookkeeping, not content, when an event dict reaches
# a stdlib handler through ``ProcessorFormatter.wrap_for_formatter``.
_STRUCTLOG_INTERNAL: Final = frozenset(
    {"event", "level", "logger", "timestamp", "_record", "_from_structlog"}
)


# ManagerSnapshot fields that hold numbers (max_epochs: checked to be an int).
_PLAIN_SNAPSHOT_FIELDS: Final = frozenset(
    {"epoch", "iteration", "epoch_detail", "elapsed_time", "max_epochs"}
)


def _safe_snapshot(manager: ManagerSnapshot, template: Template) -> Any:
    """The snapshot with its text escaped, for format strings that use it.

    Its numbers need no escaping; reading them from the tuple directly keeps
    the common ``{manager.epoch}`` cheap on the training thread.
    """
    if not isinstance(template, str) or "manager" not in template:
        return None
    if type(manager) is not ManagerSnapshot or not (
        manager.max_epochs is None or type(manager.max_epochs) is int
    ):
        return None
    fields = template_fields(template)
    attrs = None if fields is None else fields.manager_attrs
    if attrs is not None and attrs <= _PLAIN_SNAPSHOT_FIELDS:
        return manager  # only numbers are read: nothing to escape
    return manager._replace(
        out=None if manager.out is None else escaped_view(manager.out),
        observation=escaped_view(manager.observation),
    )


def _footer(extra: Mapping[str, Any]) -> str:
    """Fields a ProcessorFilter added, as a small italic line."""
    pairs = []
    for key, value in extra.items():
        name = text_of(key, "key")
        pairs.append(f"{escape(name)}: {escape(text_of(value, name))}")
    return "\n_" + " · ".join(pairs) + "_"


def record_level(record: logging.LogRecord) -> int:
    """``record.levelno`` as an ``int``, whatever a hand-made record holds.

    Records rebuilt with ``logging.makeLogRecord`` (a replayed JSON line, say)
    may carry no level, a float or only a level name; unknown counts as INFO.

    Example:
        >>> record_level(logging.makeLogRecord({"levelname": "ERROR"}))
        40
    """
    level = record.levelno
    if type(level) is int:
        return level
    if isinstance(level, (int, float)) and level == level:  # not NaN
        return int(level)
    named = logging.getLevelName(str(record.levelname).upper())
    return named if isinstance(named, int) else logging.INFO


def _with_rank(text: str, kind: str, run: RunFacts) -> str:
    """Names the process of a distributed job where it matters.

    Failures name it always (which of the ranks broke is the first question);
    other events only when they come from a rank other than 0.
    """
    if kind in ("error", "interrupted") or run.rank not in (0, None):
        return f"`{escape(run.where())}`\n{text}"
    return text


def _nearest_marker(levelno: int) -> str:
    # Custom levels take the marker of the nearest standard level below.
    below = [lvl for lvl in LEVEL_MARKERS if lvl <= levelno]
    return LEVEL_MARKERS[max(below)] if below else "•"


def _code_block(text: str) -> str:
    # Three backticks inside would end the block early.
    body = escape(text.rstrip("\n")).replace("```", "ˋˋˋ")
    return f"```\n{body}\n```"


class SlackFormatter(logging.Formatter):
    """Formats records as Slack mrkdwn text.

    Args:
        msg: Template for trigger events; ``UNSET`` keeps the one carried
            by the record, ``None`` disables the event.
        start_msg: Template for the start event.
        end_msg: Template for the end event.
        error_msg: Template for the error event.
        interrupted_msg: Template for a run that stopped without ending or
            failing (``KeyboardInterrupt``, ``SIGTERM``, an uncaught
            exception, ``sys.exit`` with an error status); it also sees
            ``reason``.
        stopped_msg: Template for a loop that ended before its stop trigger
            while the process exited with no error seen (``{default}`` says
            where it stopped; it also sees ``reason``).

    Templates follow pytorch-pfn-extras' rules (a format string with
    ``manager``, ``default``, ``context``, ``error`` and the observations, or a
    callable). Values interpolated into a message are escaped, so an
    observation or log argument reading ``<!channel>`` cannot ping anyone.

    Example:
        >>> import logging
        >>> fmt = SlackFormatter()
        >>> rec = logging.makeLogRecord(
        ...     {"name": "myproject", "levelno": logging.WARNING,
        ...      "msg": "disk %s is full", "args": ("<b>",)})
        >>> fmt.format(rec)
        '⚠️ *myproject* disk &lt;b&gt; is full'
    """

    def __init__(
        self,
        *,
        msg: Template | _Unset = UNSET,
        start_msg: Template | _Unset = UNSET,
        end_msg: Template | _Unset = UNSET,
        error_msg: Template | _Unset = UNSET,
        interrupted_msg: Template | _Unset = UNSET,
        stopped_msg: Template | _Unset = UNSET,
    ) -> None:
        super().__init__()
        given: dict[EventKind, Template | _Unset] = {
            "trigger": msg,
            "start": start_msg,
            "end": end_msg,
            "error": error_msg,
            "interrupted": interrupted_msg,
            # Not end_msg: "finished" must not be said of a run that was not.
            "stopped": stopped_msg,
        }
        self._templates: dict[EventKind, Template] = {
            kind: tmpl for kind, tmpl in given.items() if not isinstance(tmpl, _Unset)
        }

    def template_for(self, event: TrainingEvent) -> Template:
        """The template for ``event``: this formatter's, else the record's."""
        if event.kind in self._templates:
            return self._templates[event.kind]
        if event.has_template:
            template: Template = event.template
            return template
        return "{default}"

    def defers(self, event: TrainingEvent) -> bool:
        """Whether ``event`` renders the same later, off the training thread.

        True when its template is a format string that reads only what the
        record holds (see :func:`~ppe_slacklog.templates.renders_at_event`);
        false for text the extension already rendered, which costs nothing
        more now.
        """
        if event.kind in ALERT_KINDS:
            return False  # rare, and rendered from their own fields
        if event.kind not in self._templates and type(event.text) is str:
            return False
        template = self.template_for(event)
        return template is not None and not renders_at_event(template, event.kind)

    def render(
        self, record: logging.LogRecord, event: TrainingEvent | None = None
    ) -> str | None:
        """Renders ``record``; ``None`` when its template disables the event.

        ``event`` is ``event_of(record)`` when the caller already has it.
        Never raises: what cannot be rendered is shown as a marker.
        """
        mark = shown()
        try:
            if event is None:
                event = event_of(record)
            if event is None:
                return self._render_plain(record)
            return self._render_event(record, event)
        except Exception as exc:
            return _unrenderable(record, exc, mark)

    def _render_event(
        self, record: logging.LogRecord, event: TrainingEvent
    ) -> str | None:
        own = self._templates
        run = event.run
        extra = record.__dict__.get(EXTRA_ATTR)
        template: Template
        if event.kind in ALERT_KINDS:
            fields = record.__dict__.get(ALERT_ATTR)
            template = None
            text = alert_text(
                event.kind,
                fields if isinstance(fields, Mapping) else {},
                event.epoch,
                event.iteration,
                event.observations,
            )
        elif event.kind not in own and type(event.text) is str:
            # Rendered by the extension at the event, with the live manager.
            template = event.template
            text = event.text
            replay_shown(event.text_markers)
        else:
            template = self.template_for(event)
            if template is None:
                return None
            observations = event.observations
            if extra:
                # Enriched fields (host, git revision) are template variables too.
                observations = {**extra, **observations}
            text = render_template(
                template,
                event=event.kind,
                manager=event.manager,
                context=event.context,
                default=default_text(
                    template,
                    event.kind,
                    event.manager,
                    event.context,
                    event.error,
                    run,
                ),
                observations=observations,
                error=event.error,
                safe_manager=_safe_snapshot(event.manager, template),
                reason=run.reason if run else None,
            )
        if run is not None and run.distributed:
            text = _with_rank(text, event.kind, run)
        if extra and not (
            isinstance(template, str) and any("{" + k in template for k in extra)
        ):
            text += _footer(extra)
        return text

    def format(self, record: logging.LogRecord) -> str:
        """Renders ``record``; an empty string when its event is disabled."""
        return self.render(record) or ""

    def render_plain(self, record: logging.LogRecord) -> str:
        """Renders a record that is not a training event; never raises."""
        mark = shown()
        try:
            return self._render_plain(record)
        except Exception as exc:
            return _unrenderable(record, exc, mark)

    def _render_plain(self, record: logging.LogRecord) -> str:
        text = f"{_level_marker(record)} *{_logger_name(record)}* "
        text += self.message_text(record)
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + _code_block(
                "".join(traceback.format_exception(*record.exc_info))
            )
        elif record.exc_text:
            text += "\n" + _code_block(record.exc_text)
        if record.stack_info:
            text += "\n" + _code_block(record.stack_info)
        extra = record.__dict__.get(EXTRA_ATTR)
        if extra:
            text += _footer(extra)
        return text

    @staticmethod
    def message_text(record: logging.LogRecord) -> str:
        """The record's message with its arguments escaped and its format trusted.

        Never raises: an argument that cannot be text is shown as
        ``[unprintable: args[0]]``, a message that cannot as
        ``[unprintable: message]``.
        """
        msg: Any = record.msg
        if type(msg) is not str:
            if isinstance(msg, Mapping) and "event" in msg:
                return _structlog_text(msg)
            if not isinstance(msg, str):
                return escape(text_of(msg, "message"))
            msg = text_of(msg, "message")  # a str subclass: its own text
        return format_message(msg, record.args, escape)


def _level_marker(record: logging.LogRecord) -> str:
    level = record_level(record)
    return LEVEL_MARKERS.get(level) or _nearest_marker(level)


def _logger_name(record: logging.LogRecord) -> str:
    return escape(text_of(record.name, "logger name"))


def _unrenderable(record: logging.LogRecord, exc: Exception, mark: int) -> str:
    """The last resort: a record that could not be rendered at all still goes."""
    discard_shown_since(mark)  # what the failed attempt showed is not sent
    try:
        head = f"{_level_marker(record)} *{_logger_name(record)}*"
    except Exception:
        head = "•"
    marker = Unprintable("message", describe(exc))
    warn_unprintable("message", marker.error, key=("render", type(exc).__qualname__))
    return f"{head} {marker}"


def _kv_value(value: object, key: str) -> str:
    # Quote strings so "path=/a b" stays readable as one value.
    return text_of(value, key, repr if isinstance(value, str) else str)


def _structlog_text(event_dict: Mapping[str, Any]) -> str:
    pairs = " ".join(
        f"{escape(name)}={escape(_kv_value(value, name))}"
        for name, value in (
            (text_of(key, "key"), value)
            for key, value in event_dict.items()
            if key not in _STRUCTLOG_INTERNAL
        )
    )
    event = escape(text_of(event_dict["event"], "event"))
    return f"{event} {pairs}" if pairs else event
