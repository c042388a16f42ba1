"""The state of one run's live card, built from the training events a handler saw.

The training thread only appends to a card's inbox (:meth:`LiveCard.feed`:
one ``deque.append``); the card thread (:mod:`ppe_slacklog.cards`) folds the
inbox into the state (:meth:`LiveCard.absorb`), asks the run's progress probe
where the live manager is between events, and renders a
:class:`~ppe_slacklog.card.CardView`. Nothing here does I/O.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from .card import FINAL_STATES, CardView, MetricRow
from .events import EventKind, ManagerSnapshot, RunFacts

__all__ = [
    "DEFAULT_CARD_INTERVAL",
    "DEFAULT_CHART_INTERVAL",
    "MAX_CARD_METRICS",
    "CardOptions",
    "LiveCard",
    "Progress",
    "higher_is_better",
]

#: Seconds between two edits of a card (and between two looks at the
#: manager's progress), unless ``card_interval`` says.
DEFAULT_CARD_INTERVAL: Final = 15.0
#: Seconds between two charts attached during a run.
DEFAULT_CHART_INTERVAL: Final = 600.0
#: Metrics a card shows when ``card_metrics`` does not name them.
MAX_CARD_METRICS: Final = 8

# Events waiting to be folded in; past this, the oldest are folded in
# unseen by the chart (the card itself only needs the newest).
_INBOX_MAX: Final = 100_000
# Points kept per metric for the chart; past it, every other one goes.
_HISTORY_MAX: Final = 20_000
# Progress samples kept for the throughput (iterations per second).
_SAMPLES: Final = 32

_KIND_STATE: Final[Mapping[str, str]] = {
    "start": "running",
    "trigger": "running",
    "end": "finished",
    "error": "failed",
    "interrupted": "interrupted",
    "stopped": "stopped",
    "stall": "stalled",
    "resume_progress": "running",
}

# Events that change nothing once the run ended.
_NOT_AFTER_END: Final = frozenset(
    ("start", "trigger", "stall", "resume_progress", "nonfinite", "alert")
)

_HIGHER_WORDS: Final = (
    "acc",
    "auc",
    "f1",
    "precision",
    "recall",
    "score",
    "map",
    "bleu",
    "iou",
    "dice",
    "psnr",
    "ssim",
    "reward",
    "return",
)


def higher_is_better(key: str) -> bool:
    """Whether a metric named ``key`` improves upward (accuracy) or downward (loss).

    Judged by the last part of the name; losses, errors and anything unknown
    improve downward. ``card_metrics={"key": "max"}`` says it explicitly.

    Example:
        >>> higher_is_better("val/accuracy"), higher_is_better("main/loss")
        (True, False)
    """
    name = key.rsplit("/", 1)[-1].lower()
    if "loss" in name or "err" in name:
        return False
    return any(word in name for word in _HIGHER_WORDS)


class Progress(NamedTuple):
    """Where the live manager is, read between events by the run's probe."""

    iteration: int
    epoch_detail: float
    elapsed: float
    #: Iterations of the whole run (from the stop trigger), when known.
    max_iterations: int | None = None
    max_epochs: int | None = None
    #: Another rank of the job failed: how (rank 0's card shows it).
    failure: str | None = None


class CardOptions(NamedTuple):
    """A handler's card settings (see :class:`~ppe_slacklog.SlackHandler`)."""

    #: Metric keys to show, with their direction (``True``: higher is
    #: better); ``None``: every scalar of the last trigger, at most 8.
    metrics: tuple[tuple[str, bool], ...] | None = None
    interval: float = DEFAULT_CARD_INTERVAL
    #: Seconds between charts during the run; ``None``: only at the end.
    chart_interval: float | None = DEFAULT_CHART_INTERVAL
    #: Attach a chart at all (needs matplotlib).
    chart: bool = True

    @classmethod
    def of(
        cls,
        metrics: Sequence[str] | Mapping[str, str] | None,
        interval: float,
        chart_interval: float | None,
    ) -> CardOptions:
        """Checks and normalizes the handler's arguments.

        Raises:
            ValueError: A bad interval or direction.

        Example:
            >>> CardOptions.of({"val/acc": "max"}, 15, None).metrics
            (('val/acc', True),)
        """
        if not (isinstance(interval, (int, float)) and interval > 0):
            raise ValueError(
                f"card_interval must be a positive number, got {interval!r}"
            )
        if chart_interval is not None and not (
            isinstance(chart_interval, (int, float)) and chart_interval > 0
        ):
            raise ValueError(
                "chart_interval must be a positive number of seconds or None, "
                f"got {chart_interval!r}"
            )
        chosen: tuple[tuple[str, bool], ...] | None = None
        if metrics is not None:
            if isinstance(metrics, str):
                raise ValueError(
                    f"card_metrics must be a list of keys, got the string {metrics!r}"
                )
            if isinstance(metrics, Mapping):
                pairs = []
                for key, way in metrics.items():
                    if way not in ("min", "max"):
                        raise ValueError(
                            f"card_metrics[{key!r}] must be 'min' or 'max', got {way!r}"
                        )
                    pairs.append((str(key), way == "max"))
                chosen = tuple(pairs)
            else:
                chosen = tuple((str(k), higher_is_better(str(k))) for k in metrics)
        return cls(chosen, float(interval), chart_interval)


