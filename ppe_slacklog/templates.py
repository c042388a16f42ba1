"""Message templates: ppe's default texts, safe rendering and mrkdwn escaping.

pytorch-pfn-extras renders its Slack templates with ``str.format`` and lets a
missing key (``{val/loss}`` before validation ran) crash the training. Here a
template never raises: what cannot be rendered becomes a visible marker in
the text and a :class:`TemplateWarning`, given once per template and problem.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]
import datetime
import getpass
import os
import shlex
import socket
import string
import sys
import traceback
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from ._safetext import (
    TemplateWarning,
    Unprintable,
    describe,
    discard_shown_since,
    shown,
    text_of,
    warn_once,
    warn_unprintable,
)
from .events import ManagerSnapshot, RunFacts

__all__ = [
    "MISSING_MARK",
    "Template",
    "TemplateFields",
    "TemplateWarning",
    "alert_default",
    "alert_text",
    "default_end_msg",
    "default_error_msg",
    "default_msg",
    "default_start_msg",
    "default_text",
    "escape",
    "escaped_view",
    "identity",
    "render_template",
    "renders_at_event",
    "safe_format",
    "slack_default",
    "spoken_duration",
    "template_fields",
]

#: A template: a format string, a callable returning a string, or ``None``
#: (the event is not posted).
Template = str | Callable[..., str] | None

#: Shown in place of a value that a template asked for but could not get.
MISSING_MARK = "[missing: {}]"


def escape(text: str) -> str:
    """Escapes the three characters Slack's mrkdwn treats as control characters.

    Slack reads ``<...>`` as links and mentions (``<!channel>`` pings a whole
    channel), so every value interpolated into a message goes through here.

    Example:
        >>> escape("<!channel> & co")
        '&lt;!channel&gt; &amp; co'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _failsafe(func: Callable[[], object]) -> str:
    # getpass.getuser() raises in containers whose uid has no passwd entry.
    try:
        return str(func())
    except Exception:
        return "UNKNOWN"


def identity() -> str:
    """Returns ``user@host [PID n]`` for this process, as ppe's messages show it.

    Computed per call rather than at import so a forked child names itself.
    """
    user = _failsafe(getpass.getuser)
    host = _failsafe(socket.gethostname)
    return f"{user}@{host} [PID {_failsafe(os.getpid)}]"


def _command_line() -> str:
    return " ".join(shlex.quote(arg) for arg in sys.argv)


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_tb(exc.__traceback__)).strip()


def _identity_text(esc: Callable[[str], str]) -> str:
    return esc(identity())


def _start_text(
    esc: Callable[[str], str], resumed_at: tuple[int, int] | None = None
) -> str:
    if resumed_at is None:
        headline = "🏃 *Training started!"
    else:
        epoch, iteration = resumed_at
        headline = f"🔁 *Training resumed from epoch {epoch}, iteration {iteration}!"
    return f"{headline} {_identity_text(esc)}*\nCommand: `{esc(_command_line())}`"


def _duration(seconds: float) -> str:
    try:
        return str(datetime.timedelta(seconds=int(seconds)))
    except (OverflowError, ValueError):  # nan or absurd: show it as it is
        return f"{seconds}s"


def _interrupted_text(manager: Any, reason: str, esc: Callable[[str], str]) -> str:
    return (
        f"⚠️ *Training interrupted: {esc(reason)}. {_identity_text(esc)}*\n"
        f"Stopped at epoch {manager.epoch}, iteration {manager.iteration}, "
        f"after {_duration(manager.elapsed_time)}."
    )


def _stopped_text(manager: Any, reason: str, esc: Callable[[str], str]) -> str:
    # A loop that ended before its stop trigger, with no error: not an alarm.
    max_epochs = getattr(manager, "max_epochs", None)
    of = f" of {max_epochs}" if max_epochs is not None else ""
    return (
        f"⏹️ *Training stopped at epoch {manager.epoch}{of} (iteration "
        f"{manager.iteration}) before its stop trigger; {esc(reason)}. "
        f"{_identity_text(esc)}*\nRan for {_duration(manager.elapsed_time)}."
    )


