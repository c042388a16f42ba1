"""The live card's rendering and state (no Slack: plain values in, blocks out)."""

from __future__ import annotations

import json
import math

import pytest

from ppe_slacklog.card import (
    CardView,
    MetricRow,
    card_blocks,
    card_text,
    format_duration,
)
from ppe_slacklog.cardstate import CardOptions, LiveCard, Progress
from ppe_slacklog.events import ManagerSnapshot, RunFacts


def snap(iteration: int, per_epoch: int = 10, **obs: float) -> ManagerSnapshot:
    return ManagerSnapshot(
        epoch=iteration // per_epoch,
        iteration=iteration,
        epoch_detail=iteration / per_epoch,
        elapsed_time=iteration * 0.5,
        max_epochs=5,
        observation=obs,
    )


def test_running_card_shows_progress_timing_and_metrics() -> None:
    card = LiveCard("r1", CardOptions())
    card.feed("start", snap(0), None)
    for it, loss, acc in [(10, 0.9, 0.5), (20, 0.5, 0.7), (30, 0.6, 0.65)]:
        card.feed("trigger", snap(it, **{"main/loss": loss, "val/acc": acc}), None)
    view = card.absorb()
    assert (view.state, view.epoch, view.max_epochs) == ("running", 3, 5)
    assert (view.iteration, view.max_iterations) == (30, 50)
    assert view.throughput == pytest.approx(2.0)  # 10 iterations per 5 s
    assert view.eta == pytest.approx(10.0)  # 20 iterations left
    loss, acc = view.metrics
    assert (loss.key, loss.latest, loss.best, loss.best_epoch) == (
        "main/loss",
        0.6,
        0.5,
        2,
    )
    assert (acc.best, acc.higher) == (0.7, True)
    blocks = card_blocks(view)
    text = json.dumps(blocks, ensure_ascii=False)
    assert "🏃 Running · epoch 3/5" in text
    assert "60%" in text and "iteration 30/50" in text
    assert "ETA 10s" in text and "2 it/s" in text
    assert "0.5 (2)" in text and "0.7 (2)↑" in text


def test_final_states_and_notes() -> None:
    for kind, state, emoji in [
        ("end", "finished", "✅"),
        ("error", "failed", "❌"),
        ("interrupted", "interrupted", "⚠️"),
        ("stopped", "stopped", "⏹️"),
    ]:
        card = LiveCard("r", CardOptions())
        card.feed("start", snap(0), None)
        card.feed(kind, snap(20), None, note="why" if kind != "end" else None)
        # A late trigger after the end does not bring the card back to running.
        card.feed("trigger", snap(21, loss=1.0), None)
        view = card.absorb()
        assert view.state == state and view.eta is None
        assert card_blocks(view)[0]["text"]["text"].startswith(emoji)
        assert card_text(view).startswith(emoji)
        if kind != "end":
            assert view.note == "why"
    finished = LiveCard("r", CardOptions())
    finished.feed("end", snap(20), None)
    assert "100%" in json.dumps(card_blocks(finished.absorb()))


def test_probe_moves_the_card_between_events_and_gives_the_stop_limit() -> None:
    card = LiveCard("r", CardOptions())
    card.feed("start", snap(0), None)
    card.absorb()
    version = card.version
    card.probe = lambda: Progress(7, 0.7, 3.5, max_iterations=100, max_epochs=10)
    view = card.absorb(poll=True)
    assert card.version == version + 1
    assert (view.iteration, view.max_iterations, view.max_epochs) == (7, 100, 10)
    assert view.throughput == pytest.approx(2.0)
    # A probe that fails (the manager is gone) changes nothing.
    card.probe = lambda: 1 / 0  # type: ignore[assignment,return-value]
    assert card.absorb(poll=True) == view


def test_default_metrics_are_scalars_at_most_eight_in_first_seen_order() -> None:
    card = LiveCard("r", CardOptions())
    obs = {f"m{i}": float(i) for i in range(12)}
    card.feed("trigger", snap(10, **obs, note="text", flag=True), None)  # type: ignore[arg-type]
    keys = [row.key for row in card.absorb().metrics]
    assert keys == [f"m{i}" for i in range(8)]


def test_chosen_metrics_with_directions_and_nonfinite_values() -> None:
    options = CardOptions.of({"val/score": "min", "loss": "min"}, 5, None)
    card = LiveCard("r", options)
    card.feed("trigger", snap(10, loss=1.0), None)
    card.feed("trigger", snap(20, loss=math.nan, **{"val/score": 3.0}), None)
    score, loss = card.absorb().metrics
    assert (score.key, score.higher, score.best) == ("val/score", False, 3.0)
    assert loss.nonfinite and loss.best == 1.0
    assert "⚠️" in json.dumps(card_blocks(card.absorb()), ensure_ascii=False)
    assert card.history() == {"loss": [(1.0, 1.0)], "val/score": [(2.0, 3.0)]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "card_interval"),
        ({"chart_interval": -1}, "chart_interval"),
        ({"metrics": "loss"}, "list of keys"),
        ({"metrics": {"loss": "down"}}, "'min' or 'max'"),
    ],
)
def test_bad_options_are_clear_errors(kwargs: dict, message: str) -> None:
    args = {"metrics": None, "interval": 15.0, "chart_interval": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        CardOptions.of(args["metrics"], args["interval"], args["chart_interval"])


def test_blocks_stay_within_slack_limits_whatever_the_view_holds() -> None:
    rows = [MetricRow("k" * 500 + str(i), "v" * 500, 1e300, 10**9) for i in range(8)]
    view = CardView(
        state="x" * 400,
        identity="```" + "i" * 10_000,
        epoch=10**12,
        max_epochs=10**12,
        iteration=10**15,
        max_iterations=10**15,
        elapsed=1e12,
        throughput=1e-9,
        eta=float("inf"),
        metrics=rows,
        note="n" * 5000,
        chart_file="F123",
    )
    blocks = card_blocks(view)
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert len(json.dumps(blocks)) < 13_000
    assert blocks[-1] == {
        "type": "image",
        "slack_file": {"id": "F123"},
        "alt_text": "Chart of the run's metrics",
    }


def test_resumed_card_accepts_an_earlier_position_and_restarts_throughput() -> None:
    card = LiveCard("r", CardOptions())
    card.feed("trigger", snap(30, loss=1.0), None)
    card.feed("start", snap(20), RunFacts(resumed=True))
    card.feed("trigger", snap(25, loss=0.9), None)
    view = card.absorb()
    assert view.iteration == 25 and view.state == "running"


def test_durations_read_well() -> None:
    assert [format_duration(s) for s in (0, 59, 60, 3599, 3600, 86400 * 3)] == [
        "0s",
        "59s",
        "1m 00s",
        "59m 59s",
        "1h 00m",
        "3d 00h",
    ]
