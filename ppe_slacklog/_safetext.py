"""Text of any value, never raising: a marker for what refuses to be text.

A reported value, a ``context`` attribute, a log argument or an exception
may raise when it is turned into text (a meta-device tensor's ``item()``, a
broken ``__str__``). Such a value is shown as ``[unprintable: name]``, the
message still goes, and one :class:`TemplateWarning` per name says why.

Markers shown in a message are counted per thread, so that a handler can
count those in the text it rendered (``DeliveryStats.unprintable``): see
:func:`shown` and :func:`count_shown_since`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from . import _callsite
from .stats import DeliveryCounters

__all__ = [
    "UNPRINTABLE_MARK",
    "TemplateWarning",
    "Unprintable",
    "count_shown_since",
    "describe",
    "discard_shown_since",
    "format_message",
    "shown",
    "text_of",
    "warn_once",
    "warn_unprintable",
]

#: Shown in place of a value that could not be turned into text.
UNPRINTABLE_MARK: Final = "[unprintable: {}]"


class TemplateWarning(UserWarning):
    """A message could not be rendered as written.

    The message is still sent, with a marker (``[missing: name]``,
    ``[unprintable: name]``) where the value was.
    """


_shown = threading.local()


def _note_shown(count: int = 1) -> None:
    _shown.n = _shown.__dict__.get("n", 0) + count


def replay_shown(count: int) -> None:
    """Counts ``count`` markers of a text rendered elsewhere as shown here.

    A text the extension rendered at the event carries its marker count; the
    handler that sends it counts them as its own (see :func:`count_shown_since`).
    """
    if count > 0:
        _note_shown(count)


def shown() -> int:
    """How many markers this thread has put into text so far."""
    return _shown.__dict__.get("n", 0)  # type: ignore[no-any-return]


def discard_shown_since(mark: int) -> None:
    """Forgets markers counted since ``mark``: the text holding them was dropped."""
    _shown.n = mark


_count_lock = threading.RLock()


def count_shown_since(mark: int, stats: DeliveryCounters) -> None:
    """Adds the markers this thread showed since ``mark`` (:func:`shown`) to ``stats``.

    Example:
        >>> stats = DeliveryCounters()
        >>> mark = shown()
        >>> text = f"{Unprintable('x')}"
        >>> count_shown_since(mark, stats)
        >>> stats.unprintable
        1
    """
    n = _shown.__dict__.get("n", 0) - mark
    if n:
        # Threads logging at once must not lose a count (RLock: a signal
        # handler that logs on this thread may come in here again).
        with _count_lock:
            stats.unprintable += n


class Unprintable(str):
    """Stands in for a value that could not be turned into text.

    It is the marker text itself, so JSON lines, consoles and templates show
    it as it is (a format spec such as ``:.3f`` is ignored); ``error`` says
    what went wrong. Each time it is put into text it counts as shown.

    Example:
        >>> value = Unprintable("val/x", "RuntimeError: meta tensor")
        >>> f"x={value:.3f}"
        'x=[unprintable: val/x]'
    """

    name: str
    error: str

    def __new__(cls, name: str, error: str = "") -> Unprintable:
        self = super().__new__(cls, UNPRINTABLE_MARK.format(name))
        self.name = name
        self.error = error
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unprintable, (self.name, self.error))

    def __str__(self) -> str:
        _note_shown()
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        _note_shown()
        return str.__str__(self)


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, whatever its ``__str__`` does.

    Example:
        >>> describe(ValueError("bad"))
        'ValueError: bad'
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        return f"{name}: <str() failed>"
    return f"{name}: {text}" if text else name


def text_of(
    value: object,
    name: str,
    convert: Callable[[Any], str] = str,
    *,
    key: Hashable = None,
) -> str:
    """``convert(value)`` (``str`` by default), or the marker if that raises.

    A failure is reported once per name (or per ``key`` when given) as a
    :class:`TemplateWarning`, and counts as a marker shown.

    Example:
        >>> import warnings
        >>> class Broken:
        ...     def __str__(self):
        ...         raise RuntimeError("no")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     text_of(Broken(), "context")
        '[unprintable: context]'
    """
    if type(value) is str and convert is str:
        return value  # the common case, on every record: nothing can fail
    try:
        text = convert(value)
        if type(text) is str:
            return text
        if isinstance(text, str):  # a str subclass (a marker): plain text
            return str.__str__(text)
        raise TypeError(f"{convert.__name__}() returned {type(text).__name__}")
    except Exception as exc:
        warn_unprintable(name, describe(exc), key=key)
        _note_shown()
        return UNPRINTABLE_MARK.format(name)


class _Arg:
    """A log argument under ``%s``/``%r``: total, and passed through ``esc``."""

    __slots__ = ("_esc", "_index", "_value")

    def __init__(self, value: object, index: object, esc: Callable[[str], str]):
        self._value = value
        self._index = index
        self._esc = esc

    def _name(self) -> str:
        index = self._index
        return f"args[{index}]" if isinstance(index, int) else text_of(index, "key")

    def __str__(self) -> str:
        return self._esc(text_of(self._value, self._name()))

    def __repr__(self) -> str:
        return self._esc(text_of(self._value, self._name(), repr))


def _arg(value: object, index: object, esc: Callable[[str], str]) -> object:
    kind = type(value)
    if kind is str:
        return esc(value)  # type: ignore[arg-type]
    # Numbers keep their type so %d and %.3f still work; they need no escaping.
    if kind is int or kind is float or isinstance(value, (int, float)):
        return value
    return _Arg(value, index, esc)


def _plain(text: str) -> str:
    return text


def format_message(msg: str, args: Any, esc: Callable[[str], str] = _plain) -> str:
    """``msg % args`` as ``LogRecord.getMessage`` does it, but never raising.

    Each argument is passed through ``esc`` (the format itself is trusted);
    an argument that cannot be text becomes ``[unprintable: args[i]]``, and a
    format that does not fit its arguments shows both.

    Example:
        >>> format_message("step %d of %s", (3, "<b>"), esc=str.upper)
        'step 3 of <B>'
    """
    if not args:
        return msg
    try:
        if type(args) is tuple:
            return msg % tuple([_arg(a, i, esc) for i, a in enumerate(args)])
        if isinstance(args, Mapping):
            return msg % {k: _arg(v, k, esc) for k, v in args.items()}
        return msg % _arg(args, 0, esc)
    except Exception:
        # The program's own format does not fit its arguments: show both.
        return esc(f"{msg} {text_of(args, 'args', repr)}")


_warned: set[Hashable] = set()
# Re-entrant: a signal handler or __del__ may log a bad value inside it.
_warned_lock = threading.RLock()


def warn_once(key: Hashable, message: str) -> None:
    """Warns ``message`` as a :class:`TemplateWarning`, once per ``key``.

    The warning points at the user's line (:func:`ppe_slacklog._callsite.warn`):
    the ``Slack(...)`` or ``SlackHandler(...)`` call whose template this is,
    or the logging call of a plain record.
    """
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    # Warnings turned into errors (-W error) must not cost the message.
    with contextlib.suppress(Exception):
        _callsite.warn(message, TemplateWarning)


def warn_unprintable(name: str, error: str, *, key: Hashable = None) -> None:
    """Says once per name (or ``key``) that ``name`` could not be turned into text."""
    warn_once(
        ("unprintable", name if key is None else key),
        f"ppe_slacklog: {name!r} could not be turned into text ({error}); it "
        f"is shown as {UNPRINTABLE_MARK.format(name)} and the event is still "
        "logged and sent.",
    )


def _reset_lock_in_child() -> None:
    global _warned_lock
    _warned_lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_lock_in_child)