class _Metric:
    __slots__ = ("best", "best_epoch", "higher", "history", "latest", "nonfinite")

    def __init__(self, higher: bool) -> None:
        self.higher = higher
        self.latest: Any = None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.nonfinite = False
        self.history: list[tuple[float, float]] = []

    def add(self, value: Any, epoch: int, x: float) -> None:
        self.latest = value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.nonfinite = False
            return
        number = float(value)
        self.nonfinite = not math.isfinite(number)
        if self.nonfinite:
            return
        better = self.best is None or (
            number > self.best if self.higher else number < self.best
        )
        if better:
            self.best = number
            self.best_epoch = epoch
        history = self.history
        history.append((x, number))
        if len(history) > _HISTORY_MAX:
            # Halve the resolution: bounded memory over any run length.
            del history[1:-1:2]

    def row(self, key: str) -> MetricRow:
        latest = self.latest
        return MetricRow(
            key,
            latest if isinstance(latest, (int, float, str)) else None,
            self.best,
            self.best_epoch,
            self.higher,
            self.nonfinite,
        )


ProgressProbe = Callable[[], "Progress | None"]


class LiveCard:
    """One run's card in one channel: what it shows, and what Slack shows.

    Args:
        run_id: The run.
        options: The settings of the handler that made it.

    Example:
        >>> card = LiveCard("r1", CardOptions())
        >>> card.feed("start", ManagerSnapshot(max_epochs=4), None)
        >>> card.feed("trigger", ManagerSnapshot(
        ...     epoch=1, iteration=10, epoch_detail=1.0, elapsed_time=5.0,
        ...     max_epochs=4, observation={"loss": 0.5}), None)
        >>> view = card.absorb()
        >>> view.state, view.epoch, view.max_iterations, view.metrics[0].best
        ('running', 1, 40, 0.5)
    """

    def __init__(self, run_id: str, options: CardOptions) -> None:
        self.run_id = run_id
        self.options = options
        self.pid = os.getpid()
        # Appended by the training thread, emptied by the card thread.
        self._inbox: deque[tuple[Any, ...]] = deque(maxlen=_INBOX_MAX)
        self.lock = threading.Lock()
        self.probe: ProgressProbe | None = None
        self.state = "running"
        self.identity = ""
        self.resumed = False
        self._resumed_at: tuple[int, int] | None = None
        self.note: str | None = None
        self._position = Progress(0, 0.0, 0.0)
        self._max_epochs: int | None = None
        self._max_iterations: int | None = None
        self._limits_known = False
        self._metrics: dict[str, _Metric] = {}
        if options.metrics is not None:
            for key, higher in options.metrics:
                self._metrics[key] = _Metric(higher)
        self._samples: deque[tuple[float, int]] = deque(maxlen=_SAMPLES)
        self.chart_file: str | None = None
        self._view: CardView | None = None
        #: Bumped whenever the view changes; ``shown`` is what Slack has.
        self.version = 0
        self.shown = 0

    # -- the training thread ---------------------------------------------------

    def feed(
        self,
        kind: EventKind,
        snapshot: ManagerSnapshot,
        run: RunFacts | None,
        note: str | None = None,
    ) -> None:
        """Takes one event (training thread: one append, nothing else)."""
        self._inbox.append((kind, snapshot, run, note))

    # -- the card thread -------------------------------------------------------

    @property
    def final(self) -> bool:
        """Whether the run ended (the card changes no more)."""
        return self.state in FINAL_STATES

    @property
    def waiting(self) -> bool:
        """Events fed but not folded in yet."""
        return bool(self._inbox)

    def history(self) -> dict[str, list[tuple[float, float]]]:
        """The metrics' finite values over the run, for the chart (a copy)."""
        with self.lock:
            return {k: list(m.history) for k, m in self._metrics.items() if m.history}

    def best(self) -> dict[str, tuple[float, float]]:
        """Each metric's best value, as ``(x, value)`` on the chart's axis."""
        with self.lock:
            found: dict[str, tuple[float, float]] = {}
            for key, metric in self._metrics.items():
                for x, y in metric.history:
                    if y == metric.best:
                        found[key] = (x, y)
                        break
            return found

    def absorb(self, *, poll: bool = False) -> CardView:
        """Folds the waiting events in (and, with ``poll``, asks the probe).

        Returns:
            The view as it is now; :attr:`version` went up if it changed.
        """
        with self.lock:
            inbox = self._inbox
            while inbox:
                self._fold(*inbox.popleft())
            if self.probe is not None:
                if poll and not self.final:
                    self._poll(self.probe)
                elif not self._limits_known:
                    self._learn_limits(self.probe)
            view = self._render()
            if view != self._view:
                self._view = view
                self.version += 1
            return view

    def _fold(
        self,
        kind: EventKind,
        snapshot: ManagerSnapshot,
        run: RunFacts | None,
        note: str | None,
    ) -> None:
        if self.final and kind in _NOT_AFTER_END:
            return  # a late trigger (or alert) after the end changes nothing
        failure = getattr(self.probe, "failure", None)
        if kind in ("interrupted", "stopped") and failure is not None:
            # Stopped because another rank failed? Then the job failed (asked
            # apart from the manager, which may be gone by now).
            text = failure()
            if text and self.state != "failed":
                self.state = "failed"
                self.note = text
        if self.state != "failed":  # a failure is what the job ends as
            self.state = _KIND_STATE.get(kind, self.state)
            if note is not None:
                self.note = note
        if kind == "start" and run is not None and run.resumed:
            self.resumed = True
            self._resumed_at = (snapshot.epoch, snapshot.iteration)
        if snapshot.max_epochs is not None and not self._limits_known:
            with contextlib.suppress(TypeError, ValueError):
                self._max_epochs = int(snapshot.max_epochs)
        # A record replayed from JSON lines has no epoch_detail: its epoch.
        detail = snapshot.epoch_detail or float(snapshot.epoch)
        self._move(Progress(snapshot.iteration, detail, snapshot.elapsed_time))
        if kind == "trigger":
            self._observe(snapshot, detail)

    def _observe(self, snapshot: ManagerSnapshot, x: float) -> None:
        metrics = self._metrics
        chosen = self.options.metrics
        for key, value in snapshot.observation.items():
            metric = metrics.get(key)
            if metric is None:
                if chosen is not None or len(metrics) >= MAX_CARD_METRICS:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue  # only scalars earn a row of their own
                metric = metrics[key] = _Metric(higher_is_better(key))
            metric.add(value, snapshot.epoch, x)

    def _poll(self, probe: ProgressProbe) -> None:
        try:
            progress = probe()
        except Exception:  # the manager is gone or not ready: nothing new
            return
        if progress is None:
            if not self.final:
                # The manager is gone with no end reported: the loop was
                # left (a notebook, a sweep): the card must not run forever.
                self.state = "stopped"
                self.note = (
                    "⏹️ The training loop was left before its end (its manager is gone)."
                )
            return
        if progress.failure and self.state != "failed":
            self.state = "failed"
            self.note = progress.failure
        # The stop trigger's limits win over the manager's max_epochs (which
        # a stop trigger in iterations leaves as it was).
        if progress.max_iterations:
            self._max_iterations = progress.max_iterations
            self._limits_known = True
        if progress.max_epochs:
            self._max_epochs = progress.max_epochs
            self._limits_known = True
        self._move(progress)

    def _learn_limits(self, probe: ProgressProbe) -> None:
        """The stop trigger's limits, for a run that ended before any poll."""
        try:
            progress = probe()
        except Exception:
            return
        if progress is not None:
            self._limits_known = True
            if progress.max_iterations:
                self._max_iterations = progress.max_iterations
            if progress.max_epochs:
                self._max_epochs = progress.max_epochs

    def _move(self, progress: Progress) -> None:
        if progress.iteration < self._position.iteration and not self.resumed:
            # An older event folded in after a newer probe reading.
            return
        self._position = progress
        samples = self._samples
        if samples and progress.iteration < samples[-1][1]:
            samples.clear()  # resumed from an earlier point
        if not samples or progress.elapsed > samples[-1][0]:
            samples.append((progress.elapsed, progress.iteration))

    def _throughput(self) -> float | None:
        samples = self._samples
        if len(samples) < 2:
            return None
        (t0, i0), (t1, i1) = samples[0], samples[-1]
        if t1 <= t0 or i1 < i0:
            return None
        return (i1 - i0) / (t1 - t0)

    def _limits(self) -> tuple[int | None, int | None]:
        position = self._position
        max_epochs = self._max_epochs
        max_iterations = self._max_iterations
        if max_iterations is None and max_epochs and position.epoch_detail > 0:
            per_epoch = position.iteration / position.epoch_detail
            max_iterations = round(max_epochs * per_epoch)
        return max_epochs, max_iterations

    def _render(self) -> CardView:
        position = self._position
        max_epochs, max_iterations = self._limits()
        rate = self._throughput()
        eta = None
        if rate and max_iterations is not None and not self.final:
            eta = max(max_iterations - position.iteration, 0) / rate
        rows = tuple(m.row(k) for k, m in self._metrics.items())
        return CardView(
            state=self.state,
            identity=self.identity,
            epoch=int(position.epoch_detail),
            max_epochs=max_epochs,
            iteration=position.iteration,
            max_iterations=max_iterations,
            elapsed=position.elapsed,
            throughput=rate,
            eta=eta,
            metrics=rows,
            note=self.note,
            chart_file=self.chart_file,
            resumed_at=self._resumed_at,
        )
