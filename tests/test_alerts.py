"""Alerts (issue 12) against the emulator: stalls, non-finite values, rules."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import make_manager, run_python, run_training

import ppe_slacklog
from ppe_slacklog import Alert, JsonFormatter
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"
FAST = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)
MENTION = "<@U012ABC>"


def _slack(emu: SlackEmulator, **kwargs: Any) -> ppe_slacklog.Slack:
    return ppe_slacklog.Slack(CHANNEL, token=emu.token, base_url=emu.base_url, **kwargs)


def _replies(emu: SlackEmulator) -> list[Any]:
    (parent,) = emu.top_level(CHANNEL)
    return [m for m in emu.thread(CHANNEL, parent.ts)[1:] if not m.files]


def _with(emu: SlackEmulator, words: str) -> list[Any]:
    return [m for m in _replies(emu) if words in m.text]


def _header(emu: SlackEmulator) -> str:
    (parent,) = emu.top_level(CHANNEL)
    return str(emu.message(CHANNEL, parent.ts).blocks[0]["text"]["text"])


def _headers(emu: SlackEmulator) -> list[str]:
    (parent,) = emu.top_level(CHANNEL)
    edits = emu.edits(CHANNEL, parent.ts)
    return [str(e.blocks[0]["text"]["text"]) for e in edits if e.blocks] + [
        _header(emu)
    ]


def _shown(emu: SlackEmulator, words: str) -> bool:
    return any(words in m.text for m in emu.messages(CHANNEL))


def _check_stall_and_recovery(emu: SlackEmulator) -> None:
    texts = [m.text for m in _replies(emu)]
    assert len(_with(emu, "No progress for")) == 1, texts
    assert len(_with(emu, "Progress resumed after")) == 1, texts
    (stall,) = _with(emu, "No progress for")
    assert stall.text.startswith(MENTION + " ⏸️ *No progress for")
    assert "stuck at epoch 0, iteration 2;" in stall.text
    assert "last iteration took" in stall.text
    assert stall.reply_broadcast
    (resumed,) = _with(emu, "Progress resumed after")
    assert resumed.text.startswith("▶️ Progress resumed after")  # no mention
    assert not resumed.reply_broadcast
    assert _replies(emu).index(stall) < _replies(emu).index(resumed)


@FAST
def test_a_stall_in_python_gets_one_alert_and_one_recovery(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1, iters_per_epoch=5)
    manager.extend(
        # Waiting below for the card to run again (edits are paced at
        # Slack's Tier 3) must not be a stall of its own, even on a loaded
        # machine: 10 s is ample.
        _slack(emu, stall_after=10, mention=MENTION, card_interval=0.2),
        trigger=(1, "epoch"),
    )
    seen: dict[str, bool] = {}

    def step(manager: Any) -> dict[str, float]:
        if manager.iteration == 2:  # the third iteration hangs (in Python)
            seen["alert"] = emu.wait_for(lambda e: _shown(e, "No progress"), 30)
            seen["card"] = emu.wait_for(lambda e: _header(e).startswith("⏸️"), 30)
        if manager.iteration == 3:  # advanced: the card runs again
            seen["running"] = emu.wait_for(lambda e: _header(e).startswith("🏃"), 30)
        return {"loss": 0.5}

    run_training(manager, step)
    assert seen == {"alert": True, "card": True, "running": True}, (
        [m.text for m in _replies(emu)],
        _headers(emu),
    )
    _check_stall_and_recovery(emu)
    headers = _headers(emu)
    stalled = next(i for i, h in enumerate(headers) if h.startswith("⏸️ Stalled"))
    assert any(h.startswith("🏃") for h in headers[stalled:])
    assert headers[-1].startswith("✅ Finished")


@FAST
def test_a_stall_in_a_c_call_is_seen_too(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1, iters_per_epoch=4)
    manager.extend(
        _slack(emu, stall_after=3, mention=MENTION, card_interval=0.2),
        trigger=(1, "epoch"),
    )

    def step(manager: Any) -> dict[str, float]:
        if manager.iteration == 2:
            # One blocking native call where a torch op (a hung collective)
            # would be; well over stall_after, so the watchdog must see it
            # (the other iterations are far from it, even on a loaded machine).
            time.sleep(12)
        return {"loss": 0.5}

    run_training(manager, step)
    _check_stall_and_recovery(emu)
    assert any(h.startswith("⏸️ Stalled") for h in _headers(emu))


@FAST
@pytest.mark.parametrize("kind", [float, "float64"])
def test_a_nan_loss_gets_one_alert_and_one_recovery(
    emu: SlackEmulator, kind: Any
) -> None:
    if kind == "float64":  # what np.mean and metric libraries return
        kind = pytest.importorskip("numpy").float64
    manager = make_manager(max_epochs=2, iters_per_epoch=4)
    manager.extend(
        _slack(emu, msg="loss {loss}", mention=MENTION), trigger=(1, "iteration")
    )
    losses = [kind(x) for x in (0.9, 0.7, math.nan, math.nan, math.inf, 0.6, 0.5, 0.4)]

    run_training(manager, lambda m: {"loss": losses[m.iteration]})
    (alert,) = _with(emu, "became")
    assert alert.text == (
        f"{MENTION} ⚠️ *`loss` became nan* at epoch 0, iteration 3 "
        "(last finite value: 0.7)"
    )
    assert alert.reply_broadcast
    (recovery,) = _with(emu, "finite again")
    assert recovery.text == (
        "✅ `loss` is finite again at epoch 1, iteration 6: 0.6 "
        "(after 3 non-finite values)"
    )
    assert not recovery.reply_broadcast
    texts = [m.text for m in _replies(emu)]
    # The alert follows the trigger message it is about (triggers may be
    # batched into one message).
    nan_at = next(i for i, t in enumerate(texts) if "loss nan" in t.splitlines())
    assert nan_at < texts.index(alert.text)
    assert texts.index(alert.text) < texts.index(recovery.text)


@FAST
def test_nonfinite_false_turns_it_off(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1, iters_per_epoch=2)
    manager.extend(_slack(emu, nonfinite=False), trigger=(1, "iteration"))
    run_training(manager, lambda m: {"loss": math.nan})
    assert not _with(emu, "became")


@FAST
def test_threshold_rules_alert_once_and_respect_their_cooldown(
    emu: SlackEmulator,
) -> None:
    values = [1.0, 3.0, 3.5, 1.0, 3.0, 1.0]
    manager = make_manager(max_epochs=6, iters_per_epoch=1)
    manager.extend(
        _slack(
            emu,
            msg="{val/loss}",
            mention=MENTION,
            alerts=[
                Alert("val/loss", above=2.0),  # cooldown 30 min
                Alert("val/loss", above=2.5, cooldown=0, message="<b> {value}!"),
                Alert("acc", below=0.5, after_epoch=4),
            ],
        ),
        trigger=(1, "epoch"),
    )
    run_training(manager, lambda m: {"val/loss": values[m.iteration], "acc": 0.1})
    texts = [m.text for m in _replies(emu)]
    above_2 = [t for t in texts if "above 2*" in t or "no longer above 2:" in t]
    # Starts at epoch 2, ends at 4; holds again at 5 within the cooldown:
    # neither that start nor its end is said.
    assert above_2 == [
        f"{MENTION} 🚨 *`val/loss` is above 2*: 3 at epoch 2, iteration 2",
        "✅ `val/loss` is no longer above 2: 1 at epoch 4, iteration 4",
    ]
    # cooldown=0: every start is said (epochs 2 and 5); the message is a
    # template (the user's text as written).
    custom = [t for t in texts if t.endswith("!")]
    assert custom == [f"{MENTION} <b> 3.0!", f"{MENTION} <b> 3.0!"]
    assert [t for t in texts if "no longer above 2.5" in t] == [
        "✅ `val/loss` is no longer above 2.5: 1 at epoch 4, iteration 4",
        "✅ `val/loss` is no longer above 2.5: 1 at epoch 6, iteration 6",
    ]
    # after_epoch=4: from the trigger at the end of the fourth epoch.
    assert [t for t in texts if "`acc`" in t] == [
        f"{MENTION} 🚨 *`acc` is below 0.5*: 0.1 at epoch 4, iteration 4"
    ]
    alerts = [m for m in _replies(emu) if "🚨" in m.text]
    assert alerts and all(m.reply_broadcast for m in alerts)


@FAST
def test_alert_records_reach_a_json_lines_file(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    sink = logging.FileHandler(path, encoding="utf-8")
    sink.setFormatter(JsonFormatter())
    observer = logging.getLogger("ppe_slacklog")
    observer.addHandler(sink)
    observer.setLevel(logging.INFO)
    manager = make_manager(max_epochs=1, iters_per_epoch=3)
    manager.extend(
        _slack(emu, alerts=[{"key": "loss", "above": 5}]), trigger=(1, "iteration")
    )
    losses = [1.0, math.nan, 9.0]
    try:
        run_training(manager, lambda m: {"loss": losses[m.iteration]})
    finally:
        observer.removeHandler(sink)
        sink.close()
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    alerts = [x for x in lines if x.get("ppe_event") in ("nonfinite", "alert")]
    assert [(x["ppe_event"], x["level"]) for x in alerts] == [
        ("nonfinite", "warning"),
        ("nonfinite", "warning"),
        ("alert", "warning"),
    ]
    first, recovered, rule = (x["alert"] for x in alerts)
    assert first == {
        "key": "loss",
        "value": "nan",
        "last_finite": 1.0,
        "recovered": False,
        "count": 1,
    }
    assert recovered["recovered"] is True and recovered["value"] == 9.0
    assert rule["key"] == "loss" and rule["above"] == 5.0 and rule["value"] == 9.0
    assert alerts[0]["iteration"] == 2 and alerts[0]["run_id"]
    assert alerts[0]["message"].startswith("⚠️ *`loss` became nan*")


@FAST
def test_mention_only_on_alerts_errors_and_interruptions(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    manager.extend(
        _slack(emu, msg="loss {loss}", mention=MENTION), trigger=(1, "iteration")
    )
    with pytest.raises(ValueError, match="boom"):
        run_training(manager, lambda m: {"loss": 0.5}, fail_at=3)
    (parent,) = emu.top_level(CHANNEL)
    texts = [m.text for m in _replies(emu)]
    assert texts[:2] == ["loss 0.5", "loss 0.5"]
    assert texts[-1].startswith(MENTION + " ❌ *Error during training.")
    assert MENTION not in parent.text
    assert [t for t in texts if MENTION in t] == [texts[-1]]


@FAST
def test_a_configured_handler_mentions_too(emu: SlackEmulator) -> None:
    import logging.config

    from conftest import slack_dict_config

    logging.config.dictConfig(
        slack_dict_config(emu, token=emu.token, mention="<!here>")
    )
    manager = make_manager(max_epochs=1, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL), trigger=(1, "iteration"))
    run_training(manager, lambda m: {"loss": math.inf})
    logging.getLogger("myproject").warning("disk full")
    for handler in logging.getLogger("ppe_slacklog.training").handlers:
        handler.flush()
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert [t for t in texts if t.startswith("<!here>")] == [
        "<!here> ⚠️ *`loss` became inf* at epoch 0, iteration 1 (no finite value before)"
    ]
    assert any(t.endswith("disk full") for t in texts)


def test_the_watchdog_never_delays_exit(emu: SlackEmulator) -> None:
    result = run_python(
        emu,
        """
        import threading
        import pytorch_pfn_extras as ppe, torch
        import ppe_slacklog

        model = torch.nn.Linear(2, 1)
        manager = ppe.training.ExtensionsManager(
            model, torch.optim.SGD(model.parameters(), lr=0.1), 100,
            iters_per_epoch=10)
        manager.extend(ppe_slacklog.Slack("experiment-progress", stall_after=3600))
        for _ in range(2):
            with manager.run_iteration():
                pass
        print(sorted(t.name for t in threading.enumerate()
                     if t.name == "ppe_slacklog-watchdog"))
        # The run is still watched as the program ends here.
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "['ppe_slacklog-watchdog']" in result.stdout