def _end_text(esc: Callable[[str], str]) -> str:
    return f"✅ *Training finished! {_identity_text(esc)}*"


def _error_text(exc: BaseException, esc: Callable[[str], str]) -> str:
    return (
        f"❌ *Error during training. {_identity_text(esc)}*\n"
        f"{esc(type(exc).__name__)}: {esc(_exception_text(exc))}\n"
        "Traceback:\n"
        "```\n" + esc(_traceback_text(exc)) + "\n```"
    )


def _exception_text(exc: BaseException) -> str:
    # Once per exception type: an error without text must still be reported.
    return text_of(exc, "error", key=("error", type(exc).__qualname__))


def _plain(text: str) -> str:
    return text


def default_msg(manager: Any, context: Any) -> str:
    """ppe's default trigger message: ``Epoch #<epoch>``.

    Example:
        >>> from types import SimpleNamespace
        >>> default_msg(SimpleNamespace(epoch=3), None)
        'Epoch #3'
    """
    return f"Epoch #{manager.epoch}"


def default_start_msg(manager: Any, context: Any) -> str:
    """ppe's default start message: who started the training, and how."""
    return _start_text(_plain)


def default_end_msg(manager: Any, context: Any) -> str:
    """ppe's default end message."""
    return _end_text(_plain)


def default_error_msg(manager: Any, exc: BaseException, context: Any) -> str:
    """ppe's default error message, with the traceback in a code block."""
    return _error_text(exc, _plain)


def slack_default(
    event: str,
    manager: Any,
    context: Any,
    exc: BaseException | None,
    *,
    resumed: bool = False,
    reason: str | None = None,
) -> str:
    """The default text of ``event`` with every interpolated part escaped.

    Identical on screen to ppe's default, but a command line or an exception
    message holding ``<!here>`` cannot ping anyone. A resumed run's start
    says where it resumed; ``interrupted`` and ``stopped`` (not ppe
    events) say why and where the run stopped.
    """
    if event == "start":
        if resumed:
            return _start_text(escape, (manager.epoch, manager.iteration))
        return _start_text(escape)
    if event == "interrupted":
        return _interrupted_text(manager, reason or "the process exited", escape)
    if event == "stopped":
        return _stopped_text(
            manager, reason or "the process exited with no error seen", escape
        )
    if event == "end":
        return _end_text(escape)
    if event == "error":
        if exc is None:
            return f"❌ *Error during training. {_identity_text(escape)}*"
        return _error_text(exc, escape)
    return escape(f"Epoch #{manager.epoch}")


def default_text(
    template: Template,
    event: str,
    manager: Any,
    context: Any,
    error: BaseException | None,
    run: RunFacts | None,
) -> str:
    """``{default}`` for ``template``: :func:`slack_default`, when it may be used.

    The default text (identity, command line) costs more than most templates,
    so a format string that does not name ``default`` gets ``""``; a callable
    may fall back to it, so it always gets it.

    Example:
        >>> default_text("loss {loss}", "trigger", None, None, None, None)
        ''
    """
    if isinstance(template, str) and "default" not in template:
        return ""
    return slack_default(
        event,
        manager,
        context,
        error,
        resumed=bool(run and run.resumed),
        reason=run.reason if run else None,
    )


