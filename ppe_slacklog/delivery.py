"""The outbox: the background thread that delivers queued posts to one channel.

The training thread only appends to the queue (:mod:`ppe_slacklog.queueing`).
One sender thread per outbox takes the next post (with the neighbours that
can share its message), paces it to Slack's per-channel rate, and posts it.
A post that fails for a reason that may pass is retried with backoff for as
long as the outbox is open, after asking Slack whether an earlier attempt was
stored after all; a post Slack refuses by name is reported once and dropped.
Nothing here raises into the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

from . import _callsite, _forkpipe
from ._callsite import CallSite
from ._diagnostics import Once, mark_sender_thread
from .cards import BAD_BLOCKS, CardLink, flush_cards
from .chunking import DEFAULT_MAX_CHARS, split_text
from .pacing import DEFAULT_BURST, DEFAULT_RATE, TokenBucket, bucket_for
from .queueing import DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, Post, PostQueue
from .runs import channel_key
from .slackapi import FileData, Posted, SlackDeliveryError
from .stats import DeliveryCounters, DeliveryStats
from .templates import escape
from .threads import ChannelThreads

__all__ = [
    "DeliveryApi",
    "Outbox",
    "drain_outboxes",
    "holds_logging_lock",
    "live_outboxes",
]

# Backoff between attempts at a post that failed for a reason that may pass.
_BACKOFF_FIRST: Final = 0.5
_BACKOFF_MAX: Final = 5.0
# Slack's clock and ours may differ a little: look back this much further
# when asking whether an earlier attempt was stored.
_CLOCK_SLACK: Final = 10.0

# Pace a little under the rate: requests reach Slack with some jitter, and
# one that arrives early against Slack's own bucket is answered 429.
_PACING_MARGIN: Final = 0.95

# At exit, after a flush that just timed out: one short last try.
_LAST_TRY: Final = 2.0

# How often an idle sender (or a flush) looks at the inbox unasked.
_IDLE_POLL: Final = 0.5


class DeliveryApi(Protocol):
    """What the outbox needs from a transport (the Web API, or a webhook)."""

    #: Replies in threads, file uploads and reading the channel back work.
    can_thread: ClassVar[bool]
    can_upload: ClassVar[bool]
    can_look_back: ClassVar[bool]
    stats: DeliveryCounters

    @property
    def base_url(self) -> str:
        """Where requests go; keys the pacing buckets, never printed."""
        ...

    def post(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        message_id: str | None = None,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> Posted:
        """Posts ``text`` (with Block Kit ``blocks``: a live card)."""
        ...

    def upload(
        self,
        channel: str,
        files: Sequence[FileData],
        *,
        comment: str | None,
        thread_ts: str | None,
        on_staged: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        """Shares ``files``; ``on_staged`` gets their IDs before the completion."""
        ...

    def find_posted(
        self, channel: str, message_id: str, *, thread_ts: str | None, oldest: float
    ) -> Posted | None:
        """The post with ``message_id`` since ``oldest``, if stored."""
        ...

    def find_upload(
        self,
        channel: str,
        file_ids: Sequence[str],
        *,
        thread_ts: str | None,
        oldest: float,
    ) -> bool:
        """Whether the upload of ``file_ids`` was shared (waits a bounded time)."""
        ...

    def thread_exists(self, channel: str, ts: str) -> bool | None:
        """Whether a thread's parent exists (``None``: cannot tell)."""
        ...


@dataclass
class _Step:
    kind: str  # "post" or "upload"
    text: str
    broadcast: bool = False
    done: bool = False
    # Set when an attempt failed in a way that Slack may have stored it.
    maybe_sent_since: float | None = None
    # IDs of the files of the last upload attempt, known before completion.
    file_ids: tuple[str, ...] = ()


@dataclass
class _Message:
    """What one batch of posts becomes: texts and files, sent step by step."""

    thread_key: str | None
    files: tuple[FileData, ...]
    label: str
    text: str
    broadcast: bool = False
    kind: str = "log"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    steps: list[_Step] | None = None
    paced: bool = False

    @classmethod
    def of(cls, batch: list[Post]) -> _Message:
        first = batch[0]
        label = first.label if len(batch) == 1 else f"batch of {len(batch)} records"
        return cls(
            thread_key=first.thread_key,
            files=first.files,
            label=label,
            # A template may render to nothing (or blanks): no line for it.
            text="\n".join(
                text for p in batch if (text := p.display()) and not text.isspace()
            ),
            broadcast=first.broadcast,
            kind=first.kind,
        )


