"""Where a warning points: the user's line that set things up, not ours.

A template is rendered deep inside logging (extension -> logger -> handler
-> formatter), perhaps later on a sender thread; a delivery problem is found
on a sender thread with no user code on its stack at all. A fixed
``stacklevel`` cannot name the user's line there, and Python 3.10 has no
``skip_file_prefixes``. So the objects that own templates and deliveries
remember the line that created them (:func:`capture`), the code that works
for them says so for its thread (:class:`blaming`), and :func:`warn` points
the warning there with ``warnings.warn_explicit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from types import TracebackType
from typing import Final, NamedTuple

__all__ = [
    "CallSite",
    "blame",
    "blaming",
    "capture",
    "current",
    "unblame",
    "warn",
]


class CallSite(NamedTuple):
    """A line of the user's code (small and picklable: it travels on records)."""

    filename: str
    lineno: int
    module: str


def _package_dir(path: str | None) -> str | None:
    return None if path is None else os.path.dirname(path) + os.sep


_STDLIB: Final = os.path.dirname(contextlib.__file__) + os.sep
# Code that runs the user's code or ours without being either of them.
_ALWAYS: Final = tuple(
    p
    for p in (
        _package_dir(__file__),  # ppe_slacklog
        _package_dir(logging.__file__),  # logging, logging.config
        _STDLIB + "importlib" + os.sep,
        _STDLIB + "contextlib.py",
        _STDLIB + "copy.py",
        _STDLIB + "pickle.py",
        _STDLIB + "threading.py",
        _STDLIB + "runpy.py",
        "<frozen ",
    )
    if p is not None
)
# Libraries between the user and us, skipped once they are loaded.
_CALLERS: Final = ("pytorch_pfn_extras", "torch", "structlog")


def _not_user_code() -> tuple[str, ...]:
    loaded = (getattr(sys.modules.get(name), "__file__", None) for name in _CALLERS)
    return _ALWAYS + tuple(d for d in map(_package_dir, loaded) if d is not None)


def capture() -> CallSite | None:
    """The innermost caller's line outside ppe_slacklog and what drives it.

    Skipped: this package, ``logging``, pytorch-pfn-extras, torch (its
    ``torch.load`` unpickles an extension), structlog, and the standard
    library's ``contextlib``, ``copy``, ``pickle``, ``threading``,
    ``importlib`` and ``runpy``. ``None`` on a thread that runs no user
    code (a sender).

    Example:
        >>> site = capture()
        >>> site is None or site.lineno > 0
        True
    """
    skip = _not_user_code()
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(skip):
            name = frame.f_globals.get("__name__")
            return CallSite(filename, frame.f_lineno, str(name or ""))
        frame = frame.f_back  # type: ignore[assignment]
    return None


_state = threading.local()
_Blame = tuple["CallSite | None", "CallSite | None"]


def _slots() -> list[CallSite | None]:
    """This thread's ``[site, fallback]``."""
    try:
        return _state.v  # type: ignore[no-any-return]
    except AttributeError:
        slots: list[CallSite | None] = [None, None]
        _state.v = slots
        return slots


def blame(site: CallSite | None, fallback: CallSite | None = None) -> _Blame:
    """:class:`blaming` without a context manager, for the per-record path.

    Returns what :func:`unblame` restores (call it in a ``finally``).
    """
    slots = _slots()
    saved = (slots[0], slots[1])
    if site is not None:
        slots[0] = site
    if fallback is not None:
        slots[1] = fallback
    return saved


def unblame(saved: _Blame) -> None:
    """Restores what :func:`blame` replaced."""
    slots = _slots()
    slots[0], slots[1] = saved


class blaming:  # lower case: used like a function, ``with blaming(site):``
    """Points this thread's warnings at ``site`` while the block runs.

    ``fallback`` is used only when the stack holds no user code (a sender
    thread, the interpreter's exit). ``None`` keeps what an enclosing block
    set.

    Example:
        >>> with blaming(CallSite("train.py", 12, "__main__")):
        ...     _blamed()
        CallSite(filename='train.py', lineno=12, module='__main__')
    """

    __slots__ = ("_fallback", "_saved", "_site")

    def __init__(
        self, site: CallSite | None = None, *, fallback: CallSite | None = None
    ) -> None:
        self._site = site
        self._fallback = fallback
        self._saved: _Blame = (None, None)

    def __enter__(self) -> None:
        self._saved = blame(self._site, self._fallback)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unblame(self._saved)


def _blamed() -> CallSite | None:
    return _slots()[0]


def current() -> CallSite | None:
    """Where this thread's warnings point now: the blamed site, else :func:`capture`.

    What an object made on the user's behalf remembers as its own site: a
    handler the extension attaches for itself belongs to the ``Slack(...)``
    call, not to the loop line that ran the extension's first hook.
    """
    return _blamed() or capture()


def warn(
    message: str,
    category: type[Warning],
    *,
    site: CallSite | None = None,
    fallback: CallSite | None = None,
) -> None:
    """Warns at the user's line: ``site``, else the blamed one, else the caller.

    The caller is the innermost user frame (:func:`capture`); with none on
    the stack, ``fallback`` (or the blamed fallback) is used, and with none
    of these the warning points at its caller as ``warnings.warn`` would.
    Raises what ``warnings`` raises (``-W error``): callers decide.
    """
    blamed, blamed_fallback = _slots()
    where = site or blamed or capture() or fallback or blamed_fallback
    if where is None:
        warnings.warn(message, category, stacklevel=3)
        return
    # The module's registry, as warnings.warn uses: "default" filters then
    # show a warning once per line. No module_globals: asking the loader of
    # ``python -c`` code for its source raises (the line is read by name).
    module_globals = getattr(sys.modules.get(where.module), "__dict__", None)
    registry = (
        None
        if module_globals is None
        else module_globals.setdefault("__warningregistry__", {})
    )
    warnings.warn_explicit(
        message,
        category,
        where.filename,
        where.lineno,
        module=where.module or None,
        registry=registry,
    )