class _Missing:
    """Stands in for a value that could not be looked up."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> _Missing:
        return _Missing(f"{self.name}.{attr}")

    def __getitem__(self, key: object) -> _Missing:
        return _Missing(f"{self.name}[{key}]")

    def __format__(self, spec: str) -> str:
        return MISSING_MARK.format(self.name)


class _Trusted(str):
    """A string the program wrote (the default text): never escaped."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _SafeFormatter(string.Formatter):
    """``str.format`` that records problems instead of raising them.

    A value that is missing becomes ``[missing: name]``; one that exists but
    raises when read, converted or formatted becomes ``[unprintable: name]``.
    """

    def __init__(self, esc: Callable[[str], str]) -> None:
        self._esc = esc
        # (what went wrong, what was sent instead[, the fix]), in order met.
        self.problems: list[tuple[str, ...]] = []
        # The field being formatted, to name it in a marker.
        self._field = ""

    def get_value(
        self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        try:
            return super().get_value(key, args, kwargs)
        except (KeyError, IndexError):
            self.problems.append(
                (f"no value named {key!r}", _instead(MISSING_MARK.format(key)))
            )
            return _Missing(str(key))

    def get_field(
        self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        self._field = field_name
        try:
            return super().get_field(field_name, args, kwargs)
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            self.problems.append(
                (
                    f"{{{field_name}}}: {describe(exc)}",
                    _instead(MISSING_MARK.format(field_name)),
                )
            )
            return (_Missing(field_name), field_name)
        except Exception as exc:  # it is there, but reading it raised
            return (self._unprintable(exc), field_name)

    def _unprintable(self, exc: Exception) -> Unprintable:
        marker = Unprintable(self._field, describe(exc))
        warn_unprintable(marker.name, marker.error)
        return marker

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if isinstance(value, (_Missing, Unprintable)):
            return value
        try:
            return super().convert_field(value, conversion)
        except Exception as exc:  # a __repr__ or __str__ that raises
            return self._unprintable(exc)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, (_Missing, _Trusted)):
            return format(value, format_spec)
        try:
            text = format(value, format_spec)
        except (ValueError, TypeError) as exc:
            self.problems.append(
                (
                    f"format spec {format_spec!r}: {describe(exc)}",
                    "The message was sent with the value unformatted, followed "
                    f"by [bad format: {format_spec}]",
                    _FIX_TEMPLATE,
                )
            )
            text = f"{text_of(value, self._field)}[bad format: {format_spec}]"
        except Exception as exc:  # a __format__ that raises anything else
            text = format(self._unprintable(exc), "")
        return self._esc(text)


def _instead(marker: str) -> str:
    return f"The message was sent with {marker} in its place"


_FIX_TEMPLATE: Final = "fix the template."
_FIX_TEMPLATE_OR_VALUE: Final = (
    "fix the template, or report the value before this event."
)


def _warn_once(
    where: str,
    problem: str,
    sent: str,
    fix: str = _FIX_TEMPLATE_OR_VALUE,
    key: Hashable = None,
) -> None:
    """One :class:`TemplateWarning` per template and problem.

    It says what went wrong, what was sent instead, and how to fix it.
    """
    warn_once(
        ("template", where, problem if key is None else key),
        f"ppe_slacklog: {where}: {problem}. {sent}; {fix}",
    )


class _Esc:
    """Formats like the wrapped value, passed through ``esc``; so do its parts.

    Every attribute access goes to the wrapped value (``__getattribute__``),
    so a template cannot reach around the wrapper; ``!r`` and ``!s`` escape
    too, so both formatting paths give the same text.
    """

    __slots__ = ("_e", "_v")

    def __init__(self, value: Any, esc: Callable[[str], str]) -> None:
        object.__setattr__(self, "_v", value)
        object.__setattr__(self, "_e", esc)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, "_v")
        return _wrap(getattr(value, name), object.__getattribute__(self, "_e"))

    def __getitem__(self, key: Any) -> Any:
        value = object.__getattribute__(self, "_v")
        return _wrap(value[key], object.__getattribute__(self, "_e"))

    def __format__(self, spec: str) -> str:
        value = object.__getattribute__(self, "_v")
        return object.__getattribute__(self, "_e")(format(value, spec))  # type: ignore[no-any-return]

    def __str__(self) -> str:
        value = object.__getattribute__(self, "_v")
        return object.__getattribute__(self, "_e")(str(value))  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        value = object.__getattribute__(self, "_v")
        return object.__getattribute__(self, "_e")(repr(value))  # type: ignore[no-any-return]


