"""Thread-safe fault plan of the emulator: latency, rate limits, failures, delays."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["FaultPlan", "RateRule"]


@dataclass
class _TokenBucket:
    """Classic token bucket: ``capacity`` tokens, refilled at ``rate``/s."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Refill; return 0.0 when a token is there, else seconds until one."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class RateRule:
    """A token-bucket limit of one method, per channel or workspace-wide."""

    per_second: float
    burst: int
    per_channel: bool = True


@dataclass
class _CountedFault:
    remaining: int
    status: int
    method: str | None
    seconds: float = 0.0
    error: str | None = None

    def matches(self, method: str) -> bool:
        return self.remaining > 0 and self.method in (None, method)


def _check_count(count: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")


def _check_status(status: int, error: str | None) -> None:
    if error is not None and status == 200:
        return  # Slack's HTTP 200 error answers (fatal_error, internal_error)
    if not 400 <= status <= 599:
        raise ValueError(
            "status must be an HTTP error status (4xx/5xx), or 200 with an "
            f"error code: {status}"
        )


class FaultPlan:
    """All injectable faults, guarded by one lock.

    Example:
        >>> plan = FaultPlan(latency=0.0)
        >>> plan.fail_next(1, status=500, method=None)
        >>> plan.take_fail_next("chat.postMessage")
        (500, None)
    """

    def __init__(
        self, latency: float, rules: dict[str, tuple[RateRule, ...]] | None = None
    ) -> None:
        """Create a plan with a base latency (seconds) and standing rate limits."""
        self._lock = threading.Lock()
        self._base_latency = self.checked_latency(latency)
        self._latency = self._base_latency
        self._base_rules = dict(rules or {})
        self._rules: dict[str, tuple[RateRule, ...]] = dict(self._base_rules)
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        self._fail_next: list[_CountedFault] = []
        self._fail_after_accept: list[_CountedFault] = []
        self._drops: list[_CountedFault] = []
        self._delays: list[_CountedFault] = []
        self._outage = False

    @staticmethod
    def checked_latency(seconds: float, what: str = "latency") -> float:
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"{what} must be >= 0 seconds, got {seconds}")
        return float(seconds)

    def reset(self) -> None:
        """Remove every fault; restore the constructor latency and limits."""
        with self._lock:
            self._latency = self._base_latency
            self._rules = dict(self._base_rules)
            self._buckets.clear()
            self._fail_next.clear()
            self._fail_after_accept.clear()
            self._drops.clear()
            self._delays.clear()
            self._outage = False

    @property
    def latency(self) -> float:
        """Seconds every call is delayed by."""
        with self._lock:
            return self._latency

    def set_latency(self, seconds: float) -> None:
        """Set the per-call delay in seconds."""
        value = self.checked_latency(seconds)
        with self._lock:
            self._latency = value

    @property
    def outage(self) -> bool:
        """Whether the emulated outage is on."""
        with self._lock:
            return self._outage

    def set_outage(self, on: bool) -> None:
        """Switch the emulated outage on or off."""
        with self._lock:
            self._outage = bool(on)

    def rate_limit(
        self,
        method: str,
        per_second: float | None,
        burst: int,
        *,
        per_channel: bool = True,
    ) -> None:
        """Replace the limits of ``method`` (``per_second=None``: no limit)."""
        with self._lock:
            for key in [k for k in self._buckets if k[0] == method]:
                del self._buckets[key]
            if per_second is None:
                self._rules.pop(method, None)
                return
            if per_second <= 0 or burst < 1:
                raise ValueError("rate_limit needs per_second > 0 and burst >= 1")
            self._rules[method] = (
                RateRule(float(per_second), int(burst), per_channel),
            )

    def check_rate_limit(self, method: str, channel: str) -> int | None:
        """Consume a token; return ``Retry-After`` seconds when over the limit.

        Every rule of the method must have a token; none is taken otherwise.
        """
        with self._lock:
            rules = self._rules.get(method, ())
            now = time.monotonic()
            buckets: list[_TokenBucket] = []
            for number, rule in enumerate(rules):
                key = (method, f"{number}:{channel if rule.per_channel else ''}")
                bucket = self._buckets.get(key)
                if bucket is None:
                    capacity = float(rule.burst)
                    bucket = _TokenBucket(rule.per_second, capacity, capacity, now)
                    self._buckets[key] = bucket
                buckets.append(bucket)
            waits = [b.wait(now) for b in buckets]
            wait = max(waits, default=0.0)
            if wait > 0.0:
                return max(1, math.ceil(wait))
            for bucket in buckets:
                bucket.tokens -= 1.0
            return None

    def fail_next(
        self, count: int, *, status: int, method: str | None, error: str | None = None
    ) -> None:
        """Queue ``count`` calls that fail with ``status`` before any effect."""
        _check_count(count)
        _check_status(status, error)
        with self._lock:
            self._fail_next.append(_CountedFault(count, status, method, error=error))

    def fail_after_accept(
        self, count: int, *, status: int, method: str | None, error: str | None = None
    ) -> None:
        """Queue ``count`` calls that take effect but answer ``status``."""
        _check_count(count)
        _check_status(status, error)
        with self._lock:
            self._fail_after_accept.append(
                _CountedFault(count, status, method, error=error)
            )

    def drop_connections(self, count: int, *, method: str | None) -> None:
        """Queue ``count`` calls whose connection is closed without answer."""
        _check_count(count)
        with self._lock:
            self._drops.append(_CountedFault(count, 0, method))

    def delay_after_accept(
        self, count: int, seconds: float, *, method: str | None
    ) -> None:
        """Queue ``count`` calls that take effect, then answer ``seconds`` late."""
        _check_count(count)
        delay = self.checked_latency(seconds, "delay")
        with self._lock:
            self._delays.append(_CountedFault(count, 200, method, delay))

    @staticmethod
    def _take(queue: list[_CountedFault], method: str) -> _CountedFault | None:
        for fault in queue:
            if fault.matches(method):
                fault.remaining -= 1
                queue[:] = [f for f in queue if f.remaining > 0]
                return fault
        return None

    def take_drop(self, method: str) -> bool:
        """Consume a queued connection drop matching ``method``."""
        with self._lock:
            return self._take(self._drops, method) is not None

    def take_fail_next(self, method: str) -> tuple[int, str | None] | None:
        """Consume a queued ``fail_next`` for ``method``: ``(status, error)``."""
        with self._lock:
            fault = self._take(self._fail_next, method)
            return None if fault is None else (fault.status, fault.error)

    def take_fail_after_accept(self, method: str) -> tuple[int, str | None] | None:
        """Consume a queued ``fail_after_accept``: ``(status, error)``."""
        with self._lock:
            fault = self._take(self._fail_after_accept, method)
            return None if fault is None else (fault.status, fault.error)

    def take_delay_after_accept(self, method: str) -> float | None:
        """Consume a queued ``delay_after_accept``; return its delay in seconds.

        Example:
            >>> plan = FaultPlan(latency=0.0)
            >>> plan.delay_after_accept(1, 2.5, method="chat.postMessage")
            >>> plan.take_delay_after_accept("auth.test") is None
            True
            >>> plan.take_delay_after_accept("chat.postMessage")
            2.5
        """
        with self._lock:
            fault = self._take(self._delays, method)
            return None if fault is None else fault.seconds
