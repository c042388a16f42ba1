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

import contextlib
import os
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

from ._diagnostics import Once, mark_sender_thread
from .chunking import DEFAULT_MAX_CHARS, split_text
from .pacing import DEFAULT_BURST, DEFAULT_RATE, TokenBucket, bucket_for
from .queueing import DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, Post, PostQueue
from .slackapi import FileData, Posted, SlackDeliveryError
from .stats import DeliveryStats
from .templates import escape

__all__ = ["DeliveryApi", "Outbox"]

# Backoff between attempts at a post that failed for a reason that may pass.
_BACKOFF_FIRST: Final = 0.5
_BACKOFF_MAX: Final = 5.0
# Slack's clock and ours may differ a little: look back this much further
# when asking whether an earlier attempt was stored.
_CLOCK_SLACK: Final = 60.0

# Pace a little under the rate: requests reach Slack with some jitter, and
# one that arrives early against Slack's own bucket is answered 429.
_PACING_MARGIN: Final = 0.95

# At exit, after a flush that just timed out: one short last try.
_LAST_TRY: Final = 2.0


class DeliveryApi(Protocol):
    """What the outbox needs from a transport (the Web API, or a webhook)."""

    #: Replies in threads, file uploads and reading the channel back work.
    can_thread: ClassVar[bool]
    can_upload: ClassVar[bool]
    can_look_back: ClassVar[bool]
    stats: DeliveryStats

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
    ) -> Posted:
        """Posts ``text``."""
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
        self, channel: str, file_ids: Sequence[str], *, thread_ts: str | None
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
            text="\n".join(p.display() for p in batch),
            broadcast=first.broadcast,
        )


_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()