def escaped_view(value: Any, esc: Callable[[str], str] = escape) -> Any:
    """``value`` as format strings should see it: its text passed through ``esc``.

    Example:
        >>> "{d[k]}".format(d=escaped_view({"k": "<b>"}))
        '&lt;b&gt;'
    """
    return _wrap(value, esc)


def _wrap(value: Any, esc: Callable[[str], str]) -> Any:
    """``value`` ready for ``format``: numbers as they are, the rest escaped.

    Strings are wrapped too, so a format spec applies before escaping
    (``{name:.3}`` cuts the text, not an entity), as in the slow path.
    """
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return value  # no escaping needed; format specs still apply
    return _Esc(value, esc)


class TemplateFields(NamedTuple):
    """What a format string reads (see :func:`template_fields`).

    Attributes:
        names: The top-level names it uses, in order, each once.
        manager_attrs: The attributes it reads from ``manager``
            (``{manager.epoch}``); ``None`` when it uses ``manager`` in any
            other way (indexing, nested attributes, the object itself).
    """

    names: tuple[str, ...]
    manager_attrs: frozenset[str] | None


_fields_cache: dict[str, TemplateFields | None] = {}
# Templates are few (the documented four, file names): the bound only keeps a
# program that formats ever new templates from growing the cache forever.
_FIELDS_CACHE_MAX = 512
_parser = string.Formatter()


def _parse_fields(template: str) -> TemplateFields | None:
    names: dict[str, None] = {}
    manager_attrs: set[str] | None = set()
    try:
        for _, field, spec, conversion in _parser.parse(template):
            if field is None:
                continue
            if conversion is not None or not field or "{" in (spec or ""):
                return None
            first, rest = _string.formatter_field_name_split(field)
            if not isinstance(first, str):
                return None  # positional: the general path reports it
            names[first] = None
            if first == "manager" and manager_attrs is not None:
                parts = list(rest)
                if len(parts) == 1 and parts[0][0]:
                    manager_attrs.add(parts[0][1])
                else:
                    manager_attrs = None
    except ValueError:
        return None  # malformed: the general path reports it
    frozen = None if manager_attrs is None else frozenset(manager_attrs)
    return TemplateFields(tuple(names), frozen)


def template_fields(template: str) -> TemplateFields | None:
    """The names a format string reads; ``None`` when it is not a plain one.

    Plain means: named fields only, no conversion (``!r``), no nested field in
    a format spec, well-formed. The result is cached per template.

    Example:
        >>> fields = template_fields("it {manager.iteration} loss {loss:.3f}")
        >>> fields.names, sorted(fields.manager_attrs)
        (('manager', 'loss'), ['iteration'])
    """
    try:
        return _fields_cache[template]
    except KeyError:
        pass
    fields = _parse_fields(template)
    if len(_fields_cache) < _FIELDS_CACHE_MAX:
        _fields_cache[template] = fields
    return fields


# What the record's snapshot holds of the manager: a template reading only
# these renders the same whenever it is rendered.
_SNAPSHOT_ATTRS = frozenset(ManagerSnapshot._fields)


