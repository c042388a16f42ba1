"""The live card: a run's state rendered as a Slack Block Kit message.

A card is a rendering, not a transport: :func:`card_blocks` and
:func:`card_text` turn a :class:`CardView` (plain values, see
:mod:`ppe_slacklog.cardstate`) into the blocks and the notification text of
the thread's parent message. Everything stays within Slack's Block Kit
limits (50 blocks, header 150 characters, section 3,000), whatever the view
holds.

Example:
    >>> view = CardView(state="running", identity="🏃 *Training started!*",
    ...                 epoch=3, max_epochs=10, iteration=300,
    ...                 max_iterations=1000, elapsed=120.0, throughput=2.5,
    ...                 eta=280.0)
    >>> [b["type"] for b in card_blocks(view)]
    ['header', 'section', 'section', 'context']
    >>> card_blocks(view)[0]["text"]["text"]
    '🏃 Running · epoch 3/10'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .templates import escape

__all__ = [
    "CARD_STATES",
    "FINAL_STATES",
    "CardView",
    "MetricRow",
    "card_blocks",
    "card_text",
    "format_duration",
    "format_value",
    "identity_of",
    "progress_bar",
]

#: State -> (emoji, label) shown in the card's header and text.
CARD_STATES: Final[dict[str, tuple[str, str]]] = {
    "running": ("🏃", "Running"),
    "finished": ("✅", "Finished"),
    "failed": ("❌", "Failed"),
    "interrupted": ("⚠️", "Interrupted"),
    "stopped": ("⏹️", "Stopped early"),
    # No progress for stall_after seconds (the alerts' watchdog); not final.
    "stalled": ("⏸️", "Stalled"),
}

# The state a finished card puts before its text (also as Slack stores
# emoji: ":white_check_mark: Finished · ").
_STATE_PREFIX: Final = re.compile(
    r"^(?:\S+ )?(?:Finished|Failed|Interrupted|Stopped early) · "
)
# The block holding the run's identity, found again in a stored card.
_IDENTITY_BLOCK: Final = "ppe_identity"

#: States after which the card changes no more.
FINAL_STATES: Final = frozenset({"finished", "failed", "interrupted", "stopped"})

# Slack's Block Kit limits (docs.slack.dev/reference/block-kit), with a
# margin where Slack counts differently from Python (emoji, entities).
_HEADER_MAX: Final = 150
_SECTION_MAX: Final = 3000
_BAR_WIDTH: Final = 20
_KEY_WIDTH: Final = 24


@dataclass(frozen=True)
class MetricRow:
    """One line of the card's metrics table.

    Attributes:
        key: The observation's key (``"val/loss"``).
        latest: Its value in the last trigger event (``None``: not reported).
        best: The best value so far (lowest, or highest for ``higher``
            metrics); ``None`` before any finite value.
        best_epoch: The epoch of ``best``.
        higher: Higher values are better (accuracy) rather than lower (loss).
        nonfinite: The latest value is NaN or infinite.
    """

    key: str
    latest: float | int | str | None
    best: float | None = None
    best_epoch: int | None = None
    higher: bool = False
    nonfinite: bool = False


@dataclass(frozen=True)
class CardView:
    """Everything a card shows, as plain values (see :mod:`ppe_slacklog.cardstate`).

    Attributes:
        state: A key of :data:`CARD_STATES` (or a state another feature
            adds: shown by name).
        identity: The run's start text (mrkdwn): who, where, which command.
        epoch: The current epoch.
        max_epochs: Epochs in the run, when known.
        iteration: The current iteration.
        max_iterations: Iterations in the run, when known.
        elapsed: Seconds since the training started.
        throughput: Iterations per second lately, when measured.
        eta: Seconds until the run ends, when it can be told.
        metrics: The metrics table.
        note: A line about how the run ended (the error, the reason).
        chart_file: The ID of an uploaded chart to show in the card.
        resumed_at: ``(epoch, iteration)`` a resumed run went on from.
    """

    state: str = "running"
    identity: str = ""
    epoch: int = 0
    max_epochs: int | None = None
    iteration: int = 0
    max_iterations: int | None = None
    elapsed: float = 0.0
    throughput: float | None = None
    eta: float | None = None
    metrics: Sequence[MetricRow] = field(default_factory=tuple)
    note: str | None = None
    chart_file: str | None = None
    resumed_at: tuple[int, int] | None = None


def format_duration(seconds: float) -> str:
    """A duration as a person reads it on a phone.

    Example:
        >>> format_duration(5), format_duration(125), format_duration(3725)
        ('5s', '2m 05s', '1h 02m')
        >>> format_duration(90061), format_duration(float("nan"))
        ('1d 01h', '?')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_value(value: object) -> str:
    """A metric value in a few characters (4 significant digits).

    Example:
        >>> format_value(0.123456), format_value(12345678), format_value(True)
        ('0.1235', '12,345,678', 'True')
        >>> format_value(float("nan")), format_value(None)
        ('nan', '–')
    """
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= 12 else text[:11] + "…"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def progress_bar(fraction: float, width: int = _BAR_WIDTH) -> str:
    """A bar of ``width`` cells, filled to ``fraction`` (clamped to 0..1).

    Example:
        >>> progress_bar(0.5, 10)
        '█████░░░░░'
    """
    if not math.isfinite(fraction):
        fraction = 0.0
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "█" * filled + "░" * (width - filled)


