"""A training run in its own process, for tests that stop it from outside.

Usage: ``python child_training.py MODE`` with ``SLACK_BOT_TOKEN`` and
``SLACK_API_URL`` set. A run of 4 epochs of 5 iterations; prints ``ready`` at
iteration 12, after the snapshot of epoch 2 (when ``CHILD_OUT`` names a
snapshot directory: then a new run there resumes from the latest snapshot,
ppe's ``autoload``). Modes:

* ``wait``: from iteration 12 on, train slowly (the test sends a signal);
* ``exit``: call ``sys.exit(3)`` at iteration 12;
* ``fail``: raise an exception at iteration 12 (ppe calls ``on_error``);
* ``finish``: train to the end.

With ``CHILD_SAY=1`` it prints ``<event> logged`` when the end, error or
interrupted record is logged (right before the flush that delivers it).
``CHILD_CHANNEL`` picks the channel, ``CHILD_FLUSH_TIMEOUT`` configures a
SlackHandler with that ``flush_timeout`` instead of the extension's own, and
with ``CHILD_SECOND=1`` a second such handler (and a second extension) for
the channel ``alerts``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import pytorch_pfn_extras as ppe
import torch

import ppe_slacklog

CHANNEL = os.environ.get("CHILD_CHANNEL", "experiment-progress")


def _say(record: logging.LogRecord) -> bool:
    event = getattr(record, "ppe_event", None)
    if event in ("end", "error", "interrupted"):
        print(f"{event} logged", flush=True)
    return True


def main() -> None:
    mode = sys.argv[1]
    if os.environ.get("CHILD_SAY") == "1":
        # A filter, not a handler: the routing stays as it was; the level
        # lets every event through the logger, so that the filter sees it.
        watched = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
        watched.addFilter(_say)
        watched.setLevel(logging.INFO)
    second = os.environ.get("CHILD_SECOND") == "1"
    if os.environ.get("CHILD_FLUSH_TIMEOUT"):
        timeout = float(os.environ["CHILD_FLUSH_TIMEOUT"])
        logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
        logger.addHandler(ppe_slacklog.SlackHandler(CHANNEL, flush_timeout=timeout))
        if second:
            other = logging.getLogger("second")
            other.addHandler(ppe_slacklog.SlackHandler("alerts", flush_timeout=timeout))
            other.setLevel(logging.INFO)
        logger.setLevel(logging.INFO)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = os.environ.get("CHILD_OUT")
    manager = ppe.training.ExtensionsManager(
        model, optimizer, 4, iters_per_epoch=5, out_dir=out or "result"
    )
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch} loss {loss:.2f}")
    )
    if second:
        manager.extend(ppe_slacklog.Slack("alerts", logger="second"), name="second")
    if out:
        manager.extend(
            ppe.training.extensions.snapshot(autoload=True), trigger=(1, "epoch")
        )
    while not manager.stop_trigger:
        with manager.run_iteration():
            loss = model(torch.ones(1, 2)).pow(2).sum()
            loss.backward()
            ppe.reporting.report({"loss": loss.item()})
            if manager.iteration + 1 == 12:
                print("ready", flush=True)
                if mode == "exit":
                    sys.exit(3)
                if mode == "fail":
                    raise RuntimeError("child failed")
            if mode == "wait" and manager.iteration + 1 >= 12:
                time.sleep(1.0)
    print("done", flush=True)


if __name__ == "__main__":
    main()