_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()
# Adding to a WeakSet while another thread iterates it raises; re-entrant,
# as an outbox may be created by a __del__ that runs inside a copy.
_outboxes_lock = threading.RLock()

# A thread's own record of whether it is starting a sender right now.
_local = threading.local()


def holds_logging_lock() -> bool:
    """Whether this thread holds the :mod:`logging` module's lock.

    ``logging.config`` holds it while it flushes and closes the handlers it
    replaces. Waiting for Slack then would wait for a sender that needs the
    same lock (any ``Logger.isEnabledFor`` cache miss takes it): nothing
    waits while it is held.
    """
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return bool(is_owned is not None and is_owned())


def _place(base_url: str) -> str:
    """A key for where requests go that does not show it (a webhook URL is secret).

    Example:
        >>> _place("https://slack.com/api/") == _place("https://slack.com/api/")
        True
    """
    return hashlib.blake2b(base_url.encode(), digest_size=8).hexdigest()


def _thread_start_in_progress() -> bool:
    # A post logged by a __del__ or a signal handler while this thread
    # starts a sender must not start one itself; nor while Thread.start()
    # holds threading's (on some Pythons non-re-entrant) limbo lock. A later
    # post or flush starts the sender instead.
    if getattr(_local, "starting", False):
        return True
    locked = getattr(getattr(threading, "_active_limbo_lock", None), "locked", None)
    return bool(locked is not None and locked())