def _fraction(view: CardView) -> float | None:
    if view.state == "finished":
        return 1.0
    if view.max_iterations:
        return view.iteration / view.max_iterations
    if view.max_epochs:
        return view.epoch / view.max_epochs
    return None


def _where(view: CardView) -> str:
    epoch = f"epoch {view.epoch:,}"
    if view.max_epochs:
        epoch += f"/{view.max_epochs:,}"
    iteration = f"iteration {view.iteration:,}"
    if view.max_iterations:
        iteration += f"/{view.max_iterations:,}"
    return f"{epoch} · {iteration}"


def _state(view: CardView) -> tuple[str, str]:
    return CARD_STATES.get(view.state, ("•", view.state.capitalize()))


def _header(view: CardView) -> str:
    emoji, label = _state(view)
    epoch = f"epoch {view.epoch:,}"
    if view.max_epochs:
        epoch += f"/{view.max_epochs:,}"
    return _cut(f"{emoji} {label} · {epoch}", _HEADER_MAX)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timing(view: CardView) -> str:
    parts = [f"⏱️ {format_duration(view.elapsed)} elapsed"]
    if view.throughput is not None and math.isfinite(view.throughput):
        rate = view.throughput
        parts.append(
            f"⚡ {rate:.3g} it/s"
            if rate >= 1
            else f"⚡ {1 / rate:.3g} s/it"
            if rate > 0
            else "⚡ 0 it/s"
        )
    if view.state == "running" and view.eta is not None:
        parts.append(f"⏳ ETA {format_duration(view.eta)}")
    if view.resumed_at is not None:
        epoch, iteration = view.resumed_at
        parts.append(f"🔁 resumed at epoch {epoch:,}, iteration {iteration:,}")
    return "   ".join(parts)


def _table(rows: Sequence[MetricRow]) -> str:
    width = min(_KEY_WIDTH, max(len(r.key) for r in rows))
    lines = [f"{'metric':<{width}}  {'latest':>10}  best (epoch)"]
    for row in rows:
        key = _cut(row.key, width)
        flag = " ⚠️" if row.nonfinite else ""
        best = "–"
        if row.best is not None:
            arrow = "↑" if row.higher else ""
            best = f"{format_value(row.best)} ({row.best_epoch}){arrow}"
        lines.append(f"{key:<{width}}  {format_value(row.latest):>10}  {best}{flag}")
    # Laid out on the text as shown, then escaped (Slack shows "&lt;" as one
    # "<"): a key or value reading "<!channel>" pings nobody. Backticks
    # inside a value would end the code block early.
    kept: list[str] = []
    size = 8  # the fences
    for line in lines:
        shown = escape(line.replace("```", "ʼʼʼ"))
        if size + len(shown) + 1 > _SECTION_MAX:
            break  # whole lines only: an entity is never cut in half
        kept.append(shown)
        size += len(shown) + 1
    body = "\n".join(kept)
    return f"```\n{body}\n```"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def card_blocks(view: CardView) -> list[dict[str, Any]]:
    """The card's Block Kit blocks (plain dicts, within Slack's limits).

    Example:
        >>> rows = [MetricRow("val/loss", 0.25, best=0.2, best_epoch=2)]
        >>> blocks = card_blocks(CardView(state="finished", metrics=rows))
        >>> blocks[-1]["text"]["text"].splitlines()[2]
        'val/loss        0.25  0.2 (2)'
    """
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header(view)}}
    ]
    if view.identity.strip():
        identity = _mrkdwn(_cut(view.identity, _SECTION_MAX))
        identity["block_id"] = _IDENTITY_BLOCK
        blocks.append(identity)
    fraction = _fraction(view)
    progress = _where(view)
    if fraction is not None:
        progress = f"`{progress_bar(fraction)}` {fraction:.0%}\n{progress}"
    blocks.append(_mrkdwn(progress))
    blocks.append({"type": "context", "elements": [_text_element(_timing(view))]})
    if view.note:
        blocks.append(_mrkdwn(_cut(view.note, _SECTION_MAX)))
    if view.metrics:
        blocks.append(_mrkdwn(_table(view.metrics)))
    if view.chart_file:
        blocks.append(
            {
                "type": "image",
                "slack_file": {"id": view.chart_file},
                "alt_text": "Chart of the run's metrics",
            }
        )
    return blocks


def _text_element(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX)}


def identity_of(message: Mapping[str, Any]) -> str | None:
    """The run's identity in a stored thread parent (a card, or a start message).

    Example:
        >>> identity_of({"text": "✅ Finished · started by me"})
        'started by me'
        >>> card = card_blocks(CardView(identity="started by me"))
        >>> identity_of({"text": "x", "blocks": card})
        'started by me'
    """
    blocks = message.get("blocks")
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, Mapping) and block.get("block_id") == _IDENTITY_BLOCK:
            text = (block.get("text") or {}).get("text")
            return str(text) if text else None
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    return _STATE_PREFIX.sub("", text, count=1)


def card_text(view: CardView) -> str:
    """The message's ``text``: what notifications and screen readers show.

    ppe's start text while the run goes; prefixed with the state after.

    Example:
        >>> card_text(CardView(state="failed", identity="started by me"))
        '❌ Failed · started by me'
        >>> card_text(CardView(identity="started by me"))
        'started by me'
    """
    if view.state == "running" and view.identity.strip():
        return _cut(view.identity, _SECTION_MAX)
    emoji, label = _state(view)
    return _cut(f"{emoji} {label} · {view.identity}".rstrip(" ·"), _SECTION_MAX)
