"""The outbox's queue: bounded, collapsing repeats, batching what can share a message.

A plain data structure without threads or I/O; the outbox holds the lock.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .slackapi import FileData

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_RECORDS", "Post", "PostQueue"]

DEFAULT_MAX_RECORDS: Final = 10_000
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024

# What a queued post costs beyond its text: the object and its bookkeeping.
_OVERHEAD: Final = 200
# What a post still to be rendered holds instead (its record and snapshot).
_UNRENDERED: Final = 1024
_ALWAYS_KEPT: Final = frozenset({"start", "end", "error", "interrupted", "stopped"})
_COLLAPSE_BACKLOG: Final = 3


@dataclass(slots=True)
class Post:
    """One message to deliver.

    Attributes:
        text: Slack mrkdwn text; may be empty when only files are sent.
        thread_key: Posts sharing a key share a Slack thread (the first one
            starts it); ``None`` posts at top level.
        files: Files to share next to the text.
        kind: ``start``, ``trigger``, ``end``, ``error`` or ``log`` (any
            other record).
        level: The record's level.
        label: What the post is, for diagnostics ("end message").
        repeat: How many identical records this post stands for.
        broadcast: A thread reply that is also shown in the channel.
        queued_at: When the outbox queued it (``time.monotonic()``).
        render: Gives ``text`` when the post leaves the queue (the sender
            renders training events whose templates read only the record's
            snapshot: the training thread does not wait for it); ``None``
            when ``text`` is final.
    """

    text: str
    thread_key: str | None = None
    files: tuple[FileData, ...] = ()
    kind: str = "log"
    level: int = logging.INFO
    label: str = "message"
    repeat: int = 1
    broadcast: bool = False
    queued_at: float = 0.0
    render: Callable[[], str] | None = None
    #: In the queue, or taken out / dropped (the queue's own bookkeeping).
    state: int = 0
    #: Its ``size`` when queued: the byte count given back when it leaves.
    cost: int = 0

    def materialize(self) -> None:
        """Renders the text now, if it was left to the sender."""
        render = self.render
        if render is not None:
            self.render = None
            self.text = render()

    @property
    def essential(self) -> bool:
        """Start, end, error events and WARNING-or-above records."""
        return self.kind in _ALWAYS_KEPT or self.level >= logging.WARNING

    @property
    def batchable(self) -> bool:
        """Whether it may share a Slack message with its neighbours.

        Start, end and error events and ERROR records stay their own
        message, and so does anything with files.
        """
        return (
            not self.files
            and not self.broadcast
            and self.kind in ("trigger", "log")
            and self.level < logging.ERROR
        )

    @property
    def closes_batch(self) -> bool:
        """An end message without files or broadcast: may end a batch."""
        return (
            self.kind == "end"
            and not self.files
            and not self.broadcast
            and self.level < logging.ERROR
        )

    @property
    def size(self) -> int:
        """Approximate memory held by this post, for the queue's byte bound."""
        size = len(self.text) + _OVERHEAD
        if self.render is not None:
            size += _UNRENDERED
        if self.files:
            size += sum(len(f.content) for f in self.files)
        return size

    def display(self) -> str:
        """The text as sent: repeats collapsed into one line with a count."""
        return self.text if self.repeat == 1 else f"{self.text} (×{self.repeat})"


# States of a post in the queue (lazy deletion: a post taken out of the
# middle, or dropped, stays in the deques until it reaches their left end).
_QUEUED: Final = 0
_GONE: Final = 1

# How far take_followers looks past posts of other threads for its own.
_SCAN: Final = 2_000


