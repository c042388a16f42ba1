"""Pacing posts to Slack's per-channel rate, shared by every handler in the process.

Slack allows about one message per second per channel, with short bursts
over that. Waiting before a post is cheaper than a 429 followed by its
``Retry-After``: a token bucket per (API URL, channel) spaces the posts of
all handlers that write to the same channel.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "TokenBucket", "bucket_for"]

#: Messages per second per channel (Slack's documented rate for chat.postMessage).
DEFAULT_RATE: Final = 1.0
#: Messages that may go out at once before the rate applies.
DEFAULT_BURST: Final = 3


class TokenBucket:
    """A thread-safe token bucket.

    Args:
        rate: Tokens added per second.
        burst: Capacity of the bucket (the bucket starts full).

    Example:
        >>> bucket = TokenBucket(rate=1.0, burst=2)
        >>> bucket.reserve(), bucket.reserve(), bucket.reserve() > 0.9
        (0.0, 0.0, True)
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Takes one token; returns how long to wait before using it (seconds)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._stamp) * self.rate
            )
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def penalize(self, seconds: float) -> None:
        """Slack answered 429 with ``Retry-After: seconds``: nothing goes out before.

        The bucket is emptied and owes ``seconds`` worth of tokens, so the
        next :meth:`reserve` waits out the ``Retry-After`` and the ones after
        it follow at ``rate``: a burst right after a 429 would draw the
        next 429 (Slack's own bucket is just as empty).

        Example:
            >>> bucket = TokenBucket(rate=1.0, burst=3)
            >>> bucket.penalize(5.0)
            >>> 4.9 < bucket.reserve() <= 5.0
            True
        """
        with self._lock:
            now = time.monotonic()
            tokens = min(
                float(self.burst), self._tokens + (now - self._stamp) * self.rate
            )
            # One token is due exactly when the wait ends.
            self._tokens = min(tokens, 1.0 - max(seconds, 0.0) * self.rate)
            self._stamp = now


_buckets: dict[tuple[str, str, float, int], TokenBucket] = {}
_buckets_lock = threading.Lock()


def _fresh_locks_in_child() -> None:
    # A lock held by the parent's sender at fork time would stay held forever.
    global _buckets_lock
    _buckets_lock = threading.Lock()
    for bucket in _buckets.values():
        bucket._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


def bucket_for(base_url: str, channel: str, rate: float, burst: int) -> TokenBucket:
    """The process-wide bucket for ``channel`` on the Slack at ``base_url``."""
    key = (base_url, channel.lstrip("#"), rate, burst)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None:
            bucket = _buckets[key] = TokenBucket(rate, burst)
        return bucket
