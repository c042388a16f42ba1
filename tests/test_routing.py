"""The routing recipes of examples/recipes, loaded from their files as written."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import is_chart, make_manager, run_training, start_text, thread_texts

import ppe_slacklog
from ppe_slacklog.testing import SlackEmulator

RECIPES = Path(__file__).resolve().parent.parent / "examples" / "recipes"
CHANNEL = "experiment-progress"


def _load(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative file names land in the tmp dir
    config = yaml.safe_load((RECIPES / name).read_text(encoding="utf-8"))
    logging.config.dictConfig(config)


def _train(fail: bool = False, **kw: Any) -> None:
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch}", **kw))
    report = lambda m: {"val/loss": 0.5, "loss": torch.tensor(0.25)}  # noqa: E731
    if fail:
        with pytest.raises(ValueError):
            run_training(manager, report, fail_at=3)
    else:
        run_training(manager, report)


def test_a_slack_and_jsonl(
    slack_env: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load("a_slack_and_jsonl.yaml", tmp_path, monkeypatch)
    _train()
    top = slack_env.top_level(CHANNEL)
    assert len(top) == 1
    assert [m.text for m in slack_env.thread(CHANNEL, top[0].ts)][1:3] == [
        "ep 1",
        "ep 2",
    ]
    rows = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["ppe_event"] for r in rows] == ["start", "trigger", "trigger", "end"]
    assert rows[1]["observations"] == {"val/loss": 0.5, "loss": 0.25}


def test_the_top_level_example_config_is_recipe_a() -> None:
    top = (RECIPES.parent / "logging.yaml").read_text(encoding="utf-8")
    assert top == (RECIPES / "a_slack_and_jsonl.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("fail", [False, True])
def test_b_alerts_get_only_end_and_error(
    slack_env: SlackEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail: bool,
) -> None:
    _load("b_alerts_and_progress.yaml", tmp_path, monkeypatch)
    _train(fail=fail)
    alerts = [m.text for m in slack_env.messages("alerts")]
    if fail:
        assert alerts == ["🚨 Run failed at epoch 1: boom"]
    else:
        assert alerts == ["✅ Run finished after 2 epochs (val/loss 0.500)"]
    progress = thread_texts(slack_env, CHANNEL)
    assert progress[0].startswith("🏃 *Training started!")
    assert progress[1] == "ep 1"
    assert progress[-1].startswith("❌" if fail else "✅ *Training finished!")


def test_c_warnings_top_level_training_in_thread(
    slack_env: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load("c_warnings_everywhere.yaml", tmp_path, monkeypatch)
    handler = logging.getLogger().handlers[-1]
    logging.getLogger("myproject").info("not sent: below WARNING")
    # Transport libraries' records never go to Slack (they may be about it).
    logging.getLogger("urllib3.connectionpool").warning("pool %s is full", "a")
    logging.getLogger("filelock").warning("lock %s is stale", "a")
    _train(fail=True)
    logging.getLogger("torch").warning("deprecated op")
    handler.flush()
    top = [start_text(m) for m in slack_env.top_level(CHANNEL)]
    assert top[0] == "⚠️ *filelock* lock a is stale"
    assert top[1].startswith("🏃 *Training started!")
    assert top[2] == "⚠️ *torch* deprecated op"
    assert len(top) == 3  # the error went to the thread only, once
    thread = thread_texts(slack_env, CHANNEL, slack_env.top_level(CHANNEL)[1].ts)
    assert thread[-1].startswith("❌ *Error during training.")
    assert sum("Error during training" in m.text for m in slack_env.messages()) == 1


def test_d_console_only_needs_no_slack(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emu: SlackEmulator,
) -> None:
    _load("d_console_only.yaml", tmp_path, monkeypatch)
    _train()  # no SLACK_BOT_TOKEN: the extension must not need one
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4
    assert "training started" in out[0] and "ppe_event=start" in out[0]
    assert "training finished" in out[3]
    assert emu.calls == []
    assert not any(
        isinstance(h, ppe_slacklog.SlackHandler)
        for h in logging.getLogger("ppe_slacklog.training").handlers
    )


def test_e_enriched_events_in_slack_and_json(
    slack_env: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load("e_enriched.yaml", tmp_path, monkeypatch)
    _train()
    texts = [m.text for m in slack_env.messages(CHANNEL) if not is_chart(m)]
    assert all("_host: " in t and " · git_revision: " in t for t in texts)
    rows = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert all(r["host"] and r["git_revision"] for r in rows)


def test_recipes_load_from_json_too(
    slack_env: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((RECIPES / "a_slack_and_jsonl.yaml").read_text())
    as_json = tmp_path / "logging.json"
    as_json.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    logging.config.dictConfig(json.loads(as_json.read_text()))
    _train()
    assert (tmp_path / "events.jsonl").exists()
    assert len(slack_env.messages(CHANNEL)) >= 3


def test_basic_config_keeps_the_drop_in(slack_env: SlackEmulator) -> None:
    logging.basicConfig(level=logging.INFO, force=True)
    try:
        _train()
    finally:
        for handler in logging.getLogger().handlers[:]:
            if not type(handler).__name__.startswith("LogCapture"):
                logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    assert len(thread_texts(slack_env, CHANNEL)) == 4