class PostQueue:
    """A FIFO of posts bounded by count and bytes.

    Over a bound, the oldest non-essential post (trigger events, records
    below WARNING) is dropped first. Essential posts may use up to twice the
    bound; past that the oldest plain log record goes, whatever its level.
    Start, end and error events are never dropped. A post identical to the
    last one queued in a backlog (three or more waiting) is not queued
    again: the last one's count goes up.

    Every operation is amortised O(1) (batching aside): the candidates for
    dropping are kept in queues of their own, so a head full of posts that
    must be kept never makes a drop scan them.

    Example:
        >>> q = PostQueue(max_records=4, max_bytes=10_000)
        >>> for t in ["a", "b", "c", "c", "c", "d", "e"]:
        ...     _ = q.add(Post(t, kind="trigger"))
        >>> first = q.take()
        >>> [p.display() for p in [first, *q.take_followers(first, 100)]]
        ['b', 'c (×3)', 'd', 'e']
        >>> q.dropped
        Counter({'trigger': 1})
    """

    def __init__(self, max_records: int, max_bytes: int) -> None:
        if max_records < 1 or max_bytes < 1:
            raise ValueError("queue bounds must be positive")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._items: deque[Post] = deque()
        # Non-essential posts, and plain log records, in order: what a drop
        # takes first, and what it takes when only essential posts are left.
        self._optional_items: deque[Post] = deque()
        self._log_items: deque[Post] = deque()
        self._live = 0
        self._bytes = 0
        self._optional = 0
        #: Posts dropped (by kind) since the last :meth:`take_dropped`.
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return self._live

    @property
    def bytes(self) -> int:
        """Approximate memory held by the queued posts."""
        return self._bytes

    def add(self, post: Post) -> int:
        """Queues ``post``; returns how many records were dropped to make room."""
        # Repeats collapse only in a backlog (a storm, or Slack away): a
        # message that can go out at once is sent as it is.
        if self._live >= _COLLAPSE_BACKLOG:
            last = self._last()
            if (
                last is not None
                and last.render is None
                and post.render is None
                and last.text == post.text
                and last.thread_key == post.thread_key
                and last.kind == post.kind
                and not last.files
                and not post.files
            ):
                last.repeat += 1
                return 0
        post.state = _QUEUED
        self._items.append(post)
        if not post.essential:
            self._optional_items.append(post)
        if post.kind == "log":
            self._log_items.append(post)
        self._account(post, +1)
        dropped = 0
        # The newest post is never dropped for its own size: a bound smaller
        # than one post would otherwise lose it with Slack perfectly healthy.
        while self._live > 1 and (
            self._live > self.max_records or self._bytes > self.max_bytes
        ):
            removed = self._drop_one()
            if not removed:
                break
            dropped += removed
        return dropped

    def _last(self) -> Post | None:
        items = self._items
        while items and items[-1].state != _QUEUED:
            items.pop()
        return items[-1] if items else None

    def _account(self, post: Post, sign: int) -> None:
        self._live += sign
        if sign > 0:
            post.cost = post.size
        self._bytes += sign * post.cost
        if not post.essential:
            self._optional += sign

    def _remove(self, post: Post) -> None:
        post.state = _GONE
        self._account(post, -1)

    @staticmethod
    def _oldest(candidates: deque[Post]) -> Post | None:
        while candidates and candidates[0].state != _QUEUED:
            candidates.popleft()
        return candidates[0] if candidates else None

    def _drop_one(self) -> int:
        """Drops one post by the policy above; returns the records it held."""
        post = self._oldest(self._optional_items)
        if post is None:
            hard = self._live > 2 * self.max_records or self._bytes > 2 * self.max_bytes
            if not hard:
                return 0
            post = self._oldest(self._log_items)
            if post is None:
                return 0
        self._remove(post)
        self.dropped[post.kind] += post.repeat
        self._tidy()
        return post.repeat

    def _tidy(self) -> None:
        """Lets go of posts that left the queue: memory stays bounded.

        Gone posts leave the deques from their left ends as they get there;
        when they are most of a deque (kept posts at its head, say, while
        Slack is away), the deques are rebuilt, at a cost spread over the
        drops that made them.
        """
        self._head()
        self._oldest(self._optional_items)
        self._oldest(self._log_items)
        if len(self._items) + len(self._log_items) > 3 * self._live + 64:
            self._items = deque(p for p in self._items if p.state == _QUEUED)
            self._optional_items = deque(
                p for p in self._optional_items if p.state == _QUEUED
            )
            self._log_items = deque(p for p in self._log_items if p.state == _QUEUED)

    def _head(self) -> Post | None:
        items = self._items
        while items and items[0].state != _QUEUED:
            items.popleft()
        return items[0] if items else None

    def take(self) -> Post:
        """Removes and returns the oldest post."""
        post = self._head()
        if post is None:
            raise IndexError("take from an empty PostQueue")
        self._items.popleft()
        self._remove(post)
        # Keep the side queues from holding on to posts already sent.
        self._oldest(self._optional_items)
        self._oldest(self._log_items)
        post.materialize()
        return post

    def take_followers(
        self,
        first: Post,
        max_chars: int,
        *,
        may_close: bool = False,
        reach_past_others: bool = False,
    ) -> list[Post]:
        """Removes the posts that can share ``first``'s message, in order.

        Followers must be batchable, of the same thread, and fit with
        ``first`` in ``max_chars`` characters (one line each). With
        ``reach_past_others`` (``first`` is a reply in a thread that
        exists), posts of other threads and top-level ones (say, log records
        between a run's trigger events) are passed over and stay queued, in
        order, for their own message: they go to another place, so the order
        a reader sees is kept. Otherwise, and always at a post of the same
        thread that cannot be batched, the batch ends. With ``may_close``
        (Slack is slow), a plain end message may close the batch: the end of
        a run then costs no request of its own and arrives within the flush.

        Example:
            >>> q = PostQueue(max_records=10, max_bytes=10_000)
            >>> for post in [Post("e1", "r", kind="trigger"),
            ...              Post("app log"),
            ...              Post("e2", "r", kind="trigger"),
            ...              Post("done", "r", kind="end"),
            ...              Post("next", "r", kind="trigger")]:
            ...     _ = q.add(post)
            >>> first = q.take()
            >>> [p.text for p in q.take_followers(
            ...     first, 100, may_close=True, reach_past_others=True)]
            ['e2', 'done']
            >>> [q.take().text for _ in range(len(q))]
            ['app log', 'next']
        """
        batch: list[Post] = []
        if not first.batchable:
            return batch
        total = len(first.display())
        scanned = 0
        for post in self._items:
            scanned += 1
            if scanned > _SCAN:
                break
            if post.state != _QUEUED:
                continue
            if post.thread_key != first.thread_key:
                if reach_past_others:
                    continue  # another place's post: it keeps its turn there
                break
            closes = may_close and post.closes_batch
            if not post.batchable and not closes:
                break
            post.materialize()
            total += len(post.display()) + 1
            if total > max_chars:
                break
            batch.append(post)
            if closes:
                break
        for post in batch:
            self._remove(post)
        self._head()
        return batch

    def clear(self) -> list[Post]:
        """Removes and returns everything queued."""
        items = [p for p in self._items if p.state == _QUEUED]
        for post in items:
            post.state = _GONE
        self._items.clear()
        self._optional_items.clear()
        self._log_items.clear()
        self._live = 0
        self._bytes = 0
        self._optional = 0
        return items

    def take_dropped(self) -> Counter[str]:
        """Returns and resets the drop counts."""
        dropped, self.dropped = self.dropped, Counter()
        return dropped
