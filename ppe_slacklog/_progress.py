"""Where a live manager is, read from another thread: the live card's probe.

The card thread asks between events (every ``card_interval``), so that a run
with hour-long epochs still shows it advances. Reading a few attributes of
the manager is all it does: no lock, no work on the training thread, and a
weak reference, so the probe never keeps a finished manager alive.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

from .cardstate import Progress

__all__ = ["ManagerProbe", "progress_probe", "stop_limits"]


def stop_limits(
    manager: Any, iteration: int, epoch_detail: float
) -> tuple[int | None, int | None]:
    """Iterations and epochs of the whole run, from the manager's stop trigger.

    Returns:
        ``(max_iterations, max_epochs)``; either is ``None`` when unknown
        (a trigger of another kind, or the epoch length not known yet).

    Example:
        >>> class Trigger:
        ...     period, unit = 5, "epoch"
        >>> class Manager:
        ...     _stop_trigger, max_epochs = Trigger(), 5
        >>> stop_limits(Manager(), 30, 3.0)
        (50, 5)
    """
    per_epoch = iteration / epoch_detail if epoch_detail > 0 else None
    trigger = getattr(manager, "_stop_trigger", None)
    period = getattr(trigger, "period", None)
    unit = getattr(trigger, "unit", None)
    if isinstance(period, (int, float)) and period > 0:
        if unit == "epoch":
            return (
                None if per_epoch is None else round(period * per_epoch),
                math.ceil(period),
            )
        if unit == "iteration":
            epochs = None if per_epoch is None else math.ceil(period / per_epoch)
            return int(period), epochs
    max_epochs = getattr(manager, "max_epochs", None)
    if isinstance(max_epochs, int) and max_epochs > 0:
        return (
            None if per_epoch is None else round(max_epochs * per_epoch),
            max_epochs,
        )
    return None, None


class ManagerProbe:
    """Tells where a manager is now; holds it weakly (see :func:`progress_probe`)."""

    def __init__(
        self, ref: weakref.ref[Any], failure: Callable[[], str | None] | None
    ) -> None:
        self._ref = ref
        self._failure = failure

    def __call__(self) -> Progress | None:
        """Where the manager is; ``None`` once it is gone (the run was left).

        Raises:
            Exception: The manager is not ready (asked again later).
        """
        live = self._ref()
        if live is None:
            return None
        iteration = int(live.iteration)
        detail = float(live.epoch_detail)
        max_iterations, max_epochs = stop_limits(live, iteration, detail)
        return Progress(
            iteration,
            detail,
            float(live.elapsed_time),
            max_iterations,
            max_epochs,
            self.failure(),
        )

    def failure(self) -> str | None:
        """How another rank of the job failed, if one did (whatever the manager)."""
        if self._failure is None:
            return None
        try:
            return self._failure()
        except Exception:  # the job's store is gone: nothing to tell
            return None


def progress_probe(
    manager: Any, *, failure: Callable[[], str | None] | None = None
) -> ManagerProbe | None:
    """A function that tells where ``manager`` is now (``None``: cannot be told).

    ``failure`` tells how another rank of the job failed, if one did (rank
    0's card shows it).

    Example:
        >>> class Manager:
        ...     iteration, epoch_detail, elapsed_time, max_epochs = 20, 2.0, 4.0, 4
        >>> manager = Manager()  # the probe holds it weakly
        >>> progress_probe(manager)()  # doctest: +NORMALIZE_WHITESPACE
        Progress(iteration=20, epoch_detail=2.0, elapsed=4.0,
                 max_iterations=40, max_epochs=4, failure=None)
    """
    try:
        ref = weakref.ref(manager)
    except TypeError:  # a manager that cannot be referred to weakly
        return None
    return ManagerProbe(ref, failure)
