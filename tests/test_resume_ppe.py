"""ppe's own ways of resuming and reusing an extension, and ppe's error wording.

pytorch-pfn-extras documents ``manager.load_state_dict(torch.load(path))``
before the loop as the way to resume; it initializes every extension before
it loads their states. These tests drive that pattern in real processes (the
first one dies without finalize, like a pre-empted job), reuse one extension
object for two trainings, and check the distributed run id of such reuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_manager, run_python, run_training

import ppe_slacklog
from ppe_slacklog._distributed import Job
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"

_TRAIN = """
    import logging, os, torch, pytorch_pfn_extras as ppe, ppe_slacklog
    path, mode = {path!r}, {mode!r}
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(model, optimizer, 4, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack({channel!r}, msg="epoch {{manager.epoch}}"))
    if mode.startswith("resume"):
        if mode == "resume-reading-first":
            # ppe's getters start the extensions (before any state is loaded)
            print("at", manager.iteration, len(list(manager.models)), flush=True)
        manager.load_state_dict(torch.load(path, weights_only=False))
    while not manager.stop_trigger:
        with manager.run_iteration():
            pass
        if mode == "first" and manager.iteration == 4:
            torch.save(manager.state_dict(), path)
            for handler in logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).handlers:
                handler.flush()  # what was sent so far, then:
            os._exit(0)  # dies on the spot: no end, no exit hooks
    print("finished", flush=True)
"""


def _train(emu: SlackEmulator, path: Path, mode: str) -> None:
    code = _TRAIN.format(path=str(path), mode=mode, channel=CHANNEL)
    child = run_python(emu, code)
    assert child.returncode == 0, child.stderr
    assert ("finished" in child.stdout) == (mode != "first"), child.stdout


@pytest.mark.parametrize("resume", ["resume", "resume-reading-first"])
def test_manager_load_state_dict_resumes_in_the_same_thread(
    emu: SlackEmulator, tmp_path: Path, resume: str
) -> None:
    path = tmp_path / "snapshot.pt"
    _train(emu, path, "first")
    _train(emu, path, resume)
    (top,) = emu.top_level(CHANNEL)
    assert "Training started" in top.text
    texts = [m.text for m in emu.thread(CHANNEL, top.ts)]
    resumed = [t for t in texts if "Training resumed" in t]
    assert len(resumed) == 1, texts
    assert "Training resumed from epoch 2, iteration 4!" in resumed[0]
    after = texts[texts.index(resumed[0]) + 1 :]
    assert after[:2] == ["epoch 3", "epoch 4"], texts
    assert "Training finished" in after[-1]
    assert texts[1:3] == ["epoch 1", "epoch 2"], texts
    assert not any("Training started" in t for t in texts[1:]), texts
    # The run's live card went on: the resumed run finished it.
    card = emu.message(CHANNEL, top.ts)
    assert card.blocks[0]["text"]["text"] == "✅ Finished · epoch 4/4"
    # It still says who started the run, and where it was resumed.
    assert "Training started!" in card.blocks[1]["text"]["text"]
    assert "🔁 resumed at epoch 2, iteration 4" in str(card.blocks)
    running = [e for e in emu.edits(CHANNEL, top.ts) if e.blocks]
    assert "Running" in running[0].blocks[0]["text"]["text"]


def test_one_extension_for_two_trainings_posts_two_threads(
    slack_env: SlackEmulator,
) -> None:
    emu = slack_env
    ext = ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch}")
    first = make_manager(max_epochs=1)
    first.extend(ext)
    run_training(first)
    first_run = ext.run_id
    second = make_manager(max_epochs=1)
    second.extend(ext)
    run_training(second)
    assert ext.run_id != first_run
    top = emu.top_level(CHANNEL)
    assert len(top) == 2, [m.text for m in top]
    for message in top:
        assert "Training started" in message.text
        texts = [m.text for m in emu.thread(CHANNEL, message.ts)]
        assert texts[1:] == ["epoch 1", texts[-1]], texts
        assert "Training finished" in texts[-1]


def test_one_extension_after_a_failed_training_starts_a_new_thread(
    slack_env: SlackEmulator,
) -> None:
    emu = slack_env
    ext = ppe_slacklog.Slack(CHANNEL)
    first = make_manager(max_epochs=1)
    first.extend(ext)
    with pytest.raises(ValueError, match="boom"):
        run_training(first, fail_at=1)
    second = make_manager(max_epochs=1)
    second.extend(ext)
    run_training(second)
    top = emu.top_level(CHANNEL)
    assert len(top) == 2, [m.text for m in top]
    first_thread = [m.text for m in emu.thread(CHANNEL, top[0].ts)]
    second_thread = [m.text for m in emu.thread(CHANNEL, top[1].ts)]
    assert "ValueError: boom" in first_thread[-1]
    assert "Training finished" in second_thread[-1]
    assert not any("Training finished" in t for t in first_thread)


def test_a_start_held_for_a_state_that_never_comes_is_posted(
    slack_env: SlackEmulator,
) -> None:
    # A manager fast-forwarded by hand looks like ppe's load_state_dict to
    # initialize: the start waits for a state, and the first event posts it.
    emu = slack_env
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch}"))
    manager.iteration = 2
    run_training(manager)
    (top,) = emu.top_level(CHANNEL)
    assert "Training started" in top.text
    texts = [m.text for m in emu.thread(CHANNEL, top.ts)]
    assert texts[1] == "epoch 2", texts
    assert "Training finished" in texts[-1]


def test_ranks_agree_on_a_new_run_id_for_each_training() -> None:
    from torch.distributed import HashStore

    store = HashStore()
    rank0 = Job(rank=0, world_size=2, store=store)
    rank1 = Job(rank=1, world_size=2, store=store)
    first = rank0.run_id(0, "aaa"), rank1.run_id(0, "bbb")
    second = rank1.run_id(0, "ccc", 1), rank0.run_id(0, "ddd", 1)
    assert first == ("aaa", "aaa")
    assert second == ("ccc", "ccc")


def test_missing_token_says_what_ppe_says() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"^A bot `token` is needed for communicating with Slack.*SLACK_BOT_TOKEN",
    ):
        ppe_slacklog.Slack(CHANNEL)


def test_missing_webhook_url_says_it_in_ppe_words() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"^An Incoming Webhook `url` is needed for communicating with Slack"
        r".*SLACK_WEBHOOK_URL",
    ):
        ppe_slacklog.SlackWebhook()