def test_the_watchdog_thread_is_a_daemon_and_ends_with_its_runs(
    slack_env: SlackEmulator,
) -> None:
    manager = make_manager(max_epochs=1, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, stall_after=3600))
    threads: list[threading.Thread] = []

    def step(manager: Any) -> dict[str, float]:
        threads.extend(
            t for t in threading.enumerate() if t.name == "ppe_slacklog-watchdog"
        )
        return {}

    run_training(manager, step)
    assert threads and all(t.daemon for t in threads)
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()  # no run left to watch


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key": ""}, "key"),
        ({"key": "loss"}, "below= or above="),
        ({"key": "loss", "above": "2"}, "number"),
        ({"key": "loss", "above": math.nan}, "finite"),
        ({"key": "loss", "below": 3, "above": 2}, "always hold"),
        ({"key": "loss", "above": 2, "after_epoch": -1}, "after_epoch"),
        ({"key": "loss", "above": 2, "cooldown": -1}, "cooldown"),
        ({"key": "loss", "above": 2, "message": 3}, "message"),
    ],
)
def test_alert_validates_its_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Alert(**kwargs)


@pytest.mark.parametrize("value", [0, -1, "soon", math.inf, True])
def test_stall_after_is_validated(slack_env: SlackEmulator, value: Any) -> None:
    with pytest.raises(ValueError, match="stall_after"):
        ppe_slacklog.Slack(CHANNEL, stall_after=value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alerts": "val/loss"}, "a list of rules"),
        ({"alerts": {"key": "loss", "above": 2}}, "a list of rules"),
        ({"alerts": [{"key": "loss", "abvoe": 2}]}, "abvoe"),
        ({"nonfinite": "no"}, "nonfinite must be True or False"),
    ],
)
def test_alert_options_are_validated(
    slack_env: SlackEmulator, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ppe_slacklog.Slack(CHANNEL, **kwargs)


def test_mention_must_be_text(slack_env: SlackEmulator) -> None:
    with pytest.raises(ValueError, match="mention"):
        ppe_slacklog.Slack(CHANNEL, mention=123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mention"):
        ppe_slacklog.SlackHandler(CHANNEL, token="xoxb-1", mention=["<!here>"])  # type: ignore[arg-type]


def _collector() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    got: list[tuple[str, dict[str, Any]]] = []

    def emit(kind: str, fields: dict[str, Any], snapshot: Any) -> None:
        got.append((kind, fields))

    return got, emit


def test_no_stall_is_reported_before_the_training_begins() -> None:
    from ppe_slacklog._watchdog import RunWatch
    from ppe_slacklog.cardstate import Progress

    got, emit = _collector()
    training = {"begun": False}
    watch = RunWatch(
        emit,
        lambda: Progress(0, 0.0, 0.0),
        stall_after=0.01,
        ready=lambda: training["begun"],
    )
    time.sleep(0.05)
    watch.tick()
    assert got == []  # only state_dict() was asked for, say: not a stall
    training["begun"] = True
    watch.tick()
    time.sleep(0.05)
    watch.tick()
    watch.tick()
    assert [kind for kind, _ in got] == ["stall"]


def test_auto_waits_at_least_ten_minutes_and_a_gone_manager_ends_the_watch() -> None:
    from ppe_slacklog._watchdog import RunWatch

    got, emit = _collector()
    watch = RunWatch(emit, lambda: None, stall_after="auto")
    assert watch.threshold() == 600.0
    watch.tick()
    assert watch.closed and got == []
    assert RunWatch(emit, None, stall_after=None).threshold() is None


def test_queued_values_are_checked_when_the_run_ends() -> None:
    from ppe_slacklog._watchdog import RunWatch
    from ppe_slacklog.events import ManagerSnapshot

    got, emit = _collector()
    watch = RunWatch(emit, None, stall_after=None)
    watch.pending.append(ManagerSnapshot(observation={"loss": math.nan}))
    watch.pending.append(ManagerSnapshot(observation={"loss": -math.inf}))
    watch.close()
    assert got == [
        (
            "nonfinite",
            {
                "key": "loss",
                "value": "nan",
                "last_finite": None,
                "recovered": False,
                "count": 1,
            },
        )
    ]


def test_replayed_alert_lines_render_as_alerts() -> None:
    from ppe_slacklog import SlackFormatter
    from ppe_slacklog._replay_records import read_events

    line = json.dumps(
        {
            "ppe_event": "nonfinite",
            "run_id": "r1",
            "epoch": 1,
            "iteration": 5,
            "level": "warning",
            "alert": {"key": "loss", "value": "nan", "last_finite": 0.5},
        }
    )
    (record,) = read_events([line], "events.jsonl").runs["r1"]
    assert SlackFormatter().format(record) == (
        "⚠️ *`loss` became nan* at epoch 1, iteration 5 (last finite value: 0.5)"
    )


def test_alert_texts_escape_keys_and_values() -> None:
    from ppe_slacklog.templates import alert_text

    text = alert_text(
        "alert",
        {"key": "<!channel>", "value": 3, "above": 2, "message": "{key} {value}"},
        1,
        2,
        {},
    )
    assert text == "&lt;!channel&gt; 3"
    default = alert_text("nonfinite", {"key": "a`b<c>", "value": "inf"}, 1, 2, {})
    assert default.startswith("⚠️ *`aˋb&lt;c&gt;` became inf*")
