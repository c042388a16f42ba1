"""The outbox: a queue of posts and the background thread that delivers them.

The training thread only appends to the queue. One sender thread per outbox
posts in order, so a thread's parent always precedes its replies and files
land next to their message. Failures are retried when retrying can help and
reported once when it cannot; nothing here ever raises into the caller.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ._diagnostics import Once
from .chunking import DEFAULT_MAX_CHARS, split_text
from .slackapi import FileData, SlackApi, SlackDeliveryError
from .stats import DeliveryStats

__all__ = ["Outbox", "Post", "in_sender_thread"]

# Seconds between attempts at a post that failed for a reason that may pass
# (Slack unreachable, 5xx after slack_sdk's own retries).
_RETRY_DELAYS: Final = (1.0, 2.0, 4.0, 8.0, 16.0)

_sender_state = threading.local()


def in_sender_thread() -> bool:
    """True on a sender thread: records logged there must not be sent again."""
    return bool(getattr(_sender_state, "active", False))


@dataclass
class Post:
    """One message to deliver: text, the thread it belongs to, files.

    Attributes:
        text: Slack mrkdwn text; may be empty when only files are sent.
        thread_key: Posts sharing a key share a Slack thread (the first one
            starts it); ``None`` posts at top level.
        files: Files to share next to the text.
        essential: Start, end, error and WARNING-or-above records.
        label: What the post is, for diagnostics ("end message").
    """

    text: str
    thread_key: str | None = None
    files: tuple[FileData, ...] = ()
    essential: bool = False
    label: str = "message"
    # Delivery progress, so a retry resumes instead of re-posting parts.
    _steps: list[tuple[str, str]] | None = field(default=None, repr=False)
    _done: int = field(default=0, repr=False)


_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()


class Outbox:
    """Delivers :class:`Post` objects to one Slack channel from a background thread.

    Args:
        api: The Slack API to deliver through; its ``stats`` are the outbox's.
        channel: Channel name or ID.
        thread: Whether posts with a ``thread_key`` are threaded.
        max_chars: Longest text of one Slack message; longer texts are split.
    """

    def __init__(
        self,
        api: SlackApi,
        channel: str,
        *,
        thread: bool = True,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self._api = api
        self.channel = channel
        self.thread = thread
        self.max_chars = max_chars
        self.stats: DeliveryStats = api.stats
        self._once = Once()
        self._parents: dict[str, str] = {}
        self._closed = False
        self._init_runtime()
        _outboxes.add(self)

    def _init_runtime(self) -> None:
        # Everything a forked child must not inherit: locks possibly held by
        # the parent's sender at fork time, its queue, its thread.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Post] = deque()
        self._unfinished = 0
        self._sender: threading.Thread | None = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<Outbox {self.channel} queued={len(self._queue)}>"

    @property
    def pending(self) -> int:
        """Posts accepted but not yet delivered or given up on."""
        return self._unfinished

    def submit(self, post: Post) -> None:
        """Queues ``post``; returns at once, never touches the network."""
        if self._pid != os.getpid():
            self._init_runtime()
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
            self._queue.append(post)
            self._unfinished += 1
            self.stats.queued += 1
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(
                    target=self._run,
                    name=f"ppe_slacklog-sender-{self.channel}",
                    daemon=True,
                )
                self._sender.start()
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Waits until everything queued is delivered; ``False`` on timeout."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._unfinished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float) -> None:
        """Delivers what it can within ``timeout``, then stops the sender."""
        delivered = self.flush(timeout)
        with self._cond:
            self._closed = True
            left = self._unfinished
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
                f"could not be delivered within {timeout:g}s and are dropped "
                "(raise flush_timeout to wait longer).",
            )

    def _run(self) -> None:
        _sender_state.active = True
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self.stats.dropped += len(self._queue)
                    self._unfinished -= len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                post = self._queue[0]
            self._deliver(post)
            with self._cond:
                self._queue.popleft()
                self._unfinished -= 1
                self._cond.notify_all()

    def _deliver(self, post: Post) -> None:
        for attempt in range(len(_RETRY_DELAYS) + 1):
            try:
                self._send(post)
            except SlackDeliveryError as exc:
                if exc.permanent or attempt == len(_RETRY_DELAYS):
                    self._give_up(post, exc)
                    return
                self.stats.retries += 1
                with self._cond:
                    if self._cond.wait_for(
                        lambda: self._closed, timeout=_RETRY_DELAYS[attempt]
                    ):
                        # Closing: close() reports what is left undelivered.
                        self.stats.dropped += 1
                        return
            except Exception as exc:  # a bug must not kill the sender
                self.stats.failed += 1
                self._once.warn(
                    ("bug", type(exc).__name__),
                    f"ppe_slacklog: unexpected {type(exc).__name__} while sending "
                    f"a {post.label} to {self.channel}: {exc}",
                )
                return
            else:
                self.stats.sent += 1
                return

    def _give_up(self, post: Post, exc: SlackDeliveryError) -> None:
        self.stats.failed += 1
        why = "" if exc.permanent else " after several attempts"
        self._once.warn(
            ("error", exc.code),
            f"ppe_slacklog could not deliver a {post.label} to Slack channel "
            f"{self.channel}{why}: {exc.fix} (Slack error '{exc.code}'). "
            "Training continues; later messages to this channel fail the same "
            "way until this is fixed.",
        )

    def _plan(self, post: Post) -> list[tuple[str, str]]:
        chunks = split_text(post.text, self.max_chars) if post.text else []
        if not post.files:
            return [("post", chunk) for chunk in chunks]
        starts_thread = (
            self.thread
            and post.thread_key is not None
            and post.thread_key not in self._parents
        )
        if starts_thread:
            # The file message's ts is not returned reliably, so a new
            # thread's parent is always a plain message.
            if not chunks:
                chunks = ["📎 " + ", ".join(f.name for f in post.files)]
            return [("post", c) for c in chunks] + [("upload", "")]
        head, comment = chunks[:-1], (chunks[-1] if chunks else "")
        return [("post", c) for c in head] + [("upload", comment)]

    def _send(self, post: Post) -> None:
        api = self._api
        if post._steps is None:
            post._steps = self._plan(post)
        key = post.thread_key if self.thread else None
        while post._done < len(post._steps):
            kind, text = post._steps[post._done]
            parent = self._parents.get(key) if key is not None else None
            if kind == "post":
                posted = api.post(self.channel, text, thread_ts=parent)
                if key is not None and parent is None:
                    self._parents[key] = posted.ts
            else:
                api.upload(
                    self.channel, post.files, comment=text or None, thread_ts=parent
                )
            post._done += 1


def _after_fork_in_child() -> None:
    for outbox in list(_outboxes):
        outbox._init_runtime()


os.register_at_fork(after_in_child=_after_fork_in_child)
