"""Where this process stands in a ``torch.distributed`` job, and what ranks share.

A job of several processes is one run with one Slack thread. Rank 0 starts
the thread; the other ranks learn its ``ts`` through the job's c10d key-value
store (``set`` and a ``wait`` with a timeout), never through a collective: a
collective would hang every rank when one of them has died, and reporting
that death is the point.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import socket
from collections.abc import Callable
from typing import Any, Final, NamedTuple

__all__ = ["Job", "current_job"]

# Keys in the job's store; the run id keeps resumed and restarted runs apart.
_PREFIX: Final = "ppe_slacklog"


class Job(NamedTuple):
    """This process's place in the job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    host: str = ""
    store: Any = None
    #: torchrun's job id and restart count, the same on every rank.
    elastic_id: str | None = None

    @property
    def distributed(self) -> bool:
        """Whether the job has more than one process."""
        return self.world_size > 1

    def run_id(self, ordinal: int, fallback: str, *, wait: float) -> str:
        """The run id every rank agrees on for the ``ordinal``-th extension.

        Under torchrun it is derived from the job id, so no rank waits for
        another. Otherwise rank 0 publishes its own and the others wait for
        it (at most ``wait`` seconds, then they keep ``fallback``).
        """
        if not self.distributed:
            return fallback
        if self.elastic_id is not None:
            seed = f"{self.elastic_id}/{ordinal}".encode()
            return hashlib.sha256(seed).hexdigest()[:12]
        key = f"{_PREFIX}/run/{ordinal}"
        if self.rank == 0:
            self._set(key, fallback)
            return fallback
        return self._get(key, wait) or fallback

    def publish_thread(self, run_id: str, channel: str, ts: str) -> None:
        """Tells the other ranks where the run's thread in ``channel`` is."""
        self._set(f"{_PREFIX}/thread/{run_id}/{channel}", ts)

    def thread_finder(
        self, run_id: str, channel: str, *, wait: float
    ) -> Callable[[], str | None]:
        """A function that waits (at most ``wait`` s) for rank 0's thread ``ts``."""
        key = f"{_PREFIX}/thread/{run_id}/{channel}"
        return lambda: self._get(key, wait)

    def _set(self, key: str, value: str) -> None:
        if self.store is not None:
            self.store.set(key, value)

    def _get(self, key: str, wait: float) -> str | None:
        if self.store is None:
            return None
        try:
            self.store.wait([key], datetime.timedelta(seconds=wait))
            value = self.store.get(key)
        except Exception:  # timed out, or the store's host (rank 0) is gone
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def current_job() -> Job:
    """Reads rank, world size and store from ``torch.distributed`` or torchrun's env.

    Without an initialised process group the rank still comes from the
    launcher's ``RANK`` / ``WORLD_SIZE``, but the ranks cannot share a
    thread: each rank's failures are posted at the top of the channel.
    """
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    store = None
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            from torch.distributed.distributed_c10d import _get_default_store

            rank, world_size = dist.get_rank(), dist.get_world_size()
            store = _get_default_store()
    except Exception:  # an odd backend must not break reporting
        pass
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic is not None:
        elastic = f"{elastic}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    try:
        host = socket.gethostname()
    except OSError:
        host = "unknown host"
    return Job(rank, world_size, host, store, elastic)