def renders_at_event(template: Template, event: str) -> bool:
    """Whether ``template`` must be rendered when its event happens.

    ppe renders its templates with the live manager, at the event. A format
    string that reads only what the record's snapshot holds (the
    observations by name, ``default``, and ``manager.epoch``,
    ``manager.iteration``, ``manager.epoch_detail``,
    ``manager.elapsed_time``, ``manager.max_epochs``, ``manager.out``,
    ``manager.observation``) renders the same later, so a handler may
    render it off the training thread. Everything else is rendered at the
    event, on the training thread, so that it sees what ppe's templates
    see: callables; any other use of ``manager`` (``{manager._out}``,
    ``{manager.optimizers[main].param_groups[0][lr]}``); ``context``
    (the user's object may change before a later rendering);
    the error event (its traceback); and templates that are not plain
    (conversions such as ``!r``, nested fields, malformed ones).

    Example:
        >>> renders_at_event("Epoch {manager.epoch}: {val/loss:.3f}", "trigger")
        False
        >>> renders_at_event("lr {manager.optimizers[main].param_groups[0][lr]}",
        ...                  "trigger")
        True
        >>> renders_at_event("{context.note}", "trigger")
        True
    """
    if template is None:
        return False
    if not isinstance(template, str) or event == "error":
        return True
    fields = template_fields(template)
    if fields is None or "context" in fields.names:
        return True
    if "manager" not in fields.names:
        return False
    attrs = fields.manager_attrs
    return attrs is None or not attrs <= _SNAPSHOT_ATTRS


class _Lookup(dict[str, Any]):
    """Template variables looked up (and escaped) only when a template uses them.

    ``str.format_map`` asks for each name it meets; the first source that
    has it wins. A name no source has becomes a marker and is noted.
    """

    def __init__(
        self,
        sources: tuple[Mapping[str, Any], ...],
        trusted: Mapping[str, str],
        esc: Callable[[str], str],
    ) -> None:
        # dict.__init__ is not called: the mapping starts (and stays) empty.
        self.sources = sources
        self.trusted = trusted
        self.esc = esc
        self.missing = False

    def __missing__(self, key: str) -> Any:
        if key in self.trusted:
            return self.trusted[key]
        for source in self.sources:
            if key in source:
                return _wrap(source[key], self.esc)
        self.missing = True
        return _Missing(key)


def safe_format(
    template: str,
    variables: Mapping[str, Any],
    *,
    esc: Callable[[str], str] = escape,
    where: str = "template",
    trusted: Mapping[str, str] | None = None,
    more: Mapping[str, Any] | None = None,
    prepared: Mapping[str, Any] | None = None,
) -> str:
    """Formats ``template`` like ``str.format``, but never raises.

    Values are passed through ``esc`` (Slack escaping by default); the
    template's own text is trusted and left as written. A missing key or
    attribute becomes ``[missing: name]``, a format spec that does not fit the
    value is shown next to it, and a malformed template is sent as written.
    Each problem is reported once as a :class:`TemplateWarning`.

    ``trusted`` values (the default text) are inserted as they are; names in
    ``variables`` win over names in ``more``. ``prepared`` holds values
    already made safe for the fast path (escaped copies of ``variables``
    entries), used as they are.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     safe_format("loss={val/loss:.2f} acc={acc}", {"val/loss": 0.123})
        'loss=0.12 acc=[missing: acc]'
    """
    trusted = trusted or {}
    sources = (variables,) if more is None else (variables, more)
    # The common case: one C-level format call, values escaped as used. A
    # conversion (!r, !s, !a) would escape before the format spec applies:
    # such templates take the slow path, which escapes last.
    fields = template_fields(template) if "!" not in template else None
    mark = shown()
    if fields is not None:
        # A plain template: its names are known, so look each up once here
        # (what _Lookup does below, without a Python call per name).
        values: dict[str, Any] = {}
        for name in fields.names:
            if prepared is not None and name in prepared:
                values[name] = prepared[name]
            elif name in trusted:
                values[name] = trusted[name]
            else:
                for source in sources:
                    if name in source:
                        value = source[name]
                        kind = type(value)
                        if kind is int or kind is float or kind is bool:
                            values[name] = value
                        else:
                            values[name] = _Esc(value, esc)
                        break
                else:
                    break  # missing: the slow path marks and reports it
        else:
            try:
                return template.format_map(values)
            except Exception:
                pass
    elif "!" not in template:
        lookup = _Lookup(sources, {**trusted, **prepared} if prepared else trusted, esc)
        try:
            text = template.format_map(lookup)
        except Exception:
            pass
        else:
            if not lookup.missing:
                return text
    # Markers put into text that is thrown away were never shown.
    discard_shown_since(mark)
    # Something is off: the slower formatter says precisely what it was.
    merged: dict[str, Any] = {} if more is None else dict(more)
    merged.update(variables)
    merged.update({k: _Trusted(v) for k, v in trusted.items()})
    formatter = _SafeFormatter(esc)
    try:
        # A malformed template fails here, before any value is read (whose
        # problems would be reported although nothing was substituted).
        for _ in formatter.parse(template):
            pass
        text = formatter.vformat(template, (), merged)
    except (ValueError, IndexError) as exc:
        # Unbalanced braces: nothing can be substituted, the text still goes.
        # What was met before the error was never shown: one warning only.
        formatter.problems[:] = [
            (
                f"malformed template {template!r}: {exc}",
                "The message was sent as written, nothing substituted",
                _FIX_TEMPLATE,
            )
        ]
        text = template
    for problem in formatter.problems:
        _warn_once(where, *problem)
    return text