class Outbox:
    """Delivers posts to one Slack channel from a background thread.

    Args:
        api: The transport to deliver through; its ``stats`` are the outbox's.
        channel: Channel name or ID.
        thread: Whether posts with a ``thread_key`` are threaded.
        max_chars: Longest text of one Slack message; longer texts are split.
        max_queue_records: Bound of the queue in posts.
        max_queue_bytes: Bound of the queue in (approximate) bytes.
        rate: Messages per second to the channel; ``None`` to not pace.
        burst: Messages that may go at once before ``rate`` applies.
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
    ) -> None:
        self._api = api
        self.channel = channel
        self.thread = thread
        self.max_chars = max_chars
        self.stats: DeliveryStats = api.stats
        self._bounds = (max_queue_records, max_queue_bytes)
        self._bucket: TokenBucket | None = (
            None
            if rate is None
            else bucket_for(api.base_url, channel, rate * _PACING_MARGIN, burst)
        )
        self._once = Once()
        self._parents: dict[str, str] = {}
        # Threads this process did not start (a resumed run's, another
        # rank's): checked once before the first post into them.
        self._unverified: set[str] = set()
        # key -> (finder, keep looking while it answers None)
        self._finders: dict[str, tuple[Callable[[], str | None], bool]] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._closed = False
        self._last_flush_timeout = -1.0
        self._delivered_at = -1.0
        # stats.queued when the exit drain ran (-1: not yet).
        self._expired_at = -1
        self._init_runtime()
        _outboxes.add(self)

    def _init_runtime(self) -> None:
        # Everything a forked child must not inherit: a lock the parent's
        # sender may have held at fork time, the parent's queue, its thread.
        self._cond = threading.Condition(threading.Lock())
        # Separate from the condition so that queueing a post does not wake
        # a sender that sleeps for pacing or backoff (a GIL round trip on
        # the training thread for nothing).
        self._closing = threading.Event()
        # Cuts a retry backoff short (closing, or the exit's last try).
        self._retry_now = threading.Event()
        if self._closed:
            self._closing.set()
            self._retry_now.set()
        self._queue = PostQueue(*self._bounds)
        self._in_flight = 0
        self._idle = False
        self._sender: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Outbox {self.channel} pending={self.pending}>"

    @property
    def pending(self) -> int:
        """Posts accepted but not yet delivered or given up on."""
        return len(self._queue) + self._in_flight

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    # -- the caller's side ----------------------------------------------------

    def submit(self, post: Post) -> None:
        """Queues ``post``; returns at once, never touches the network."""
        with self._cond:
            if self._closed:
                self.stats.dropped += 1
                self._once.warn(
                    ("closed",),
                    f"ppe_slacklog: a {post.label} for Slack channel "
                    f"{self.channel} was logged after its SlackHandler was "
                    "closed and is dropped.",
                )
                return
            self.stats.queued += 1
            self.stats.dropped += self._queue.add(post)
            if self._sender is None:
                self._start_sender()
            elif self._idle:
                self._cond.notify()

    def start(self) -> None:
        """Starts the sender now rather than at the first post.

        Python 3.12 refuses new threads at interpreter exit: a run whose
        first message is logged at exit (an interruption) needs its sender
        to exist already.
        """
        with self._cond:
            if self._sender is None and not self._closed:
                self._start_sender()

    def _start_sender(self) -> None:
        sender = threading.Thread(
            target=self._run, name=f"ppe_slacklog-sender-{self.channel}", daemon=True
        )
        # Start first: a thread that cannot start (interpreter shutting down)
        # must not look like a running sender.
        sender.start()
        self._sender = sender

    def flush(self, timeout: float) -> bool:
        """Waits until everything queued is delivered; ``False`` on timeout."""
        if self._expired():
            timeout = 0.0
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._last_flush_timeout = time.monotonic()
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float) -> None:
        """Delivers what it can within ``timeout``, then stops the sender.

        ``logging.shutdown`` flushes and then closes each handler: when the
        flush just ran out of time, closing does not wait a second time, so
        a process exits within one ``flush_timeout`` even with Slack down.
        """
        waited = timeout
        if self._expired() or time.monotonic() - self._last_flush_timeout < 1.0:
            timeout = 0.0
        delivered = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._closing.set()
            self._retry_now.set()
            left = self.pending
            sender = self._sender
            self._cond.notify_all()
        if sender is not None and sender is not threading.current_thread():
            # A short wait lets the sender settle its counters; a request in
            # flight is not waited for, so closing never hangs.
            sender.join(timeout=0.5)
        if not delivered and left:
            self._once.warn(
                ("undelivered",),
                f"ppe_slacklog: {left} message(s) for Slack channel {self.channel} "
                f"could not be delivered within {waited:g}s and are dropped "
                "(raise flush_timeout to wait longer).",
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
            return self.flush(timeout)
        finally:
            self._expired_at = self.stats.queued

    def _expired(self) -> bool:
        """Whether the exit drain already waited for everything queued."""
        return self._expired_at == self.stats.queued

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
            self._loop()
        finally:
            with self._cond:
                # A later submit starts a new sender if this one ever dies.
                self._sender = None
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not len(self._queue) and not self._closed:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                if self._closed:
                    self.stats.dropped += _records(self._queue.clear())
                    self._cond.notify_all()
                    return
                first = self._queue.take()
                self._in_flight = 1
            batch = [first]
            try:
                if self._bucket is not None:
                    wait = self._bucket.reserve()
                    if wait > 0:
                        # Slack's rate makes this post wait anyway: what piles
                        # up meanwhile goes with it, as one message.
                        self._wait_unless_closed(wait)
                        with self._cond:
                            batch += self._queue.take_followers(first, self.max_chars)
                            self._in_flight = len(batch)
                if self._deliver(batch, paced=True):
                    self._report_drops()
            except Exception as exc:  # a bug must not stall flush() forever
                self.stats.failed += _records(batch)
                self._once.warn(
                    ("bug", type(exc).__name__),
                    f"ppe_slacklog: unexpected {type(exc).__name__} in the sender "
                    f"for {self.channel}: {exc}",
                )
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

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
                    self._parents.pop(message.thread_key, None)
                    continue
                if exc.permanent:
                    self._give_up(message, exc, _records(batch))
                    return False
                if self._back_off(delay):
                    self.stats.dropped += _records(batch)
                    return False
                self.stats.retries += 1
                delay = min(delay * 2, _BACKOFF_MAX)
            except Exception as exc:  # a bug must not kill the sender
                self.stats.failed += _records(batch)
                self._once.warn(
                    ("bug", type(exc).__name__),
                    f"ppe_slacklog: unexpected {type(exc).__name__} while sending "
                    f"a {message.label} to {self.channel}: {exc}",
                )
                return False
            else:
                self.stats.sent += _records(batch)
                self._delivered_at = time.monotonic()
                return True

    def _give_up(self, message: _Message, exc: SlackDeliveryError, n: int) -> None:
        self.stats.failed += n
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
            and message.thread_key not in self._parents
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
            parent = self._parent_of(key) if key is not None else None
            if step.kind == "upload":
                self._upload_once(message, step, parent)
            else:
                posted = self._post_once(message, number, parent)
                # While a finder keeps looking for the thread, posts go to
                # the channel and do not start a thread of their own.
                if key is not None and parent is None and key not in self._finders:
                    self._thread_started(key, posted.ts)
            step.done = True

    # -- threads ----------------------------------------------------------------

    def thread_parent(self, key: str) -> str | None:
        """The ``ts`` of the message that started thread ``key``, if posted yet."""
        return self._parents.get(key)

    def wait_thread_parent(self, key: str, timeout: float) -> str | None:
        """Like :meth:`thread_parent`, waiting up to ``timeout`` while posts wait."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while key not in self._parents and self.pending and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return self._parents.get(key)

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
        """
        with self._cond:
            if isinstance(parent, str):
                self._parents[key] = parent
                self._unverified.add(key)
                self._finders.pop(key, None)
            elif key not in self._parents:
                self._finders[key] = (parent, keep_looking)

    def on_thread_started(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]:
        """Calls ``listener(key, ts)`` (on the sender thread) for each new thread.

        Returns:
            A function that removes the listener again.
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def _parent_of(self, key: str) -> str | None:
        with self._cond:
            parent = self._parents.get(key)
            found = self._finders.get(key) if parent is None else None
        if found is None:
            return self._verified(key, parent)
        finder, keep_looking = found
        try:
            parent = finder()
        except Exception as exc:  # someone else's code: never the sender's end
            keep_looking = False
            self._once.warn(
                ("finder", type(exc).__name__),
                f"ppe_slacklog: finding the Slack thread to continue in "
                f"{self.channel} failed ({type(exc).__name__}: {exc}); a new "
                "thread is started.",
            )
            parent = None
        with self._cond:
            if self._finders.get(key) is found and (parent or not keep_looking):
                del self._finders[key]
            if parent and key not in self._parents:
                self._parents[key] = parent
                self._unverified.add(key)
            # A ts adopted meanwhile (a snapshot loaded late) wins.
            parent = self._parents.get(key)
        return self._verified(key, parent)

    def _verified(self, key: str, parent: str | None) -> str | None:
        """``parent``, once Slack confirmed a thread we did not start exists.

        Slack accepts a reply whose parent is gone (deleted, or of another
        channel) with ``ok: true`` and shows it nowhere, so a saved or shared
        thread is checked once; when its parent is gone, ``None``: the post
        starts a new thread. Raises (to retry later) while Slack is away.
        """
        with self._cond:
            if parent is None or key not in self._unverified:
                return parent
        exists = self._api.thread_exists(self.channel, parent)
        with self._cond:
            self._unverified.discard(key)
            if exists is not False or self._parents.get(key) != parent:
                return self._parents.get(key)
            del self._parents[key]
        self._once.warn(
            ("thread-gone",),
            f"ppe_slacklog: the Slack thread {parent} to continue in "
            f"{self.channel} no longer exists (its first message was deleted, "
            "or it is in another channel); a new thread is started.",
        )
        return None

    def _thread_started(self, key: str, ts: str) -> None:
        with self._cond:
            if key in self._parents:
                return  # a parent was adopted while this post was on its way
            self._parents[key] = ts
            self._unverified.discard(key)
        for listener in list(self._listeners):
            try:
                listener(key, ts)
            except Exception as exc:
                self._once.warn(
                    ("listener", type(exc).__name__),
                    f"ppe_slacklog: a thread listener for {self.channel} raised "
                    f"{type(exc).__name__}: {exc}",
                )

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
                self.channel, file_ids, thread_ts=parent
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

    def _post_once(self, message: _Message, number: int, parent: str | None) -> Posted:
        """Posts step ``number`` unless an earlier, unanswered attempt was stored."""
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
            return found
        self._pace(message)
        attempt_at = time.time()
        try:
            return self._api.post(
                self.channel,
                step.text,
                thread_ts=parent,
                reply_broadcast=step.broadcast,
                message_id=message_id,
            )
        except SlackDeliveryError as exc:
            if exc.ambiguous and step.maybe_sent_since is None:
                step.maybe_sent_since = attempt_at
            raise

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
        except SlackDeliveryError:
            with self._cond:  # tell next time
                self._queue.dropped.update(dropped)


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
        f"was unreachable ({what}): the queue holds at most {max_records} "
        f"records / {max_bytes // (1024 * 1024)} MB. Start, end, error and "
        "WARNING-or-above messages are kept."
    )


def _after_fork_in_child() -> None:
    for outbox in list(_outboxes):
        outbox._init_runtime()


os.register_at_fork(after_in_child=_after_fork_in_child)
