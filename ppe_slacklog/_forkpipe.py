"""Posts from forked children reach the parent's outboxes through a pipe.

A forked child (a DataLoader worker, a ``multiprocessing`` process with the
``fork`` start method) inherits the parent's SlackHandlers but not their
sender threads, and it often ends with ``os._exit``: whatever its own sender
had not posted yet would be lost without a trace. So each fork made while an
outbox is open gets a pipe. In the child, a post for an outbox inherited from
the parent is written to the pipe before the logging call returns (nothing
logged is lost to ``os._exit``); in the parent, a reader thread queues it in
the parent's outbox, which delivers it in order with everything else.

A child whose parent is gone (the pipe is broken) delivers from its own
sender instead. A post cut off by a child's sudden death is counted as
dropped and reported once by the parent. ``settle`` lets a flush in the
parent first take in what its children already wrote.

Each child has its own pipe, so frames of two children never interleave;
within a child a lock keeps frames of its threads whole (a write larger than
``PIPE_BUF`` is not atomic).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import pickle
import select
import struct
import termios
import threading
import time
import weakref
from typing import TYPE_CHECKING, Final

from . import delivery
from ._diagnostics import Once, mark_sender_thread

if TYPE_CHECKING:
    from .delivery import Outbox
    from .queueing import Post

__all__ = ["forward", "settle"]

# The child's pid, the outbox's key (its id at fork time) and the payload's
# length, then the pickled post.
_HEADER: Final = struct.Struct("!IQQ")
_INT: Final = struct.Struct("i")
# Longest wait of a child for room in the pipe (the parent's reader is
# starved or stuck); then the child delivers by itself.
_WRITE_TIMEOUT: Final = 10.0
# How often settle() looks again while a reader has work.
_SETTLE_POLL: Final = 0.05

_Keys = dict[int, "weakref.ref[Outbox]"]

_once = Once()


class _Writer:
    """The child's end: frames posts for inherited outboxes onto the pipe."""

    def __init__(self, fd: int, keys: _Keys) -> None:
        self.fd = fd
        self.pid = os.getpid()
        self.keys = keys
        self.broken = False
        # Re-entrant: a signal handler or a __del__ may log on this thread
        # while it writes. Frames it logs while a frame is half written wait
        # in the backlog; the interrupted call writes them before returning.
        self._lock = threading.RLock()
        self._writing = False
        self._backlog: collections.deque[bytes] = collections.deque()

    def send(self, key: int, post: Post) -> bool:
        """Writes one post; ``False`` if the pipe is broken (deliver it here)."""
        payload = pickle.dumps(post, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(self.pid, key, len(payload)) + payload
        with self._lock:
            if self._writing:
                self._backlog.append(frame)
                return True
            if self.broken:
                return False
            sent = self._write_whole(frame)
            # The caller may os._exit next: nothing may stay behind.
            while self._backlog and not self.broken:
                self._write_whole(self._backlog.popleft())
            return sent

    def _write_whole(self, frame: bytes) -> bool:
        self._writing = True
        try:
            return self._write(frame)
        finally:
            self._writing = False

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        deadline = time.monotonic() + _WRITE_TIMEOUT
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        try:
            while view:
                try:
                    view = view[os.write(self.fd, view) :]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError from None
                    poller.poll(remaining * 1000)
        except (OSError, TimeoutError) as exc:
            self._break(exc)
            return False
        return True

    def _break(self, exc: BaseException) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            os.close(self.fd)
        lost = len(self._backlog)
        self._backlog.clear()
        why = "is gone" if isinstance(exc, BrokenPipeError) else "does not read"
        _once.warn(
            ("broken", str(os.getpid())),
            f"ppe_slacklog: the parent of forked process {os.getpid()} {why}; "
            "its records for Slack are now delivered from this process (what "
            "is still queued when it exits with os._exit is lost)"
            + (f"; {lost} record(s) were lost." if lost else "."),
        )


class _Reader:
    """The parent's end of one child's pipe, read by a daemon thread."""

    def __init__(self, fd: int, keys: _Keys) -> None:
        self.fd = fd
        self.keys = keys
        self.child = "a forked process"  # its pid once it wrote
        self.busy = False

    def start(self) -> None:
        threading.Thread(
            target=self._run, name="ppe_slacklog-fork-reader", daemon=True
        ).start()

    def available(self) -> int:
        """Bytes written by the child and not yet read (call under ``_cond``)."""
        buf = bytearray(_INT.size)
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        except OSError:
            return 0
        (available,) = _INT.unpack(buf)
        return int(available)

    def _run(self) -> None:
        mark_sender_thread()  # nothing logged here may go back to Slack
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        try:
            while True:
                poller.poll()  # data or the child's end: either way, read
                with _cond:
                    self.busy = True
                try:
                    if not self._one_frame():
                        return
                finally:
                    with _cond:
                        self.busy = False
                        _cond.notify_all()
        except Exception as exc:  # a bug here must not hang the children
            _once.warn(
                ("reader", type(exc).__name__),
                f"ppe_slacklog: unexpected {type(exc).__name__} reading records "
                f"of {self.child}: {exc}",
            )
        finally:
            with _cond:
                # Closed under the lock: settle() never asks about a stale fd.
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                with contextlib.suppress(ValueError):
                    _readers.remove(self)
                _cond.notify_all()

    def _one_frame(self) -> bool:
        """Queues the next post; ``False`` at the child's end."""
        head = self._read(_HEADER.size)
        if len(head) < _HEADER.size:
            if head:
                self._lost(None)
            return False
        pid, key, size = _HEADER.unpack(head)
        self.child = f"forked process {pid}"
        payload = self._read(size)
        if len(payload) < size:
            self._lost(key)
            return False
        outbox = self._outbox(key)
        try:
            post = pickle.loads(payload)
        except Exception:
            self._lost(key)
            return True
        if outbox is None:
            self._lost(None)
        else:
            outbox.submit(post)
        return True

    def _read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size:
            chunk = os.read(self.fd, min(size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _outbox(self, key: int) -> Outbox | None:
        ref = self.keys.get(key)
        return None if ref is None else ref()

    def _lost(self, key: int | None) -> None:
        outbox = self._outbox(key) if key is not None else None
        if outbox is not None:
            outbox.counters.records_dropped += 1
        where = f" for Slack channel {outbox.channel}" if outbox is not None else ""
        _once.warn(
            ("lost", self.child),
            f"ppe_slacklog: a record{where} logged in {self.child} was lost: "
            "the process ended (or gave up) while sending it, or its handler "
            "was closed here. Later records are delivered.",
        )


_cond = threading.Condition()
_readers: list[_Reader] = []
# The pipe made for the fork under way in this thread (two threads may fork
# at once): read end, write end, outboxes.
_forking = threading.local()
# In a forked child: where its posts for inherited outboxes go.
_writer: _Writer | None = None


def forward(outbox: Outbox, post: Post) -> bool:
    """In a forked child, hands ``post`` for an inherited outbox to the parent.

    Returns:
        ``True`` when the parent has it; ``False`` when ``outbox`` delivers
        it itself (not a forked child, an outbox of its own, parent gone).
    """
    writer = _writer
    if writer is None or writer.broken:
        return False
    key = id(outbox)
    ref = writer.keys.get(key)
    if ref is None or ref() is not outbox:
        return False  # created in this process: its own sender delivers
    post.materialize()  # a rendering left to the sender does not pickle
    return writer.send(key, post)


def settle(deadline: float) -> None:
    """Waits (until ``deadline``) for the posts forked children already wrote.

    A flush in the parent then also waits for them; a child still running
    may write more later. Returns at once when no child has a pipe.
    """
    if not _readers:
        return
    with _cond:
        while any(r.busy or r.available() for r in _readers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            _cond.wait(min(remaining, _SETTLE_POLL))


def _take_pending() -> tuple[int, int, _Keys] | None:
    pending: tuple[int, int, _Keys] | None = getattr(_forking, "pipe", None)
    _forking.pipe = None
    return pending


def _before_fork() -> None:
    # Held across the fork (released in the parent's hook, replaced in the
    # child): a reader closes its descriptor and leaves _readers under it,
    # so the child never sees a reader whose number the parent has already
    # closed and given to another pipe (multiprocessing's own, say), which
    # the child would then close.
    _cond.acquire()
    _forking.pipe = None
    outboxes = delivery.live_outboxes()
    if all(o.closed for o in outboxes):
        return  # nothing could be logged to Slack in the child
    keys: _Keys = {id(o): weakref.ref(o) for o in outboxes}
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return  # out of descriptors: the child delivers by itself
    _forking.pipe = (read_end, write_end, keys)


def _after_fork_in_parent() -> None:
    try:
        _start_reader()
    finally:
        _cond.release()


def _start_reader() -> None:
    pending = _take_pending()
    if pending is None:
        return
    read_end, write_end, keys = pending
    os.close(write_end)
    reader = _Reader(read_end, keys)
    with _cond:
        _readers.append(reader)
    try:
        reader.start()
    except Exception:  # no new threads (interpreter exit): the child gets EPIPE
        with _cond:
            _readers.remove(reader)
            os.close(read_end)


def _after_fork_in_child() -> None:
    global _writer, _cond, _readers
    pending = _take_pending()
    # The parent's state: its readers' descriptors, a lock its threads may
    # have held at fork time, the pipe to our grandparent.
    for reader in _readers:
        with contextlib.suppress(OSError):
            os.close(reader.fd)
    _readers = []
    _cond = threading.Condition()
    if _writer is not None and not _writer.broken:
        with contextlib.suppress(OSError):
            os.close(_writer.fd)
    _writer = None
    if pending is not None:
        read_end, write_end, keys = pending
        os.close(read_end)
        os.set_blocking(write_end, False)
        _writer = _Writer(write_end, keys)


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