def render_template(
    template: str | Callable[..., str],
    *,
    event: str,
    manager: Any,
    context: Any,
    default: str,
    observations: Mapping[str, Any],
    error: BaseException | None = None,
    esc: Callable[[str], str] = escape,
    safe_manager: Any = None,
    reason: str | None = None,
) -> str:
    """Renders one of the documented templates as pytorch-pfn-extras defines it.

    A format string sees ``manager``, ``default``, ``context``, ``error`` (error
    events only), ``reason`` (interrupted and stopped events) and every observation
    by name (``{val/loss}`` works). A
    callable is called as ``(manager, context)``, or ``(manager, exception,
    context)`` for the error event, and its text is trusted as written. A
    callable that raises yields the default text followed by a marker.
    ``safe_manager``, when given, is ``manager`` with its text already
    escaped: a format string reads it directly instead of through a wrapper.

    Example:
        >>> render_template(
        ...     "Epoch #{manager.epoch}: loss = {loss}",
        ...     event="trigger",
        ...     manager=type("M", (), {"epoch": 2})(),
        ...     context=None,
        ...     default="Epoch #2",
        ...     observations={"loss": 0.5},
        ... )
        'Epoch #2: loss = 0.5'
    """
    where = f"{event} message template"
    if isinstance(template, str):
        # Documented names win over observation keys, as in ppe.
        names: dict[str, Any] = {"manager": manager, "context": context}
        if event == "error":
            names["error"] = error
        elif event in ("interrupted", "stopped"):
            names["reason"] = reason
        return safe_format(
            template,
            names,
            esc=esc,
            where=where,
            trusted={"default": default},
            more=observations,
            prepared=None if safe_manager is None else {"manager": safe_manager},
        )
    try:
        if event == "error":
            text = template(manager, error, context)
        else:
            text = template(manager, context)
    except Exception as exc:  # a user callable must not stop training
        problem = f"the callable raised {describe(exc)}"
        # Once per exception type: its message may change at every event.
        _warn_once(
            where,
            problem,
            f"The default text was sent, followed by {MISSING_MARK.format(problem)}",
            "fix the callable.",
            key=type(exc).__name__,
        )
        return f"{default}\n{MISSING_MARK.format(esc(problem))}"
    return text_of(text, f"{event} message")


# -- alerts (issue 12) ---------------------------------------------------------