class Outbox:
    """Delivers posts to one Slack channel from a background thread.

    Args:
        api: The transport to deliver through; its ``stats`` are the outbox's
            :attr:`counters`.
        channel: Channel name or ID.
        thread: Whether posts with a ``thread_key`` are threaded.
        max_chars: Longest text of one Slack message; longer texts are split.
        max_queue_records: Bound of the queue in posts.
        max_queue_bytes: Bound of the queue in (approximate) bytes.
        rate: Messages per second to the channel; ``None`` to not pace.
        burst: Messages that may go at once before ``rate`` applies.
        flush_timeout: What a flush at exit waits for this outbox at most.
        site: The user's line that made the handler: delivery warnings point
            there (the sender thread runs no user code).
    """

    def __init__(
        self,
        api: DeliveryApi,
        channel: str,
        *,
        thread: bool = True,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_queue_records: int = DEFAULT_MAX_RECORDS,
        max_queue_bytes: int = DEFAULT_MAX_BYTES,
        rate: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        flush_timeout: float = 10.0,
        site: CallSite | None = None,
    ) -> None:
        self._api = api
        self._site = site
        self.channel = channel
        self.thread = thread
        self.max_chars = max_chars
        self.flush_timeout = flush_timeout
        self.counters: DeliveryCounters = api.stats
        self._bounds = (max_queue_records, max_queue_bytes)
        self._bucket: TokenBucket | None = (
            None
            if rate is None
            else bucket_for(api.base_url, channel, rate * _PACING_MARGIN, burst)
        )
        # One turn at the channel's rate: a post that waited longer than
        # that is part of a backlog.
        self._turn = 1.0 / rate if rate else 1.0
        # Slack took longer than a turn to answer the last post.
        self._slow = False
        # The last attempt failed for a reason that may pass (Slack away).
        self._failing = False
        # Outboxes that deliver to the same place share threads and order.
        self._route = (_place(api.base_url), channel_key(channel))
        self._once = Once(site)
        self._threads = ChannelThreads(api, channel, self._route[0], self._once)
        # Accepting posts; after close() or retire() no more are taken.
        self._accepting = True
        # The sender drops what is left and ends (close(), not retire()).
        self._stopping = False
        self._retiring = False
        # Records of in-flight messages given up on because close() ran.
        self._dropped_while_closing = 0
        self._last_flush_timeout = -1.0
        self._delivered_at = -1.0
        # counters.records_queued when the exit drain ran (-1: not yet).
        self._expired_at = -1
        #: The handler's live cards (``None``: no cards, or a webhook).
        self.cards: CardLink | None = None
        self._init_runtime()
        with _outboxes_lock:
            _outboxes.add(self)

    def _init_runtime(self) -> None:
        # Everything a forked child must not inherit: a lock the parent's
        # sender may have held at fork time, the parent's queue, its thread.
        self._threads.reset_lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Posts that arrived while the lock was taken (possibly by this very
        # thread: a signal handler or a __del__ that logs). SimpleQueue.put
        # is re-entrant, so logging never waits here and never deadlocks.
        self._inbox: queue.SimpleQueue[Post] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        # Separate from the condition so that queueing a post does not wake
        # a sender that sleeps for pacing or backoff (a GIL round trip on
        # the training thread for nothing).
        self._closing = threading.Event()
        # Cuts a retry backoff short (closing, or the exit's last try).
        self._retry_now = threading.Event()
        if self._stopping:
            self._closing.set()
            self._retry_now.set()
        self._queue = PostQueue(*self._bounds)
        self._in_flight = 0
        self._idle = False
        self._sender: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Outbox {self.channel} pending={self.pending}>"

    @property
    def route(self) -> tuple[str, str]:
        """Where posts go: a key of the API (not showing it) and the channel."""
        return self._route

    @property
    def pending(self) -> int:
        """Posts accepted but not yet delivered or given up on."""
        return len(self._queue) + self._in_flight + self._inbox.qsize()

    def stats(self) -> DeliveryStats:
        """A frozen snapshot of :attr:`counters`, taken under the outbox's lock.

        The outbox changes its counters under that lock (the transport's
        ``api_calls`` and ``rate_limited`` have one writer, the sender), so
        what one change counts together (a record queued and the one it
        pushed out) is seen together. A message being sent counts its Slack
        messages as each is stored, and its records once all are.
        """
        # Bounded: a signal handler on a thread that holds the lock must not
        # hang here; the snapshot is then only as consistent as plain reads.
        locked = self._lock.acquire(timeout=0.5)
        try:
            return self.counters.snapshot()
        finally:
            if locked:
                self._lock.release()

    def _count(self, **amounts: int) -> None:
        """Adds ``amounts`` to the counters, under the lock (sender side)."""
        counters = self.counters
        with self._cond:
            for name, n in amounts.items():
                setattr(counters, name, getattr(counters, name) + n)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`retire` ran (no more posts are taken)."""
        return not self._accepting

    @property
    def retiring(self) -> bool:
        """Closed by a logging reconfiguration, still delivering its backlog."""
        return self._retiring and bool(self.pending)

    # -- the caller's side ----------------------------------------------------

    def submit(self, post: Post) -> None:
        """Queues ``post``; returns at once, never waits for a lock or the network."""
        if _forkpipe.forward(self, post):  # a forked child: the parent sends it
            return
        if not self._accepting and not self._reopen():
            self._refuse(post)
            return
        if not self._lock.acquire(blocking=False):
            # Taken for a moment by the sender or another thread, or by this
            # thread further up the stack: the next holder moves it on, in order.
            self._inbox.put(post)
            if self._sender is None:
                self._ensure_sender()  # safe here: it never waits either
            return
        try:
            if not self._accepting and not self._reopen():  # closed meanwhile
                self._refuse(post)
                return
            if not self._inbox.empty():
                self._intake()
            self._add(post)
            if self._idle:
                self._cond.notify()
            start = self._sender is None
        finally:
            self._lock.release()
        if start:
            self._ensure_sender()

    def _reopen(self) -> bool:
        """Takes posts again after a reconfiguration closed a handler still in use.

        ``logging.config`` closes every handler it knows, also those it
        leaves attached to loggers it does not configure (the extension's
        own handler, a handler added by code): records that still reach one
        are delivered as before.
        """
        if not self._retiring or self._stopping:
            return False
        self._accepting = True
        self._retiring = False
        return True

    def _refuse(self, post: Post) -> None:
        # Not under the lock: the caller may hold it (or may not wait for it).
        self.counters.records_dropped += post.repeat
        self._once.warn(
            ("closed",),
            f"ppe_slacklog: a {post.label} for Slack channel "
            f"{self.channel} was logged after its SlackHandler was "
            "closed and is dropped.",
        )

    def _add(self, post: Post) -> None:
        """Queues ``post`` (lock held), counting it and what it pushed out."""
        post.queued_at = time.monotonic()
        self.counters.records_queued += 1
        self.counters.records_dropped += self._queue.add(post)

    def _intake(self) -> None:
        """Moves posts that waited in the inbox into the queue (lock held)."""
        inbox = self._inbox
        while not inbox.empty():
            try:
                self._add(inbox.get_nowait())
            except queue.Empty:
                return

    def start(self) -> None:
        """Starts the sender now rather than at the first post.

        Python 3.12 refuses new threads at interpreter exit: a run whose
        first message is logged at exit (an interruption) needs its sender
        to exist already.
        """
        self._ensure_sender()

    def _ensure_sender(self) -> None:
        if self._stopping or _thread_start_in_progress():
            return
        if not self._start_lock.acquire(blocking=False):
            return  # another thread is starting it right now
        try:
            if self._sender is not None or self._stopping:
                return
            sender = threading.Thread(
                target=self._run,
                name=f"ppe_slacklog-sender-{self.channel}",
                daemon=True,
            )
            self._sender = sender
            _local.starting = True
            try:
                sender.start()
            except RuntimeError:
                # The interpreter is shutting down: no sender can start now.
                self._sender = None
            finally:
                _local.starting = False
        finally:
            self._start_lock.release()

    def flush(self, timeout: float, *, charts: bool = False) -> bool:
        """Waits until everything queued is delivered; ``False`` on timeout.

        Live cards count: a run's final state is part of what it delivers
        (with ``charts``, its final chart too: the interpreter's exit).
        Never waits while this thread holds the logging module's lock (see
        :func:`holds_logging_lock`): the sender could not make progress.
        """
        if self._expired() or holds_logging_lock():
            timeout = 0.0
        deadline = time.monotonic() + max(timeout, 0.0)
        delivered = self._wait_delivered(timeout)
        if self.cards is not None:
            current = flush_cards(
                [self._route], deadline, posts_done=delivered, charts=charts
            )
            if delivered and not current:
                # Out of time on a card: close() then does not wait again.
                self._last_flush_timeout = time.monotonic()
            delivered &= current
        return delivered

    @property
    def has_work(self) -> bool:
        """Posts to deliver, or a live card that Slack does not show as it is."""
        return bool(self.pending) or (self.cards is not None and self.cards.unsettled())

    def _wait_delivered(self, timeout: float) -> bool:
        self._ensure_sender()
        deadline = time.monotonic() + max(timeout, 0.0)
        _forkpipe.settle(deadline)  # posts forked children already wrote
        with self._cond:
            self._intake()
            while self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._last_flush_timeout = time.monotonic()
                    return False
                # The inbox is only looked at by its next reader: wake up
                # now and then in case a post landed there meanwhile.
                self._cond.wait(min(remaining, _IDLE_POLL))
                self._intake()
        return True

    def retire(self) -> None:
        """Takes no more posts but delivers what it holds, in the background.

        What ``logging.config`` does to the handlers it replaces: returns at
        once. Outboxes that deliver to the same channel later wait for this
        one's backlog first (order, and a run's thread, are kept); the exit
        drain waits for it like for any other.
        """
        with self._cond:
            if not self._accepting:
                return
            self._accepting = False
            self._retiring = True
            self._intake()
            self._cond.notify_all()
        self._ensure_sender()

    def close(self, timeout: float) -> None:
        """Delivers what it can within ``timeout``, then stops the sender.

        ``logging.shutdown`` flushes and then closes each handler: when the
        flush just ran out of time, closing does not wait a second time, so
        a process exits within one ``flush_timeout`` even with Slack down.
        Called while the logging module's lock is held (``dictConfig``
        replacing handlers), it :meth:`retire` s instead of waiting.
        """
        if holds_logging_lock():
            self.retire()
            return
        waited = timeout
        if self._expired() or time.monotonic() - self._last_flush_timeout < 1.0:
            timeout = 0.0
        flushed = self.flush(timeout)
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._intake()
            dropped = _records(self._queue.clear())
            self.counters.records_dropped += dropped
            self._closing.set()
            self._retry_now.set()
            sender = self._sender
            self._cond.notify_all()
        if sender is not None and sender is not threading.current_thread():
            # A short wait lets the sender settle; after a flush that ran out
            # of time a request is hanging: not waited for (several handlers
            # closed one after the other would add it up).
            sender.join(timeout=0.5 if flushed else 0.05)
        with self._cond:
            in_flight = self._in_flight
            dropped += self._dropped_while_closing
            self._dropped_while_closing = 0
        if dropped or in_flight:
            # Not "Slack did not answer": the wait may be our own pacing.
            if dropped:
                text = (
                    f"{dropped} record(s) for Slack channel {self.channel} could "
                    f"not be delivered within {waited:g}s and are dropped"
                )
                if in_flight:
                    text += (
                        f"; {in_flight} record(s) were still being sent and may arrive"
                    )
            else:
                text = (
                    f"{in_flight} record(s) for Slack channel {self.channel} were "
                    f"still being sent after {waited:g}s and may arrive"
                )
            self._once.warn(
                ("undelivered",),
                f"ppe_slacklog: {text} (raise flush_timeout to wait longer).",
            )

    def drain_at_exit(self, timeout: float) -> bool:
        """The interpreter's exit flush; shutdown's flush and close then do not wait.

        A flush that just timed out with nothing delivered since (an error
        flushed by the extension right before the exit) gets one short last
        try, its retry backoff cut short, instead of a second full wait.
        Posts queued after this drain (by a later exit hook) are waited for
        again by ``logging.shutdown``.
        """
        recent = time.monotonic() - self._last_flush_timeout < 2.0
        if recent and self._delivered_at < self._last_flush_timeout:
            timeout = min(timeout, _LAST_TRY)
            self._retry_now.set()
        try:
            return self.flush(timeout, charts=True)
        finally:
            self._expired_at = self.counters.records_queued

    def _expired(self) -> bool:
        """Whether the exit drain already waited for everything queued."""
        return self._expired_at == self.counters.records_queued

    # -- the sender's side ----------------------------------------------------

    def _back_off(self, seconds: float) -> bool:
        """Waits before a retry; ``True`` if the outbox was closed meanwhile."""
        self._retry_now.wait(seconds)
        self._retry_now.clear()
        return self._closing.is_set()

    def _wait_unless_closed(self, seconds: float) -> bool:
        """Sleeps ``seconds``; ``True`` if the outbox was closed meanwhile."""
        if seconds <= 0:
            return self._closing.is_set()
        return self._closing.wait(seconds)

    def _run(self) -> None:
        mark_sender_thread()
        try:
            # Also for the transport's own warnings (Slack's "warning" field).
            with _callsite.blaming(fallback=self._site):
                self._loop()
        finally:
            with self._cond:
                # A later submit starts a new sender if this one ever dies.
                self._sender = None
                self._cond.notify_all()

    def _next_post(self) -> Post | None:
        """Waits for the next post (lock held); ``None`` when the sender is done."""
        while True:
            self._intake()
            if self._stopping:
                return None
            if len(self._queue):
                return self._queue.take()
            if not self._accepting:
                return None  # retired, and all delivered
            self._idle = True
            # A post that went to the inbox (the lock was taken) has nobody
            # to wake us: look again now and then.
            self._cond.wait(_IDLE_POLL)
            self._idle = False

    def _loop(self) -> None:
        while True:
            with self._cond:
                first = self._next_post()
                if first is None:
                    return
                self._in_flight = first.repeat
            batch = [first]
            try:
                self._wait_for_predecessors()
                waited = time.monotonic() - first.queued_at
                wait = 0.0 if self._bucket is None else self._bucket.reserve()
                self._wait_unless_closed(wait)
                # A post that had to wait for its turn (for the rate, for a
                # slow Slack, for retries) takes along everything that waited
                # with it, gathered when the sender is ready: at any speed of
                # Slack, a backlog shares messages.
                if wait > 0 or waited >= self._turn:
                    with self._cond:
                        self._intake()
                        batch += self._queue.take_followers(
                            first,
                            self.max_chars,
                            may_close=self._slow,
                            reach_past_others=self._is_reply(first),
                        )
                        self._in_flight = _records(batch)
                if self._deliver(batch, paced=True):
                    self._report_drops()
            except Exception as exc:  # a bug must not stall flush() forever
                self._count(records_failed=_records(batch))
                self._once.warn(
                    ("bug", type(exc).__name__),
                    f"ppe_slacklog: unexpected {type(exc).__name__} in the sender "
                    f"for {self.channel}: {exc}",
                )
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _is_reply(self, post: Post) -> bool:
        """Whether ``post`` goes into a thread that exists (not to the top level)."""
        key = post.thread_key
        return (
            key is not None
            and self.thread
            and self._api.can_thread
            and self._threads.of(key) is not None
        )

    def _wait_for_predecessors(self) -> None:
        """Lets outboxes retired by a reconfiguration deliver to this channel first."""
        for other in live_outboxes():
            if other is not self and other._route == self._route and other.retiring:
                other._wait_delivered(other.flush_timeout)

    def _deliver(self, batch: list[Post], *, paced: bool) -> bool:
        message = _Message.of(batch)
        # The first step of the first attempt already used its rate token.
        message.paced = paced
        delay = _BACKOFF_FIRST
        while True:
            try:
                self._send(message)
            except SlackDeliveryError as exc:
                if exc.code == "thread_not_found" and message.thread_key:
                    # The thread's parent was deleted: start a new thread.
                    self._threads.forget(message.thread_key)
                    continue
                if exc.permanent:
                    self._give_up(message, exc, _records(batch))
                    return False
                if exc.retry_after is not None:
                    # Rate limited: Slack took nothing. Every post to this
                    # channel waits Retry-After, then goes at the channel's
                    # rate again; a retry of our own never meets the next 429.
                    if self._rate_limited(exc.retry_after):
                        self._drop_closing(batch)
                        return False
                    self._count(retries=1)
                    message.paced = False
                    continue
                self._failing = True
                if self._back_off(delay):
                    self._drop_closing(batch)
                    return False
                self._count(retries=1)
                delay = min(delay * 2, _BACKOFF_MAX)
            except Exception as exc:  # a bug must not kill the sender
                self._count(records_failed=_records(batch))
                self._once.warn(
                    ("bug", type(exc).__name__),
                    f"ppe_slacklog: unexpected {type(exc).__name__} while sending "
                    f"a {message.label} to {self.channel}: {exc}",
                )
                return False
            else:
                self._count(records_sent=_records(batch))
                self._delivered_at = time.monotonic()
                self._failing = False
                return True

    def _rate_limited(self, seconds: float) -> bool:
        """Holds the channel back for ``seconds``; ``True`` if closed meanwhile."""
        if self._bucket is not None:
            # The next reservation waits; it is cut short only by closing.
            self._bucket.penalize(seconds)
            return self._closing.is_set()
        return self._back_off(seconds)

    def _drop_closing(self, batch: list[Post]) -> None:
        """Counts ``batch`` as dropped because the outbox closed under it."""
        n = _records(batch)
        with self._cond:
            self.counters.records_dropped += n
            self._dropped_while_closing += n

    def _give_up(self, message: _Message, exc: SlackDeliveryError, n: int) -> None:
        self._count(records_failed=n)
        self._once.warn(
            ("error", exc.code),
            f"ppe_slacklog could not deliver a {message.label} to Slack channel "
            f"{self.channel}: {exc.fix} (Slack error '{exc.code}'). Training "
            "continues; later messages to this channel fail the same way until "
            "this is fixed.",
        )

    def _plan(self, message: _Message) -> list[_Step]:
        steps = self._plan_steps(message)
        if message.broadcast:
            # Only the head of a long text goes to the channel too: the
            # whole traceback there would bury everything else.
            for step in steps:
                if step.kind == "post":
                    step.broadcast = True
                    break
        return steps

    def _plan_steps(self, message: _Message) -> list[_Step]:
        chunks = split_text(message.text, self.max_chars) if message.text else []
        if not message.files:
            return [_Step("post", chunk) for chunk in chunks]
        starts_thread = (
            self.thread
            and message.thread_key is not None
            and self._threads.of(message.thread_key) is None
        )
        if starts_thread:
            # Slack does not reliably return the ts of a file message, so a
            # new thread's parent is always a plain message.
            if not chunks:
                chunks = ["📎 " + escape(", ".join(f.name for f in message.files))]
            return [_Step("post", c) for c in chunks] + [_Step("upload", "")]
        head, comment = chunks[:-1], (chunks[-1] if chunks else "")
        return [_Step("post", c) for c in head] + [_Step("upload", comment)]

    def _pace(self, message: _Message) -> None:
        if message.paced:
            message.paced = False
        elif self._bucket is not None and self._wait_unless_closed(
            self._bucket.reserve()
        ):
            # Closed while waiting for our turn: nothing more goes out.
            raise SlackDeliveryError(
                "closed", channel=self.channel, permanent=False, fix="closed"
            )

    def _send(self, message: _Message) -> None:
        if message.steps is None:
            message.steps = self._plan(message)
        key = message.thread_key if self.thread and self._api.can_thread else None
        for number, step in enumerate(message.steps):
            if step.done:
                continue
            parent = self._threads.parent_for_post(key) if key is not None else None
            if step.kind == "upload":
                self._upload_once(message, step, parent)
            else:
                card = None
                if parent is None and key and not self._threads.looking(key):
                    card = self._card_for_thread(message, key)
                elif key and parent and message.kind == "start" and self.cards:
                    # A resumed run's start: its card is the thread's parent.
                    self.cards.introduce(key, message.text, parent)
                posted = self._post_once(message, number, parent, card)
                # While a finder keeps looking for the thread, posts go to
                # the channel and do not start a thread of their own.
                if (
                    key is not None
                    and parent is None
                    and not self._threads.looking(key)
                ):
                    self._threads.started(key, posted.ts)
            step.done = True
            self._count(messages_sent=1)

    # -- threads ----------------------------------------------------------------

    def thread_parent(self, key: str) -> str | None:
        """The ``ts`` of the message that started thread ``key``, if posted yet.

        Threads belong to the run and the channel, not to this outbox: one
        started by another handler of the same channel counts.
        """
        return self._threads.of(key)

    def wait_thread_parent(self, key: str, timeout: float) -> str | None:
        """Like :meth:`thread_parent`, waiting up to ``timeout`` while posts wait."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            # While Slack is away, waiting would only stall the caller (a
            # snapshot of the training): the thread is not coming soon.
            while self._threads.of(key) is None and self.pending and not self._failing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, _IDLE_POLL))
        return self._threads.of(key)

    def adopt_thread(
        self,
        key: str,
        parent: str | Callable[[], str | None],
        *,
        keep_looking: bool = False,
    ) -> None:
        """Continues thread ``key`` under an existing message instead of a new one.

        ``parent`` is the thread's ``ts``, or a function that finds it (for
        example by waiting on another process); the sender calls it, off the
        caller's thread, before the thread's first post. When it returns
        ``None`` (or raises), that post starts a new thread; with
        ``keep_looking`` it goes to the channel's top level instead and the
        function is asked again before the next post, until it finds one.
        A thread this process did not start is checked once before the
        first post into it (:mod:`ppe_slacklog.threads`).
        """
        self._threads.adopt(key, parent, keep_looking=keep_looking)

    def on_thread_started(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]:
        """Calls ``listener(key, ts)`` (on the sender thread) for each new thread.

        Returns:
            A function that removes the listener again.
        """
        return self._threads.on_started(listener)

    def _already_there(
        self, step: _Step, lookup: Callable[[float], Any], skew: float = _CLOCK_SLACK
    ) -> Any:
        """After an unanswered attempt, whether Slack stored it (``lookup``)."""
        if step.maybe_sent_since is None:
            return None
        if not self._api.can_look_back:
            self._once.warn(
                ("no-look-back",),
                f"ppe_slacklog cannot tell whether {self.channel} stored a "
                "message whose answer was lost (webhooks cannot read the "
                "channel); it is sent again and may appear twice.",
            )
            return None
        try:
            return lookup(step.maybe_sent_since - skew)
        except SlackDeliveryError as exc:
            if not exc.permanent:
                raise  # Slack still away: try again later
            self._once.warn(
                ("no-history", exc.code),
                f"ppe_slacklog cannot tell whether Slack stored a message to "
                f"{self.channel} whose answer was lost ({exc.fix}); it is sent "
                "again and may appear twice."
                + (
                    " Grant the channels:history scope to avoid duplicates."
                    if exc.code == "missing_scope"
                    else ""
                ),
            )
            return None

    def _upload_once(self, message: _Message, step: _Step, parent: str | None) -> None:
        """Uploads ``message.files`` unless an unanswered attempt was shared.

        The files of an attempt are known by ID before its completion, so
        an upload whose answer was lost is found by those IDs (Slack shares
        asynchronously: the look-up waits a bounded time for the share),
        never by comparing names, sizes or texts.
        """
        comment = step.text or None
        file_ids = step.file_ids
        if self._already_there(
            step,
            lambda oldest: self._api.find_upload(
                self.channel, file_ids, thread_ts=parent, oldest=oldest
            ),
        ):
            return
        self._pace(message)
        step.maybe_sent_since = None

        def staged(ids: tuple[str, ...]) -> None:
            step.file_ids = ids

        attempt_at = time.time()
        try:
            self._api.upload(
                self.channel,
                message.files,
                comment=comment,
                thread_ts=parent,
                on_staged=staged,
            )
        except SlackDeliveryError as exc:
            if exc.ambiguous:
                step.maybe_sent_since = attempt_at
            raise

    def _card_for_thread(
        self, message: _Message, key: str
    ) -> tuple[str, str, list[dict[str, Any]]] | None:
        """The live card that the post starting run ``key``'s thread carries."""
        cards = self.cards
        if cards is None or message.kind != "start" or not cards.has_card(key):
            # Only a run's start becomes its card: a thread started by
            # another event (the start disabled) keeps that event's text.
            return None
        first = cards.first_blocks(key, message.text, self)
        return None if first is None else (key, *first)

    def _post_once(
        self,
        message: _Message,
        number: int,
        parent: str | None,
        card: tuple[str, str, list[dict[str, Any]]] | None = None,
    ) -> Posted:
        """Posts step ``number`` unless an earlier, unanswered attempt was stored.

        With ``card`` (a run's key, its card's text and blocks), the post
        starts the run's thread as its live card (:mod:`ppe_slacklog.cards`).
        """
        assert message.steps is not None
        step = message.steps[number]
        message_id = f"{message.id}-{number}"
        found = self._already_there(
            step,
            lambda oldest: self._api.find_posted(
                self.channel, message_id, thread_ts=parent, oldest=oldest
            ),
        )
        if isinstance(found, Posted):
            if card is not None and self.cards is not None:
                self.cards.posted(card[0], found)
            return found
        self._pace(message)
        attempt_at = time.time()
        try:
            posted = self._api.post(
                self.channel,
                step.text if card is None or len(message.steps) > 1 else card[1],
                thread_ts=parent,
                reply_broadcast=step.broadcast,
                message_id=message_id,
                blocks=None if card is None else card[2],
                run_id=message.thread_key,
            )
            self._slow = time.time() - attempt_at >= self._turn
        except SlackDeliveryError as exc:
            if exc.ambiguous and step.maybe_sent_since is None:
                step.maybe_sent_since = attempt_at
            if card is not None and self.cards is not None and exc.code in BAD_BLOCKS:
                # The card must never cost the run its thread: post without it.
                self.cards.refused(card[0], exc)
                return self._post_once(message, number, parent)
            raise
        if card is not None and self.cards is not None:
            self.cards.posted(card[0], posted)
        return posted

    def _report_drops(self) -> None:
        with self._cond:
            dropped = self._queue.take_dropped()
        if not dropped:
            return
        text = _drop_notice(dropped, *self._bounds)
        try:
            if self._bucket is not None:
                self._wait_unless_closed(self._bucket.reserve())
            self._api.post(self.channel, text)
            self._count(messages_sent=1)
        except SlackDeliveryError:
            with self._cond:  # tell next time
                self._queue.dropped.update(dropped)


