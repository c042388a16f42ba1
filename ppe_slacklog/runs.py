"""State of training runs that outlives any one handler: each run's Slack thread.

A run's thread belongs to the run and the channel, not to the handler that
happened to start it: ``logging.config.dictConfig`` run again between two
epochs replaces every handler, and the new one must reply in the same
thread. The registry is process-wide, keyed by (Slack API, channel, run id);
outboxes read and write it, the extension never does (it only logs).
"""

from __future__ import annotations

import os
import threading

__all__ = ["RunThreads", "channel_key", "run_threads"]


def channel_key(channel: str) -> str:
    """The channel as a key: ``#general`` and ``general`` are one channel.

    Example:
        >>> channel_key("#general"), channel_key("C0123ABCD")
        ('general', 'C0123ABCD')
    """
    return channel.lstrip("#")


class RunThreads:
    """The ``ts`` of each run's thread, per Slack API and channel (thread-safe).

    Example:
        >>> threads = RunThreads()
        >>> threads.start("https://slack.com/api/", "#general", "run-1", "1.000100")
        '1.000100'
        >>> threads.start("https://slack.com/api/", "general", "run-1", "2.000200")
        '1.000100'
        >>> threads.get("https://slack.com/api/", "general", "run-1")
        '1.000100'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[tuple[str, str, str], str] = {}

    def get(self, api: str, channel: str, run_id: str) -> str | None:
        """The thread of ``run_id`` in ``channel``, if it was started."""
        return self._threads.get((api, channel_key(channel), run_id))

    def start(self, api: str, channel: str, run_id: str, ts: str) -> str:
        """Records a thread that was just started; an earlier one wins.

        Returns:
            The run's thread: ``ts``, or the one that was there first (a
            thread adopted, or started by another handler, meanwhile).
        """
        with self._lock:
            return self._threads.setdefault((api, channel_key(channel), run_id), ts)

    def adopt(self, api: str, channel: str, run_id: str, ts: str) -> None:
        """Continues ``run_id`` in the existing thread ``ts`` (a resumed run)."""
        with self._lock:
            self._threads[(api, channel_key(channel), run_id)] = ts

    def forget(self, api: str, channel: str, run_id: str, ts: str) -> None:
        """Forgets thread ``ts`` of ``run_id`` (its parent was deleted)."""
        key = (api, channel_key(channel), run_id)
        with self._lock:
            if self._threads.get(key) == ts:
                del self._threads[key]


_threads = RunThreads()


def run_threads() -> RunThreads:
    """The process's registry of run threads."""
    return _threads


def _fresh_lock_in_child() -> None:
    # A lock held by a parent's thread at fork time would stay held forever.
    _threads._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)