def spoken_duration(seconds: float) -> str:
    """A duration as an alert says it: ``"45 s"``, ``"12 min"``, ``"2.5 h"``.

    Example:
        >>> spoken_duration(45), spoken_duration(720), spoken_duration(9000)
        ('45 s', '12 min', '2.5 h')
    """
    if not isinstance(seconds, (int, float)) or seconds != seconds or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _where(epoch: Any, iteration: Any) -> str:
    try:
        return f"epoch {int(epoch)}, iteration {int(iteration):,}"
    except (TypeError, ValueError):
        return f"epoch {epoch}, iteration {iteration}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def alert_default(
    kind: str,
    fields: Mapping[str, Any],
    epoch: Any,
    iteration: Any,
    esc: Callable[[str], str] = escape,
) -> str:
    """The default text of an alert record (kinds ``stall``, ``resume_progress``,
    ``nonfinite``, ``alert``; fields as in ``docs/record-contract.md``).

    Keys and values are passed through ``esc``; the text around them is ours.

    Example:
        >>> alert_default("stall", {"stalled_for": 720,
        ...               "last_iteration_time": 0.4}, 3, 1204)
        '⏸️ *No progress for 12 min* (stuck at epoch 3, iteration 1,204; last iteration took 0.4 s)'
        >>> alert_default("nonfinite", {"key": "loss", "value": "nan",
        ...               "last_finite": 0.5}, 3, 1204)
        '⚠️ *`loss` became nan* at epoch 3, iteration 1,204 (last finite value: 0.5)'
    """  # noqa: E501
    where = _where(epoch, iteration)
    if kind == "stall":
        took = fields.get("last_iteration_time")
        last = (
            f"last iteration took {spoken_duration(took)}"
            if isinstance(took, (int, float))
            else "no iteration finished yet"
        )
        stalled = spoken_duration(fields.get("stalled_for", float("nan")))
        return f"⏸️ *No progress for {stalled}* (stuck at {where}; {last})"
    if kind == "resume_progress":
        stalled = spoken_duration(fields.get("stalled_for", float("nan")))
        return f"▶️ Progress resumed after {stalled} ({where})"
    key = "`" + esc(text_of(fields.get("key", "?"), "key")).replace("`", "ˋ") + "`"
    value = esc(_number(fields.get("value")))
    if kind == "nonfinite":
        if fields.get("recovered"):
            count = fields.get("count", 0)
            return (
                f"✅ {key} is finite again at {where}: {value} "
                f"(after {count} non-finite value{'s' if count != 1 else ''})"
            )
        previous = fields.get("last_finite")
        before = (
            f"last finite value: {esc(_number(previous))}"
            if previous is not None
            else "no finite value before"
        )
        return f"⚠️ *{key} became {value}* at {where} ({before})"
    below, above = fields.get("below"), fields.get("above")
    raw = fields.get("value")
    low = below is not None and isinstance(raw, (int, float)) and raw < below
    limit = f"below {esc(_number(below))}" if low else f"above {esc(_number(above))}"
    if fields.get("recovered"):
        bounds = " and ".join(
            f"{side} {esc(_number(bound))}"
            for side, bound in (("below", below), ("above", above))
            if bound is not None
        )
        return f"✅ {key} is no longer {bounds}: {value} at {where}"
    return f"🚨 *{key} is {limit}*: {value} at {where}"


def alert_text(
    kind: str,
    fields: Mapping[str, Any],
    epoch: Any,
    iteration: Any,
    observations: Mapping[str, Any],
    esc: Callable[[str], str] = escape,
) -> str:
    """An alert's text: its rule's ``message`` when it has one, else the default.

    A rule's ``message`` is a format string like the other templates: it
    sees ``default``, ``key``, ``value``, ``below``, ``above``, ``epoch``,
    ``iteration`` and the observations by name, values escaped.

    Example:
        >>> alert_text("alert", {"key": "val/loss", "value": 2.5, "above": 2.0,
        ...            "message": "diverging: {value}"}, 1, 10, {})
        'diverging: 2.5'
    """
    default = alert_default(kind, fields, epoch, iteration, esc)
    message = fields.get("message")
    if kind != "alert" or not isinstance(message, str) or fields.get("recovered"):
        return default
    names = {name: fields.get(name) for name in ("key", "value", "below", "above")}
    names.update(epoch=epoch, iteration=iteration)
    return safe_format(
        message,
        names,
        esc=esc,
        where="alert message",
        trusted={"default": default},
        more=observations,
    )
