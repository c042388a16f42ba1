"""Train a small classifier with pytorch-pfn-extras and report it to Slack.

The training is real but tiny: a two-layer MLP learns to classify a fixed,
randomly generated data set (no download, CPU only, a few seconds). Progress is
reported by :class:`ppe_slacklog.Slack`, a drop-in for
``pytorch_pfn_extras.training.extensions.Slack``: a start message, one reply
per epoch in its thread, the loss plot uploaded after the last epoch and an
end message.

Where the messages go:

* With ``SLACK_BOT_TOKEN`` set, they are posted to your Slack workspace, in
  ``--channel`` (the bot must be a member of it).
* Without it, the example starts the bundled
  :class:`ppe_slacklog.testing.SlackEmulator` (a local Slack Web API server),
  posts there and prints the channel as a Slack user would see it.

Usage:
    Without Slack (the emulator is used)::

        python examples/train.py --epochs 3

    With Slack::

        SLACK_BOT_TOKEN=xoxb-... python examples/train.py \\
            --channel experiment-progress

    ``python examples/train.py --help`` lists every option. The log and the
    plot (``statistics.png``) are written under ``--out`` (``result`` by
    default).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # PlotReport draws without a display.

import pytorch_pfn_extras as ppe
import torch
from pytorch_pfn_extras.training import extensions
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import ppe_slacklog

__all__ = ["build_parser", "main", "make_loaders", "run_training"]

NUM_FEATURES = 20
NUM_CLASSES = 4
TRAIN_SIZE = 1024
VAL_SIZE = 256


def build_parser() -> argparse.ArgumentParser:
    """Returns the command-line parser of the example."""
    parser = argparse.ArgumentParser(
        description=(
            "Train a small MLP on synthetic data with pytorch-pfn-extras and "
            "report its progress to Slack with ppe_slacklog.Slack. With "
            "SLACK_BOT_TOKEN set, messages go to your Slack workspace; without "
            "it, to a local Slack emulator whose channel is printed at the end."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--epochs", type=int, default=5, help="number of epochs to train"
    )
    parser.add_argument(
        "--channel",
        default="experiment-progress",
        help="Slack channel to post to (the bot must be a member)",
    )
    parser.add_argument(
        "--out",
        default="result",
        help="output directory of the log and of the plot statistics.png",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="minibatch size")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (SGD)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser


def make_loaders(
    batch_size: int, seed: int
) -> tuple[DataLoader[tuple[torch.Tensor, ...]], DataLoader[tuple[torch.Tensor, ...]]]:
    """Builds train and validation loaders over a fixed synthetic data set.

    Each class is a Gaussian blob around its own random center, so the task is
    learnable but not trivial.

    Args:
        batch_size: Minibatch size of both loaders.
        seed: Seed of the data and of the shuffling.

    Returns:
        The training loader (shuffled) and the validation loader.
    """
    generator = torch.Generator().manual_seed(seed)
    centers = 0.4 * torch.randn(NUM_CLASSES, NUM_FEATURES, generator=generator)

    def sample(size: int) -> TensorDataset:
        labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
        noise = torch.randn(size, NUM_FEATURES, generator=generator)
        return TensorDataset(centers[labels] + noise, labels)

    train_loader = DataLoader(
        sample(TRAIN_SIZE), batch_size=batch_size, shuffle=True, generator=generator
    )
    val_loader = DataLoader(sample(VAL_SIZE), batch_size=batch_size)
    return train_loader, val_loader


def run_training(
    *,
    epochs: int,
    channel: str,
    out: str,
    batch_size: int = 64,
    lr: float = 0.01,
    seed: int = 0,
    token: str | None = None,
    base_url: str | None = None,
) -> None:
    """Trains the model, reporting to Slack through ``ppe_slacklog.Slack``.

    Args:
        epochs: Number of epochs.
        channel: Slack channel to post to.
        out: Output directory of the extensions (log, plot).
        batch_size: Minibatch size.
        lr: Learning rate of SGD.
        seed: Seed of the model, the data and the shuffling.
        token: Slack bot token; ``None`` uses ``SLACK_BOT_TOKEN``.
        base_url: Slack API URL; ``None`` uses ``SLACK_API_URL``, else Slack.
    """
    torch.manual_seed(seed)
    train_loader, val_loader = make_loaders(batch_size, seed)
    model = nn.Sequential(
        nn.Linear(NUM_FEATURES, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def eval_func(x: torch.Tensor, t: torch.Tensor) -> None:
        logits = model(x)
        ppe.reporting.report(
            {
                "val/loss": F.cross_entropy(logits, t).item(),
                "val/accuracy": (logits.argmax(dim=1) == t).float().mean().item(),
            }
        )

    # pytorch-pfn-extras ships type hints but re-exports some names implicitly,
    # which ``mypy --strict`` flags: hence the ``type: ignore[attr-defined]``.
    manager = ppe.training.ExtensionsManager(  # type: ignore[attr-defined]
        model,
        optimizer,
        epochs,
        iters_per_epoch=len(train_loader),
        out_dir=out,
    )
    manager.extend(extensions.LogReport())  # type: ignore[attr-defined]
    evaluator = extensions.Evaluator(  # type: ignore[attr-defined]
        val_loader, model, eval_func=eval_func
    )
    manager.extend(evaluator)
    manager.extend(
        extensions.PlotReport(  # type: ignore[attr-defined]
            ["train/loss", "val/loss"], "epoch", filename="statistics.png"
        )
    )
    manager.extend(
        extensions.PrintReport(
            ["epoch", "train/loss", "val/loss", "val/accuracy", "elapsed_time"]
        )
    )
    manager.extend(
        ppe_slacklog.Slack(
            channel=channel,
            msg=(
                "Epoch #{manager.epoch}: loss = {val/loss:.4f}, "
                "accuracy = {val/accuracy:.3f}"
            ),
            end_msg="{default} \n <@username> Check out the result!",
            filenames=[os.path.join(out, "statistics.png")],
            upload_trigger=(epochs, "epoch"),
            token=token,
            base_url=base_url,
        ),
        trigger=(1, "epoch"),
    )

    while not manager.stop_trigger:
        for x, t in train_loader:
            with manager.run_iteration():
                model.train()
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), t)
                loss.backward()  # type: ignore[no-untyped-call]  # torch: untyped
                optimizer.step()
                ppe.reporting.report({"train/loss": loss.item()})


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the example; see the module docstring.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` if ``None``).

    Returns:
        The exit code.
    """
    args = build_parser().parse_args(argv)
    if args.epochs < 1:
        build_parser().error("--epochs must be at least 1")
    channel = args.channel.lstrip("#")

    def train(token: str | None = None, base_url: str | None = None) -> None:
        run_training(
            epochs=args.epochs,
            channel=channel,
            out=args.out,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            token=token,
            base_url=base_url,
        )

    if os.environ.get("SLACK_BOT_TOKEN"):
        train()
        print(
            f"Training finished; its progress was sent to Slack channel #{channel} "
            "(a SlackDeliveryWarning above tells if Slack refused it)."
        )
        return 0

    from ppe_slacklog.testing import SlackEmulator

    print("SLACK_BOT_TOKEN is not set: posting to a local Slack emulator instead.")
    with SlackEmulator() as emu:
        try:
            emu.channel_id(channel)
        except KeyError:
            emu.add_channel(channel)
        train(token=emu.token, base_url=emu.base_url)
        # Like Slack, the emulator shares uploaded files a moment later.
        emu.share_pending_files()
        thread = emu.render(channel)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Slack's texts have emoji; a non-UTF-8 console must not fail on them.
        sys.stdout.reconfigure(errors="replace")
    print()
    print("The Slack thread, as a user would see it:")
    print(thread)
    return 0


if __name__ == "__main__":
    sys.exit(main())