def live_outboxes() -> list[Outbox]:
    """Every outbox of this process, those of closed handlers included."""
    with _outboxes_lock:
        return list(_outboxes)


def drain_outboxes(outboxes: list[Outbox], *, at_exit: bool = False) -> bool:
    """Flushes ``outboxes`` against one deadline: the longest ``flush_timeout``.

    Only outboxes that still have work count for the deadline: an idle or
    closed one's (perhaps long) bound must not stretch the wait for the
    others. With ``at_exit`` it is the interpreter's last flush (see
    :meth:`Outbox.drain_at_exit`). Never raises.

    Returns:
        ``True`` when every outbox delivered everything.
    """
    bound = max((o.flush_timeout for o in outboxes if o.has_work), default=0.0)
    deadline = time.monotonic() + bound
    delivered = True
    for outbox in outboxes:
        try:
            left = max(0.0, deadline - time.monotonic())
            delivered &= outbox.drain_at_exit(left) if at_exit else outbox.flush(left)
        except Exception:  # best effort: one broken outbox must not stop the rest
            delivered = False
    return delivered


def _records(posts: list[Post]) -> int:
    """How many records ``posts`` stand for (collapsed repeats included)."""
    return sum(p.repeat for p in posts)


def _drop_notice(dropped: Counter[str], max_records: int, max_bytes: int) -> str:
    what = ", ".join(
        f"{n} {'trigger message' if kind == 'trigger' else 'log record'}"
        f"{'s' if n != 1 else ''}"
        for kind, n in sorted(dropped.items())
    )
    return (
        f"⚠️ *ppe_slacklog* dropped {sum(dropped.values())} message(s) while Slack "
        f"could not take them as fast as they came ({what}): the queue holds at "
        f"most {max_records} "
        f"records / {max_bytes // (1024 * 1024)} MB. Start, end, error and "
        "WARNING-or-above messages are kept."
    )


def _after_fork_in_child() -> None:
    global _outboxes_lock
    _outboxes_lock = threading.RLock()  # another thread may have held it
    for outbox in list(_outboxes):
        outbox._init_runtime()


os.register_at_fork(after_in_child=_after_fork_in_child)
