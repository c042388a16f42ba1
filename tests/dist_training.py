"""A training job of two processes under ``torchrun`` (gloo, CPU), for tests.

Usage: ``torchrun --standalone --nproc-per-node 2 dist_training.py MODE`` with
``SLACK_BOT_TOKEN`` and ``SLACK_API_URL`` set. Modes:

* ``ok``: 2 epochs on every rank, then the end; one extension posts to
  ``experiment-progress`` (trigger messages from rank 0, the default), another
  to ``alerts`` with trigger messages from every rank;
* ``fail``: rank 1 raises at iteration 3 while rank 0 trains on slowly,
  until torchrun stops it (SIGTERM) because rank 1 died.

The loop uses no collective, so rank 0 never waits for the dead rank 1: what
is tested is that the extension itself does not either.
"""

from __future__ import annotations

import sys
import time

import pytorch_pfn_extras as ppe
import torch
import torch.distributed as dist

import ppe_slacklog


def main() -> None:
    mode = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
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
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
