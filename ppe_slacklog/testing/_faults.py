"""Thread-safe fault plan of the emulator: latency, rate limits, failures, delays."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["FaultPlan"]


@dataclass
class _TokenBucket:
    """Classic token bucket: ``capacity`` tokens, refilled at ``rate``/s."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0.0 on success, else seconds until one."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class _RateRule:
    per_second: float
    burst: int


@dataclass
class _CountedFault:
    remaining: int
    status: int
    method: str | None
    seconds: float = 0.0

    def matches(self, method: str) -> bool:
        return self.remaining > 0 and self.method in (None, method)


def _check_count(count: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")


def _check_status(status: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (4xx/5xx): {status}")


class FaultPlan:
    """All injectable faults, guarded by one lock.

    Example:
        >>> plan = FaultPlan(latency=0.0)
        >>> plan.fail_next(1, status=500, method=None)
        >>> plan.take_fail_next("chat.postMessage")
        500
    """

    def __init__(self, latency: float) -> None:
        """Create an empty plan with a base per-call latency in seconds."""
        self._lock = threading.Lock()
        self._base_latency = self._checked_latency(latency)
        self._latency = self._base_latency
        self._rules: dict[str, _RateRule] = {}
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        self._fail_next: list[_CountedFault] = []
        self._fail_after_accept: list[_CountedFault] = []
        self._drops: list[_CountedFault] = []
        self._delays: list[_CountedFault] = []
        self._outage = False

    @staticmethod
    def _checked_latency(seconds: float, what: str = "latency") -> float:
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"{what} must be >= 0 seconds, got {seconds}")
        return float(seconds)

    def reset(self) -> None:
        """Remove every fault and restore the constructor latency."""
        with self._lock:
            self._latency = self._base_latency
            self._rules.clear()
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
        value = self._checked_latency(seconds)
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

    def rate_limit(self, method: str, per_second: float | None, burst: int) -> None:
        """Install (or with ``per_second=None`` remove) a per-method limit."""
        with self._lock:
            for key in [k for k in self._buckets if k[0] == method]:
                del self._buckets[key]
            if per_second is None:
                self._rules.pop(method, None)
                return
            if per_second <= 0 or burst < 1:
                raise ValueError("rate_limit needs per_second > 0 and burst >= 1")
            self._rules[method] = _RateRule(float(per_second), int(burst))

    def check_rate_limit(self, method: str, channel: str) -> int | None:
        """Consume a token; return ``Retry-After`` seconds when over the limit."""
        with self._lock:
            rule = self._rules.get(method)
            if rule is None:
                return None
            now = time.monotonic()
            bucket = self._buckets.get((method, channel))
            if bucket is None:
                bucket = _TokenBucket(
                    rule.per_second, float(rule.burst), float(rule.burst), now
                )
                self._buckets[(method, channel)] = bucket
            wait = bucket.take(now)
            if wait <= 0.0:
                return None
            return max(1, math.ceil(wait))

    def fail_next(self, count: int, *, status: int, method: str | None) -> None:
        """Queue ``count`` calls that fail with ``status`` before any effect."""
        _check_count(count)
        _check_status(status)
        with self._lock:
            self._fail_next.append(_CountedFault(count, status, method))

    def fail_after_accept(self, count: int, *, status: int, method: str | None) -> None:
        """Queue ``count`` calls that take effect but answer ``status``."""
        _check_count(count)
        _check_status(status)
        with self._lock:
            self._fail_after_accept.append(_CountedFault(count, status, method))

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
        delay = self._checked_latency(seconds, "delay")
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

    def take_fail_next(self, method: str) -> int | None:
        """Consume a queued ``fail_next`` for ``method``; return its status."""
        with self._lock:
            fault = self._take(self._fail_next, method)
            return None if fault is None else fault.status

    def take_fail_after_accept(self, method: str) -> int | None:
        """Consume a queued ``fail_after_accept``; return its status."""
        with self._lock:
            fault = self._take(self._fail_after_accept, method)
            return None if fault is None else fault.status

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
