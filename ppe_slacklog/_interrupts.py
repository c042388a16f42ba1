"""Noticing runs that end without ``finalize`` or ``on_error``.

pytorch-pfn-extras calls ``on_error`` for exceptions only: ``KeyboardInterrupt``,
``SystemExit`` and a scheduler's ``SIGTERM`` (which by default kills the
process on the spot) end a run silently. A run under watch is told at
interpreter exit (an ``atexit`` hook, which runs before ``logging.shutdown``
flushes the handlers) why the process is ending, so it can log it. The
handler module's own exit hook, which runs next, then drains every
SlackHandler against one deadline.

A process that ends without a signal, an uncaught exception or a
``sys.exit`` with a non-zero status ended normally: the run is told so
(``reason`` ``None``), and decides itself whether that is worth a word (a
loop that stopped early) or not (no iteration ran). Python 3.11 does not show
the exit status to exit hooks: while a run is watched, ``sys.exit`` notes
the status it was called with (a ``SystemExit`` raised by hand is not seen).
A run is watched as long as its owner (the manager) lives: an abandoned run
(a notebook cell stopped by Ctrl-C, a test that ran 2 of 5 iterations) is
dropped with it. Once the process is on its way out (a ``SIGTERM``, a
``sys.exit``), the owners are pinned: the stack that unwinds would drop a
manager that lives in a function's frame before the exit hook reports it.
(An uncaught exception keeps its frames itself, in ``sys.last_traceback``.)

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
import builtins
import contextlib
import os
import signal
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, NoReturn

from ._safetext import text_of

__all__ = ["finishing", "unwatch", "watch"]

Emit = Callable[[str | None], None]


class _Watch(NamedTuple):
    pid: int  # a forked child must not report its parent's runs
    emit: Emit
    # The run's owner, held weakly (``None``: the run holds nothing to drop).
    owner: weakref.ref[Any] | None
    # The owner, held strongly once the process is exiting.
    pinned: object = None


_lock = threading.Lock()
_watched: dict[int, _Watch] = {}
_reason: str | None = None
# The non-zero status sys.exit was called with while a run was watched.
_exit_status: object = None
_original_exit: Callable[[str | int | None], NoReturn] = sys.exit
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


def watch(key: object, emit: Emit, *, owner: object = None) -> None:
    """At interpreter exit, calls ``emit(reason)`` unless :func:`unwatch` ran.

    ``reason`` says why the process is ending (a signal, an uncaught
    exception, ``sys.exit`` with a non-zero status), or is ``None`` when it
    ended normally. Watching ``key`` again replaces its previous watch. With
    ``owner``, the watch holds it weakly and ends when it is garbage
    collected (``emit`` must not hold it).
    """
    global _reason, _exit_status
    entry = _Watch(os.getpid(), emit, None)
    if owner is not None:
        with contextlib.suppress(TypeError):  # not weakly referable: kept
            entry = entry._replace(owner=weakref.ref(owner, _dropper(id(key))))
    with _lock:
        if not _watched:
            # A reason noted for an earlier run is not this one's.
            _reason = _exit_status = None
        _watched[id(key)] = entry
        _install()


def _dropper(key: int) -> Callable[[weakref.ref[Any]], None]:
    def drop(ref: weakref.ref[Any]) -> None:
        # Called by the garbage collector, maybe while this very thread holds
        # _lock: no lock; a dict lookup and pop are atomic.
        entry = _watched.get(key)
        if entry is not None and entry.owner is ref:
            _watched.pop(key, None)

    return drop


def unwatch(key: object) -> None:
    """Forgets ``key``: its run ended as it should."""
    global _reason, _exit_status
    with _lock:
        _watched.pop(id(key), None)
        if not _watched:
            _reason = _exit_status = None
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


def _exit(status: str | int | None = None) -> NoReturn:
    """``sys.exit`` while a run is watched: notes a non-zero status first."""
    global _exit_status
    if _watched and threading.current_thread() is threading.main_thread():
        _pin()
        if status not in (None, 0):
            _exit_status = status
    _original_exit(status)


class _NotingQuitter:
    """site's ``exit``/``quit`` builtin that notes a non-zero status first."""

    def __init__(self, original: Any) -> None:
        self._original = original

    def __repr__(self) -> str:
        return repr(self._original)

    def __call__(self, code: Any = None) -> NoReturn:
        global _exit_status
        if _watched and threading.current_thread() is threading.main_thread():
            _pin()
            if code not in (None, 0):
                _exit_status = code
        self._original(code)
        raise SystemExit(code)  # not reached: the original raises


def _pin() -> None:
    """Keeps the runs' owners alive until the exit hook reports them."""
    for key, entry in list(_watched.items()):
        owner = entry.owner() if entry.owner is not None else None
        if owner is not None:
            _watched[key] = entry._replace(pinned=owner)


def _note(reason: str) -> None:
    global _reason
    if _watched and _reason is None:
        _reason = reason


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    global _held
    if os.getpid() == _owner_pid and _watched:
        _pin()
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
    global _owner_pid, _hooked, _previous_excepthook, _original_exit
    pid = os.getpid()
    if not _hooked:
        # Never removed: other libraries may chain to this hook after us,
        # and unhooking would break (or loop) their chain. It only notes a
        # reason, and only while a run is watched. The same for sys.exit:
        # it only notes a non-zero status, then exits as it always does.
        _hooked = True
        atexit.register(_at_exit)
        if sys.excepthook is not _excepthook:
            _previous_excepthook = sys.excepthook
            sys.excepthook = _excepthook
        if sys.exit is not _exit:
            _original_exit = sys.exit
            sys.exit = _exit
        for name in ("exit", "quit"):
            # site's exit()/quit() builtins raise SystemExit as sys.exit does.
            builtin = getattr(builtins, name, None)
            if builtin is not None and not isinstance(builtin, _NotingQuitter):
                setattr(builtins, name, _NotingQuitter(builtin))
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
        # With their pinned owners: alive until each has been reported.
        due = [
            (w.emit, w.pinned)
            for w in _watched.values()
            if w.pid == pid
            and (w.owner is None or w.pinned is not None or w.owner() is not None)
        ]
        _watched.clear()
        reason = _reason
        if reason is None and _exit_status is not None:
            # sys.exit("message") prints it and exits with status 1.
            status = _exit_status if isinstance(_exit_status, int) else 1
            reason = f"the process exited with status {status}"
        # The drain that follows (the handler module's exit hook) delivers
        # what these runs queued: a SIGTERM must not cut it short.
        _exiting = bool(due)
    for emit, _pinned in due:
        # Exiting anyway: a failure here has nobody left to tell.
        with contextlib.suppress(Exception):
            emit(reason)
