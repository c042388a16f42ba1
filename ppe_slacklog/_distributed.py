"""Where this process stands in a ``torch.distributed`` job, and what ranks share.

A job of several processes is one run with one Slack thread. Rank 0 starts
the thread; the other ranks learn its ``ts`` through the job's c10d key-value
store (``set`` and a ``wait`` with a timeout), never through a collective: a
collective would hang every rank when one of them has died, and reporting
that death is the point.
"""

from __future__ import annotations

import contextlib
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
    #: torchrun's job id and restart count, the same on every rank; ``None``
    #: when the launcher named no job.
    elastic_id: str | None = None
    #: torchrun's restart count: its store outlives a restart of the workers,
    #: and a restarted job must not find the previous attempt's keys.
    attempt: str = "0"

    @property
    def distributed(self) -> bool:
        """Whether the job has more than one process."""
        return self.world_size > 1

    def run_id(self, ordinal: int, proposal: str, run: int = 0) -> str:
        """The run id every rank agrees on for the ``ordinal``-th extension.

        ``run`` counts the trainings that extension reported (one extension
        object reused for a second manager starts a second run, with a new
        id, on every rank alike). With the job's store, the first rank to
        ask sets it (an atomic compare-and-set: nobody waits for a
        particular rank). Without one, torchrun's job id (when it names the
        job) seeds it; failing that, each rank keeps its ``proposal``.

        Example:
            >>> from torch.distributed import HashStore
            >>> job = Job(rank=0, world_size=2, store=HashStore())
            >>> job.run_id(0, "a"), job.run_id(0, "b"), job.run_id(0, "c", run=1)
            ('a', 'a', 'c')
        """
        if not self.distributed:
            return proposal
        # The first run keeps the key it always had.
        which = f"{ordinal}" if run == 0 else f"{ordinal}/{run}"
        if self.store is not None:
            try:
                won = self.store.compare_set(
                    f"{_PREFIX}/{self.attempt}/run/{which}", "", proposal
                )
                return won.decode() if isinstance(won, bytes) else str(won)
            except Exception:  # the store is gone: report on our own
                return proposal
        if self.elastic_id is not None:
            seed = f"{self.elastic_id}/{which}".encode()
            return hashlib.sha256(seed).hexdigest()[:12]
        return proposal

    def publish_thread(self, run_id: str, channel: str, ts: str) -> None:
        """Tells the other ranks where the run's thread in ``channel`` is."""
        self._set(self._thread_key(run_id, channel), ts)

    def thread_finder(
        self, run_id: str, channel: str, *, wait: float
    ) -> Callable[[], str | None]:
        """A function that finds rank 0's thread ``ts`` (``None``: not yet).

        The first call waits up to ``wait`` seconds; later ones only look, so
        a rank whose first post came too early joins the thread later on.
        """
        key = self._thread_key(run_id, channel)
        waits = [wait]

        def find() -> str | None:
            return self._get(key, waits.pop() if waits else 0.0)

        return find

    def report_failure(self, run_id: str, text: str) -> None:
        """Tells rank 0 (its live card) that this rank failed: ``text`` says how."""
        # The store may be gone: the error message goes to the thread anyway.
        with contextlib.suppress(Exception):
            self._set(self._failure_key(run_id), text)

    def failure(self, run_id: str) -> str | None:
        """How another rank failed, if one did (never waits)."""
        return self._get(self._failure_key(run_id), 0.0)

    def _failure_key(self, run_id: str) -> str:
        return f"{_PREFIX}/{self.attempt}/failed/{run_id}"

    def _thread_key(self, run_id: str, channel: str) -> str:
        return f"{_PREFIX}/{self.attempt}/thread/{run_id}/{channel}"

    def _set(self, key: str, value: str) -> None:
        if self.store is not None:
            self.store.set(key, value)

    def _get(self, key: str, wait: float) -> str | None:
        if self.store is None:
            return None
        try:
            if wait > 0:
                self.store.wait([key], datetime.timedelta(seconds=wait))
            elif not self.store.check([key]):
                return None
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
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    job_id = os.environ.get("TORCHELASTIC_RUN_ID")
    # torchrun without --rdzv-id says "none": that names no job at all.
    elastic = None if job_id in (None, "", "none") else f"{job_id}/{attempt}"
    try:
        host = socket.gethostname()
    except OSError:
        host = "unknown host"
    return Job(rank, world_size, host, store, elastic, attempt)
