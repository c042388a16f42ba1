"""A training job of two processes under ``torchrun`` (gloo, CPU), for tests.

Usage: ``torchrun --standalone --nproc-per-node 2 dist_training.py MODE`` with
``SLACK_BOT_TOKEN`` and ``SLACK_API_URL`` set. Modes:

* ``ok``: 2 epochs on every rank, then the end; one extension posts to
  ``experiment-progress`` (trigger messages from rank 0, the default), another
  to ``alerts`` with trigger messages from every rank;
* ``fail``: rank 1 raises at iteration 3 while rank 0 trains on slowly,
  until torchrun stops it (SIGTERM) because rank 1 died;
* ``late``: 2 epochs; rank 0 finishes, and while its ``finalize`` flushes
  (the end record was logged: it creates the file ``DIST_MARKER``) rank 1
  crashes (``os._exit(1)``), so torchrun stops rank 0 (SIGTERM) mid-flush.
  Rank 0 prints ``rank 0 done`` if its training loop returns.

The loop uses no collective, so rank 0 never waits for the dead rank 1: what
is tested is that the extension itself does not either.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytorch_pfn_extras as ppe
import torch
import torch.distributed as dist

import ppe_slacklog


def _mark_end(record: logging.LogRecord) -> bool:
    if getattr(record, "ppe_event", None) == "end":
        Path(os.environ["DIST_MARKER"]).touch()
    return True


def _crash_once_rank_0_flushes() -> None:
    marker = Path(os.environ["DIST_MARKER"])
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os._exit(1)


def main() -> None:
    mode = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if mode == "late" and rank == 0:
        # A filter, not a handler: the extension still posts by itself.
        training_logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
        training_logger.addFilter(_mark_end)
        training_logger.setLevel(logging.INFO)  # the filter sees the end event
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs = 1000 if mode == "fail" else 2
    manager = ppe.training.ExtensionsManager(
        model, optimizer, epochs, iters_per_epoch=2
    )
    manager.extend(
        ppe_slacklog.Slack("experiment-progress", msg="epoch {manager.epoch}")
    )
    if mode == "ok":
        manager.extend(
            ppe_slacklog.Slack("alerts", msg="epoch {manager.epoch}", ranks=None),
            name="every-rank",
        )
    while not manager.stop_trigger:
        with manager.run_iteration():
            if mode == "fail":
                if rank == 1 and manager.iteration + 1 == 3:
                    raise RuntimeError("rank 1 failed")
                if rank == 0 and manager.iteration >= 2:
                    time.sleep(0.2)
            if mode == "late" and rank == 1 and manager.iteration + 1 == 4:
                _crash_once_rank_0_flushes()
    if rank == 0:
        print("rank 0 done", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
