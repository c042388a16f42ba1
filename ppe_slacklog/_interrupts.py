"""Noticing runs that end without ``finalize`` or ``on_error``.

pytorch-pfn-extras calls ``on_error`` for exceptions only: ``KeyboardInterrupt``,
``SystemExit`` and a scheduler's ``SIGTERM`` (which by default kills the
process on the spot) end a run silently. A run under watch is told at
interpreter exit (an ``atexit`` hook, which runs before ``logging.shutdown``
flushes the handlers) why the process is ending, so it can log it. The
handler module's own exit hook, which runs next, then drains every
SlackHandler against one deadline.

``SIGTERM`` is turned into ``SystemExit(143)`` while a run is watched, and
only when nobody else handles the signal: ``finally`` blocks run and the
process exits with the status a shell reports for a SIGTERM kill.

While a run's last messages are flushed (:func:`finishing`: ``finalize``,
``on_error``; and the exit hooks, once a watched run's process is exiting),
a ``SIGTERM`` does not cut the flush short: it is held until the flush ends
(within its bound), and the process then exits with 143. A scheduler that
stops a job just as it finishes, or torchrun stopping rank 0 because another
rank failed (twice, under ``srun``), still gets every queued message out.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, Final

from ._safetext import text_of

__all__ = ["finishing", "unwatch", "watch"]

_EXIT_REASON: Final = "the process exited (sys.exit() or the end of the program)"

_lock = threading.Lock()
# id(run) -> (pid that watches, emit(reason)); a forked child must not report
# its parent's runs.
_watched: dict[int, tuple[int, Callable[[str], None]]] = {}
_reason: str | None = None
# The process whose signal handlers are ours (None: none are).
_owner_pid: int | None = None
# The exit hook and the exception hook are inherited across fork: once per
# interpreter, or a forked child would chain ours onto itself.
_hooked = False
_previous_excepthook: Callable[..., Any] = sys.excepthook
# Flushes under way that a SIGTERM must not cut short, and the SIGTERM that
# arrived meanwhile (exit once they end). Only the owner process's.
_finishing = 0
_held: int | None = None
# The exit hooks of a process that watched a run are running: it is ending
# anyway, within the drain's bound; a SIGTERM now would only lose messages.
_exiting = False


def watch(key: object, emit: Callable[[str], None]) -> None:
    """At interpreter exit, calls ``emit(reason)`` unless :func:`unwatch` ran."""
    global _reason
    with _lock:
        if not _watched:
            _reason = None  # a reason noted for an earlier run is not this one's
        _watched[id(key)] = (os.getpid(), emit)
        _install()


def unwatch(key: object) -> None:
    """Forgets ``key``: its run ended as it should."""
    global _reason
    with _lock:
        _watched.pop(id(key), None)
        if not _watched:
            _reason = None
            if not _finishing:
                _uninstall()


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """Holds a ``SIGTERM`` until the block ends, then exits with status 143.

    For a run's final flush (``finalize``, ``on_error``): the messages it
    waits for are delivered (within the flush's bound) before the process
    stops. Someone else's ``SIGTERM`` handler stays in charge. On another
    thread than the main one, the held signal is raised again when the
    block ends (the main thread then exits the way it would have).
    """
    global _finishing, _held
    with _lock:
        _finishing += 1
        _install()
    try:
        yield
    finally:
        with _lock:
            _finishing -= 1
            held = _held if not _finishing else None
            if held is not None:
                _held = None
            if not _watched and not _finishing:
                _uninstall()
        if held is not None:
            if threading.current_thread() is threading.main_thread():
                raise SystemExit(128 + held)
            signal.raise_signal(held)


def _note(reason: str) -> None:
    global _reason
    if _watched and _reason is None:
        _reason = reason


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    global _held
    if os.getpid() == _owner_pid and (_finishing or _exiting):
        # The last messages are on their way: finish them, then exit.
        _note("SIGTERM received (the job was stopped or pre-empted)")
        if _finishing:
            _held = signum
        return
    if os.getpid() != _owner_pid or not _watched:
        # A forked child (a DataLoader worker), or a stale call through a
        # handler that chained to ours: die the default way.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _note("SIGTERM received (the job was stopped or pre-empted)")
    # Unwinds the main thread like an exception: locks are released on the
    # way out, so the atexit hook can still log and flush safely.
    raise SystemExit(128 + signum)


def _on_sigint(signum: int, frame: types.FrameType | None) -> None:
    _note("KeyboardInterrupt (Ctrl-C)")
    signal.default_int_handler(signum, frame)


def _excepthook(
    kind: type[BaseException], value: BaseException, tb: types.TracebackType | None
) -> None:
    # An exception whose __str__ raises must not break the hook (or the chain).
    text = text_of(value, "error", key=("error", kind.__qualname__))
    _note(f"uncaught {kind.__name__}: {text}" if text else kind.__name__)
    _previous_excepthook(kind, value, tb)


def _install() -> None:
    global _owner_pid, _hooked, _previous_excepthook
    pid = os.getpid()
    if not _hooked:
        # Never removed: other libraries may chain to this hook after us,
        # and unhooking would break (or loop) their chain. It only notes a
        # reason, and only while a run is watched.
        _hooked = True
        atexit.register(_at_exit)
        if sys.excepthook is not _excepthook:
            _previous_excepthook = sys.excepthook
            sys.excepthook = _excepthook
    if _owner_pid == pid:
        return
    _owner_pid = pid
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    # Someone else's handler stays: it decides what SIGTERM means there.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _uninstall() -> None:
    global _owner_pid
    if _owner_pid != os.getpid():
        return
    _owner_pid = None
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if signal.getsignal(signal.SIGINT) is _on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _at_exit() -> None:
    global _exiting
    with _lock:
        pid = os.getpid()
        due = [emit for owner, emit in _watched.values() if owner == pid]
        _watched.clear()
        reason = _reason or _EXIT_REASON
        # The drain that follows (the handler module's exit hook) delivers
        # what these runs queued: a SIGTERM must not cut it short.
        _exiting = bool(due)
    for emit in due:
        # Exiting anyway: a failure here has nobody left to tell.
        with contextlib.suppress(Exception):
            emit(reason)
