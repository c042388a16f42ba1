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
_ALWAYS_KEPT: Final = frozenset({"start", "end", "error", "interrupted"})
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
        if self.files:
            size += sum(len(f.content) for f in self.files)
        return size

    def display(self) -> str:
        """The text as sent: repeats collapsed into one line with a count."""
        return self.text if self.repeat == 1 else f"{self.text} (×{self.repeat})"


class PostQueue:
    """A FIFO of posts bounded by count and bytes.

    Over a bound, the oldest non-essential post (trigger events, records
    below WARNING) is dropped first. Essential posts may use up to twice the
    bound; past that the oldest plain log record goes, whatever its level.
    Start, end and error events are never dropped. A post identical to the
    last one queued in a backlog (three or more waiting) is not queued
    again: the last one's count goes up.

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
        self._bytes = 0
        self._optional = 0
        #: Posts dropped (by kind) since the last :meth:`take_dropped`.
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """Approximate memory held by the queued posts."""
        return self._bytes

    def add(self, post: Post) -> int:
        """Queues ``post``; returns how many records were dropped to make room."""
        items = self._items
        # Repeats collapse only in a backlog (a storm, or Slack away): a
        # message that can go out at once is sent as it is.
        if len(items) >= _COLLAPSE_BACKLOG:
            last = items[-1]
            if (
                last.text == post.text
                and last.thread_key == post.thread_key
                and last.kind == post.kind
                and not last.files
                and not post.files
            ):
                last.repeat += 1
                return 0
        items.append(post)
        self._account(post, +1)
        dropped = 0
        # The newest post is never dropped for its own size: a bound smaller
        # than one post would otherwise lose it with Slack perfectly healthy.
        while len(items) > 1 and (
            len(items) > self.max_records or self._bytes > self.max_bytes
        ):
            removed = self._drop_one()
            if not removed:
                break
            dropped += removed
        return dropped

    def _account(self, post: Post, sign: int) -> None:
        self._bytes += sign * post.size
        if not post.essential:
            self._optional += sign

    def _drop_one(self) -> int:
        """Drops one post by the policy above; returns the records it held."""
        if self._optional and not self._items[0].essential:
            # The common case (a flood of INFO records): drop from the head.
            post = self._items.popleft()
            self._account(post, -1)
            self.dropped[post.kind] += post.repeat
            return post.repeat
        index = self._oldest(lambda p: not p.essential) if self._optional else None
        if index is None:
            hard = (
                len(self._items) > 2 * self.max_records
                or self._bytes > 2 * self.max_bytes
            )
            if not hard:
                return 0
            index = self._oldest(lambda p: p.kind == "log")
            if index is None:
                return 0
        post = self._items[index]
        del self._items[index]
        self._account(post, -1)
        self.dropped[post.kind] += post.repeat
        return post.repeat

    def _oldest(self, test: Callable[[Post], bool]) -> int | None:
        # The newest post is the likeliest only candidate when the queue is
        # full of essential ones: check it before scanning from the head.
        if self._optional == 1 and test(self._items[-1]):
            return len(self._items) - 1
        for index, post in enumerate(self._items):
            if test(post):
                return index
        return None

    def take(self) -> Post:
        """Removes and returns the oldest post."""
        post = self._items.popleft()
        self._account(post, -1)
        return post

    def take_followers(
        self, first: Post, max_chars: int, *, may_close: bool = False
    ) -> list[Post]:
        """Removes the posts that can share ``first``'s message, in order.

        Followers must be batchable, of the same thread, and fit with
        ``first`` in ``max_chars`` characters (one line each). With
        ``may_close`` (Slack is slow), a plain end message may close the
        batch: the end of a run then costs no request of its own and
        arrives within the flush.

        Example:
            >>> q = PostQueue(max_records=10, max_bytes=10_000)
            >>> for post in [Post("e1", "r", kind="trigger"),
            ...              Post("done", "r", kind="end"),
            ...              Post("next", "r", kind="trigger")]:
            ...     _ = q.add(post)
            >>> first = q.take()
            >>> [p.text for p in q.take_followers(first, 100, may_close=True)]
            ['done']
        """
        batch: list[Post] = []
        if not first.batchable:
            return batch
        total = len(first.display())
        while self._items:
            nxt = self._items[0]
            if nxt.thread_key != first.thread_key:
                break
            closes = may_close and nxt.closes_batch
            if not nxt.batchable and not closes:
                break
            total += len(nxt.display()) + 1
            if total > max_chars:
                break
            batch.append(self.take())
            if closes:
                break
        return batch

    def clear(self) -> list[Post]:
        """Removes and returns everything queued."""
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        self._optional = 0
        return items

    def take_dropped(self) -> Counter[str]:
        """Returns and resets the drop counts."""
        dropped, self.dropped = self.dropped, Counter()
        return dropped
