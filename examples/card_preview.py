"""Print a live card as the bundled Slack emulator renders it (the README's picture).

The card is what ``ppe_slacklog.Slack`` keeps at the top of a run's thread,
here with fixed values (a run at epoch 7 of 20) so that the output is the
same on every machine: it is posted to a local
:class:`ppe_slacklog.testing.SlackEmulator` through the real Web API client,
and the emulator prints the channel as a person reads it.

Usage::

    python examples/card_preview.py
"""

from __future__ import annotations

from ppe_slacklog.card import CardView, MetricRow, card_blocks, card_text
from ppe_slacklog.slackapi import SlackApi
from ppe_slacklog.testing import SlackEmulator

__all__ = ["PREVIEW", "render_preview"]

#: A run at epoch 7 of 20, as its card shows it.
PREVIEW = CardView(
    state="running",
    identity=(
        "🏃 *Training started! alice@gpu-node-3 [PID 48213]*\n"
        "Command: `train.py --config resnet50.yaml`"
    ),
    epoch=7,
    max_epochs=20,
    iteration=10_941,
    max_iterations=31_260,
    elapsed=4_410.0,
    throughput=2.48,
    eta=8_193.0,
    metrics=(
        MetricRow("main/loss", 0.4127, 0.4127, 7),
        MetricRow("val/loss", 0.5318, 0.5102, 6),
        MetricRow("val/accuracy", 0.8431, 0.8477, 6, higher=True),
        MetricRow("lr", 0.05, 0.05, 7),
    ),
)


def render_preview() -> str:
    """Posts :data:`PREVIEW` to a fresh emulator; returns the channel's rendering."""
    with SlackEmulator(rate_limits=False) as emu:
        api = SlackApi(emu.client())
        api.post("experiment-progress", card_text(PREVIEW), blocks=card_blocks(PREVIEW))
        return emu.render("experiment-progress")


if __name__ == "__main__":
    print(render_preview())
