"""The alerts' watchdog: one daemon thread per process, off the training loop.

The training thread gives each run's trigger snapshots to its
:class:`RunWatch` with one ``deque.append`` (see ``Slack.__call__``);
nothing else of the checks runs there. The thread ``ppe_slacklog-watchdog``
tends every watched run of every extension of the process:

* stall: it reads the manager's iteration through the run's weak progress
  probe, and reports when it has not advanced for ``stall_after`` seconds
  (``"auto"``: max(10 min, 20 x the median iteration time so far)), and
  again when it advances. It reads attributes only, so a training thread
  blocked in native code (a hung collective, ``time.sleep``) is seen too;
* non-finite values and threshold rules, on the queued snapshots.

Alerts are logged through the run's extension (``emit``), from this thread
(not a sender thread: SlackHandlers take its records). The thread is a
daemon, so it never keeps the process alive; it ends when no run is
watched, and a forked child (a DataLoader worker) watches nothing.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

from ._daemon import start_daemon
from ._safetext import describe
from .alerts import Alert
from .cardstate import Progress
from .events import EventKind, ManagerSnapshot

__all__ = [
    "AUTO_MIN_STALL",
    "RunWatch",
    "StallAfter",
    "check_stall_after",
    "unwatch",
    "watch",
]

#: ``stall_after``: seconds, ``"auto"`` or ``None`` (off).
StallAfter = float | Literal["auto"] | None

#: The least "auto" waits before it calls a run stalled (10 minutes).
AUTO_MIN_STALL: Final = 600.0
# "auto": this many median iterations without progress is a stall.
_AUTO_FACTOR: Final = 20.0
# Iteration times kept for the median.
_SAMPLES: Final = 101
# Longest sleep of the thread: non-finite values and rules are seen this
# soon (and drained at the run's end in any case).
_TICK: Final = 1.0
# Trigger snapshots waiting for the thread, per run: a bound, not a buffer
# that grows while the thread is starved.
_MAX_PENDING: Final = 10_000

Emit = Callable[[EventKind, dict[str, Any], ManagerSnapshot], None]


def check_stall_after(value: object) -> StallAfter:
    """Validates ``stall_after`` (seconds > 0, ``"auto"`` or ``None``).

    Example:
        >>> check_stall_after("auto"), check_stall_after(30)
        ('auto', 30.0)
    """
    if value is None or value == "auto":
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValueError(
            f"stall_after must be a number of seconds > 0, 'auto' or None, "
            f"got {value!r}"
        )
    return float(value)


def _nonfinite(value: object) -> bool:
    # float subclasses too: NumPy's float64 (np.mean, sklearn's metrics).
    return isinstance(value, float) and not math.isfinite(value)


class _RuleState:
    __slots__ = ("announced", "holding", "last_alert", "rule")

    def __init__(self, rule: Alert) -> None:
        self.rule = rule
        self.holding = False
        self.announced = False
        self.last_alert: float | None = None


class RunWatch:
    """What the watchdog knows of one run (made at the run's ``initialize``).

    ``pending`` is the training thread's only contact: it appends each
    trigger's :class:`~ppe_slacklog.events.ManagerSnapshot` there.
    """

    def __init__(
        self,
        emit: Emit,
        probe: Callable[[], Progress | None] | None,
        *,
        stall_after: StallAfter,
        nonfinite: bool = True,
        rules: Sequence[Alert] = (),
        start_iteration: int | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.pending: deque[ManagerSnapshot] = deque(maxlen=_MAX_PENDING)
        self._emit = emit
        # False while the run has not begun training (its start is held: a
        # manager whose state_dict() was asked for is not stalled), and
        # once its extension is gone.
        self._ready = ready
        self._probe = probe if stall_after is not None else None
        self._stall_after = stall_after
        self._nonfinite = nonfinite
        self._rules = [_RuleState(rule) for rule in rules]
        self._lock = threading.Lock()
        self.closed = False
        # Stall: the iteration last seen, since when, iteration times.
        # Where the run starts (0, or where it resumed): the iterations done
        # before the thread first looks give an iteration time too.
        self._iteration = start_iteration
        self._since = time.monotonic()
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._stalled = False
        # Non-finite: key -> non-finite values seen since it went bad;
        # key -> its last finite value.
        self._bad: dict[str, int] = {}
        self._last_finite: dict[str, float] = {}

    @property
    def active(self) -> bool:
        """Whether the watchdog has anything to do for this run."""
        return bool(self._probe or self._nonfinite or self._rules)

    def tick(self) -> float:
        """Checks the run once; returns the longest wait before the next check."""
        with self._lock:
            if self.closed:
                return _TICK
            self._drain()
            return self._check_stall()

    def close(self) -> None:
        """The run ended: folds in what is queued (its alerts are logged
        before the end's record), then stops watching it."""
        with self._lock:
            if self.closed:
                return
            self._drain()
            if self._stalled:
                # It went on before it ended: say so before the end does.
                self._check_stall()
            self.closed = True

    # -- stall -------------------------------------------------------------

    def threshold(self) -> float | None:
        """Seconds without progress that make a stall now (``None``: off)."""
        after = self._stall_after
        if after is None:
            return None
        if after == "auto":
            samples = self._samples
            median = statistics.median(samples) if samples else 0.0
            return max(AUTO_MIN_STALL, _AUTO_FACTOR * median)
        return after

    def _check_stall(self) -> float:
        probe = self._probe
        threshold = self.threshold()
        if probe is None or threshold is None:
            return _TICK
        try:
            progress = probe()
        except Exception:  # the manager is between states: look again later
            return _TICK
        if progress is None:  # the manager is gone: the run is over
            self.closed = True
            return _TICK
        now = time.monotonic()
        if self._ready is not None and not self._ready():
            # The clock starts with the training. (The iterations it made
            # meanwhile still give an iteration time: the start is released
            # up to 0.2 s after the first iteration began.)
            self._since = now
            return max(0.05, min(_TICK, threshold / 4))
        iteration = progress.iteration
        if self._iteration is None:
            self._iteration = iteration
        elif iteration != self._iteration:
            waited = now - self._since
            if self._stalled:
                self._stalled = False
                self._emit(
                    "resume_progress",
                    {"stalled_for": round(waited, 3)},
                    _snapshot(progress),
                )
            elif iteration > self._iteration:
                self._samples.append(waited / (iteration - self._iteration))
            self._iteration = iteration
            self._since = now
        waited = now - self._since
        if not self._stalled and waited >= threshold:
            self._stalled = True
            self._emit(
                "stall",
                {
                    "stalled_for": round(waited, 3),
                    "last_iteration_time": (
                        round(self._samples[-1], 6) if self._samples else None
                    ),
                    "stall_after": threshold,
                },
                _snapshot(progress),
            )
        # Look a few times per threshold: the alert comes close to it.
        return max(0.05, min(_TICK, threshold / 4))

    # -- observations -----------------------------------------------------------

    def _drain(self) -> None:
        pending = self.pending
        while pending:
            try:
                snapshot = pending.popleft()
            except IndexError:
                return
            if self._nonfinite:
                self._check_values(snapshot)
            for state in self._rules:
                self._check_rule(state, snapshot)

    def _check_values(self, snapshot: ManagerSnapshot) -> None:
        bad, last = self._bad, self._last_finite
        for key, value in snapshot.observation.items():
            if _nonfinite(value):
                if key in bad:
                    bad[key] += 1
                    continue
                bad[key] = 1
                self._emit(
                    "nonfinite",
                    {
                        "key": key,
                        "value": str(value),
                        "last_finite": last.get(key),
                        "recovered": False,
                        "count": 1,
                    },
                    snapshot,
                )
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                last[key] = value
                count = bad.pop(key, None)
                if count is not None:
                    self._emit(
                        "nonfinite",
                        {
                            "key": key,
                            "value": value,
                            "last_finite": value,
                            "recovered": True,
                            "count": count,
                        },
                        snapshot,
                    )

    def _check_rule(self, state: _RuleState, snapshot: ManagerSnapshot) -> None:
        rule = state.rule
        if snapshot.epoch < rule.after_epoch:
            return
        value = snapshot.observation.get(rule.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            return  # the non-finite alert says it
        holds = rule.holds(value)
        if holds == state.holding:
            return
        state.holding = holds
        now = time.monotonic()
        if holds:
            state.announced = (
                state.last_alert is None or now - state.last_alert >= rule.cooldown
            )
            if not state.announced:
                return  # in its cooldown: neither this start nor its end is said
            state.last_alert = now
        elif not state.announced:
            return
        self._emit(
            "alert",
            {**rule.fields(), "value": value, "recovered": not holds},
            snapshot,
        )


def _snapshot(progress: Progress) -> ManagerSnapshot:
    return ManagerSnapshot(
        epoch=int(progress.epoch_detail),
        iteration=progress.iteration,
        epoch_detail=progress.epoch_detail,
        elapsed_time=progress.elapsed,
        max_epochs=progress.max_epochs,
    )


class _Watchdog:
    """The process's watchdog thread and the runs it watches."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._runs: list[RunWatch] = []
        self._thread: threading.Thread | None = None

    def add(self, run: RunWatch) -> None:
        with self._cond:
            self._runs.append(run)
            self._cond.notify_all()
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = start_daemon(self._run, "ppe_slacklog-watchdog")

    def remove(self, run: RunWatch) -> None:
        with self._cond:
            if run in self._runs:
                self._runs.remove(run)
            self._cond.notify_all()

    def runs(self) -> list[RunWatch]:
        with self._cond:
            return list(self._runs)

    def _run(self) -> None:
        while True:
            with self._cond:
                runs = list(self._runs)
                if not runs:
                    self._thread = None
                    return  # the next run's initialize starts a new one
            wait = _TICK
            for run in runs:
                try:
                    wait = min(wait, run.tick())
                except Exception as exc:  # a bug must not end the watchdog
                    run.closed = True
                    self.remove(run)
                    warnings.warn(
                        f"ppe_slacklog: unexpected {describe(exc)} in the alerts' "
                        "watchdog; this run is no longer watched.",
                        RuntimeWarning,
                        stacklevel=1,
                    )
            with self._cond:
                self._runs = [r for r in self._runs if not r.closed]
                if self._runs and wait > 0:
                    self._cond.wait(wait)


_watchdog = _Watchdog()


def _fresh_in_child() -> None:
    # A forked child (a DataLoader worker) watches nothing: its parent does.
    _watchdog._reset()


os.register_at_fork(after_in_child=_fresh_in_child)


def watch(run: RunWatch) -> None:
    """Starts watching ``run`` (and the thread, if none runs)."""
    if run.active:
        _watchdog.add(run)


def unwatch(run: RunWatch | None) -> None:
    """Stops watching ``run``: what it queued is checked first, on this thread."""
    if run is None:
        return
    run.close()
    _watchdog.remove(run)


def watched() -> Iterable[RunWatch]:
    """The runs watched now (for tests and diagnostics)."""
    return _watchdog.runs()
