"""Which Slack thread each run's posts go to, for one outbox's channel.

A run's thread is started by its first post, or adopted: saved by a resumed
run, or found by a function (another rank's thread, waited for on the
sender thread). A thread this process did not start is checked once before
the first post into it: Slack accepts a reply whose parent is gone and shows
it nowhere. The threads themselves live in :mod:`ppe_slacklog.runs`, so that
every handler of the channel shares them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

from ._diagnostics import Once
from .runs import run_threads
from .slackapi import SlackDeliveryError

__all__ = ["ChannelThreads"]

# A thread that could not be checked because Slack limits reading history
# (1 request a minute for some apps) is checked again after this long.
RECHECK_LIMITED: Final = 60.0

Finder = Callable[[], "str | None"]


class _CanCheck(Protocol):
    def thread_exists(self, channel: str, ts: str) -> bool | None:
        """Whether ``ts`` (a thread's parent) exists; ``None``: cannot tell."""
        ...


class ChannelThreads:
    """The threads of runs in one channel, as one outbox's sender sees them.

    Args:
        api: Checks whether a thread's parent still exists.
        channel: Channel name or ID, for messages.
        place: Where requests go (a key that does not show a secret).
        once: Reports each problem once.

    Example:
        >>> class Slack:
        ...     def thread_exists(self, channel, ts):
        ...         return True
        >>> threads = ChannelThreads(Slack(), "general", "doc", Once())
        >>> threads.adopt("run-1", "1.000100")
        >>> threads.parent_for_post("run-1"), threads.of("run-1")
        ('1.000100', '1.000100')
    """

    def __init__(self, api: _CanCheck, channel: str, place: str, once: Once) -> None:
        self._api = api
        self._channel = channel
        self._place = place
        self._once = once
        self._registry = run_threads()
        # key -> (finder, keep looking while it answers None)
        self._finders: dict[str, tuple[Finder, bool]] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        # key -> when to check (again); later while Slack limits reading.
        self._unverified: dict[str, float] = {}
        # key -> posts sent into a thread not checked yet (reading limited).
        self._unchecked_posts: dict[str, int] = {}
        self.reset_lock()

    def reset_lock(self) -> None:
        """A fresh lock (in a forked child: another thread may have held it)."""
        self._lock = threading.Lock()

    def of(self, key: str) -> str | None:
        """The ``ts`` of run ``key``'s thread, if it was started or adopted."""
        return self._registry.get(self._place, self._channel, key)

    def forget(self, key: str) -> None:
        """Forgets run ``key``'s thread (its parent was deleted)."""
        ts = self.of(key)
        if ts is not None:
            self._registry.forget(self._place, self._channel, key, ts)

    def looking(self, key: str) -> bool:
        """Whether a finder is still looking for run ``key``'s thread."""
        return key in self._finders

    def adopt(
        self, key: str, parent: str | Finder, *, keep_looking: bool = False
    ) -> None:
        """Continues run ``key`` under ``parent`` (a ``ts``, or a function finding it).

        See :meth:`ppe_slacklog.delivery.Outbox.adopt_thread`.
        """
        with self._lock:
            if isinstance(parent, str):
                self._registry.adopt(self._place, self._channel, key, parent)
                self._unverified[key] = 0.0
                self._finders.pop(key, None)
            elif self.of(key) is None:
                self._finders[key] = (parent, keep_looking)

    def on_started(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Calls ``listener(key, ts)`` for each thread started; returns its remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def parent_for_post(self, key: str) -> str | None:
        """The thread the next post of run ``key`` replies to; ``None``: starts one.

        Asks a finder (off the training thread: this runs on the sender)
        and checks an adopted thread once, as the module says.

        Raises:
            SlackDeliveryError: Slack is away (try again later).
        """
        with self._lock:
            parent = self.of(key)
            found = self._finders.get(key) if parent is None else None
        if found is not None:
            parent = self._ask(key, found)
        return self._verified(key, parent)

    def _ask(self, key: str, found: tuple[Finder, bool]) -> str | None:
        finder, keep_looking = found
        try:
            parent = finder()
        except Exception as exc:  # someone else's code: never the sender's end
            keep_looking = False
            self._once.warn(
                ("finder", type(exc).__name__),
                f"ppe_slacklog: finding the Slack thread to continue in "
                f"{self._channel} failed ({type(exc).__name__}: {exc}); a new "
                "thread is started.",
            )
            parent = None
        with self._lock:
            if self._finders.get(key) is found and (parent or not keep_looking):
                del self._finders[key]
            if not parent:
                return self.of(key)
            # A ts adopted meanwhile (a snapshot loaded late) wins.
            known = self._registry.start(self._place, self._channel, key, parent)
            if known == parent:
                self._unverified[key] = 0.0
            return known

    def _verified(self, key: str, parent: str | None) -> str | None:
        """``parent``, once Slack confirmed that a thread we did not start exists."""
        with self._lock:
            due = self._unverified.get(key)
            if parent is None or due is None:
                return parent
            if time.monotonic() < due:
                # Waiting to check again: this post goes in unchecked.
                self._unchecked_posts[key] = self._unchecked_posts.get(key, 0) + 1
                return parent
        try:
            exists = self._api.thread_exists(self._channel, parent)
        except SlackDeliveryError as exc:
            if exc.code != "rate_limited_look_up":
                raise
            # Slack limits reading for this app: post into the thread for
            # now and check again when the limit allows.
            with self._lock:
                self._unverified[key] = time.monotonic() + RECHECK_LIMITED
                self._unchecked_posts[key] = self._unchecked_posts.get(key, 0) + 1
            self._once.warn(
                ("thread-unchecked-yet",),
                f"ppe_slacklog cannot check yet that the Slack thread {parent} "
                f"it continues in {self._channel} still exists (Slack limits "
                "reading history for this app); messages go to it meanwhile, "
                f"and it is checked again in {RECHECK_LIMITED:g}s. If its "
                "first message was deleted, Slack shows them nowhere.",
            )
            return parent
        with self._lock:
            self._unverified.pop(key, None)
            unchecked = self._unchecked_posts.pop(key, 0)
            gone = exists is False and self.of(key) == parent
            if gone:
                self._registry.forget(self._place, self._channel, key, parent)
        if exists is None:
            self._once.warn(
                ("thread-unchecked",),
                f"ppe_slacklog cannot check that the Slack thread {parent} "
                f"it continues in {self._channel} still exists (the token "
                "cannot read the channel's history): if its first message "
                "was deleted, Slack shows the replies nowhere. Grant the "
                "channels:history scope (groups:history for a private "
                "channel) so that a new thread is started instead.",
            )
        if not gone:
            return self.of(key)
        lost = (
            f" {unchecked} message(s) sent to it before it could be checked "
            "are not shown by Slack."
            if unchecked
            else ""
        )
        self._once.warn(
            ("thread-gone",),
            f"ppe_slacklog: the Slack thread {parent} to continue in "
            f"{self._channel} no longer exists (its first message was deleted, "
            f"or it is in another channel); a new thread is started.{lost}",
        )
        return None

    def started(self, key: str, ts: str) -> None:
        """Run ``key``'s first post ``ts`` started its thread: tells the listeners."""
        with self._lock:
            if self._registry.start(self._place, self._channel, key, ts) != ts:
                return  # a parent was adopted while this post was on its way
            self._unverified.pop(key, None)
        for listener in list(self._listeners):
            try:
                listener(key, ts)
            except Exception as exc:
                self._once.warn(
                    ("listener", type(exc).__name__),
                    f"ppe_slacklog: a thread listener for {self._channel} raised "
                    f"{type(exc).__name__}: {exc}",
                )
