"""Runs a short training under one of the routing recipes in examples/recipes.

    python examples/routing.py a   # Slack thread + events.jsonl
    python examples/routing.py b   # end/error/interrupted also to #alerts
    python examples/routing.py c   # library warnings top level, training in its thread
    python examples/routing.py d   # console only, no Slack
    python examples/routing.py e   # events enriched with host and git revision

Without ``SLACK_BOT_TOKEN`` the recipe's Slack handlers talk to the bundled
emulator, and the channels are printed as a user would see them. Files the
recipe writes (``events.jsonl``) go to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytorch_pfn_extras as ppe
import torch
import yaml

import ppe_slacklog
from ppe_slacklog.testing import SlackEmulator

RECIPES = Path(__file__).resolve().parent / "recipes"


def recipe_path(letter: str) -> Path:
    """The recipe file whose name starts with ``letter``."""
    (path,) = RECIPES.glob(f"{letter}_*.yaml")
    return path


@contextlib.contextmanager
def slack() -> Iterator[SlackEmulator | None]:
    """Real Slack when SLACK_BOT_TOKEN is set, else the emulator (via env)."""
    if os.environ.get("SLACK_BOT_TOKEN"):
        yield None
        return
    with SlackEmulator() as emu:
        os.environ["SLACK_BOT_TOKEN"] = emu.token
        os.environ["SLACK_API_URL"] = emu.base_url
        try:
            yield emu
        finally:
            del os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"]


def train(fail: bool) -> None:
    """Three epochs of a tiny model, reporting loss and val/loss; may fail."""
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(  # type: ignore[attr-defined]
        model, optimizer, 3, iters_per_epoch=4
    )
    manager.extend(
        ppe_slacklog.Slack(
            "experiment-progress",
            msg="Epoch #{manager.epoch}: loss = {loss:.4f}, val/loss = {val/loss:.4f}",
        )
    )
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    val_x, val_y = torch.randn(8, 4), torch.randn(8, 1)
    with contextlib.suppress(RuntimeError):
        while not manager.stop_trigger:
            with manager.run_iteration(step_optimizers=["main"]):
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                ppe.reporting.report({"loss": loss.detach()})
                with torch.no_grad():  # a validation step, as an Evaluator would
                    val_loss = torch.nn.functional.mse_loss(model(val_x), val_y)
                ppe.reporting.report({"val/loss": val_loss})
                if fail and manager.iteration == 10:
                    raise RuntimeError("CUDA out of memory (simulated)")


def main() -> int:
    """Loads the recipe, trains, shows where the events went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=list("abcde"))
    parser.add_argument("--fail", action="store_true", help="fail in epoch 3")
    parser.add_argument("--out", default="result/routing", help="working directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = recipe_path(args.recipe)
    print(f"Recipe: {path.name}\n")
    with slack() as emu:
        os.chdir(out)
        logging.config.dictConfig(yaml.safe_load(path.read_text(encoding="utf-8")))
        logging.getLogger("myproject.data").warning("shard %d is slow to load", 3)
        train(args.fail)
        logging.shutdown()
        if emu is not None:
            for channel in ("experiment-progress", "alerts"):
                if emu.messages(channel):
                    print("\n" + emu.render(channel))
    jsonl = Path("events.jsonl")
    if jsonl.exists():
        print(f"\n{out / jsonl}:")
        print(jsonl.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    sys.exit(main())
