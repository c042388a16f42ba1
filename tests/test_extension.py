"""The drop-in ``Slack`` extension, end to end against the emulator."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_manager, run_training, thread_texts

import ppe_slacklog
from ppe_slacklog import SlackDeliveryWarning, TemplateWarning
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def _loss(manager: Any) -> dict[str, Any]:
    return {"loss": torch.tensor(0.25), "val/loss": 0.5}


def test_drop_in_posts_one_thread(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=3)
    manager.extend(
        ppe_slacklog.Slack(
            channel=CHANNEL,
            msg="Epoch #{manager.epoch}: loss = {val/loss}",
            end_msg="{default} \n <@username> Check out the result!",
        ),
        trigger=(1, "epoch"),
    )
    run_training(manager, _loss)

    top = slack_env.top_level(CHANNEL)
    assert len(top) == 1
    texts = thread_texts(slack_env, CHANNEL)
    assert texts[0].startswith("🏃 *Training started! ")
    assert "Command: `" in texts[0]
    assert texts[1:4] == [f"Epoch #{e}: loss = 0.5" for e in (1, 2, 3)]
    assert texts[4].startswith("✅ *Training finished! ")
    assert texts[4].endswith(" \n <@username> Check out the result!")
    assert len(texts) == 5
    # The end message is in Slack when the training call returns: no waiting.
    assert not any(c.method == "files.upload" for c in slack_env.calls)


def test_thread_false_posts_top_level(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{default}", thread=False))
    run_training(manager)
    messages = slack_env.messages(CHANNEL)
    assert [m.thread_ts for m in messages] == [None] * 4
    assert [m.text for m in messages][1:3] == ["Epoch #1", "Epoch #2"]


def test_error_message_with_traceback(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    with pytest.raises(ValueError, match="boom"):
        run_training(manager, fail_at=3)
    # on_error flushed: the error message is already in Slack.
    thread = slack_env.thread(CHANNEL, slack_env.top_level(CHANNEL)[0].ts)
    error = thread[-1].text
    assert error.startswith("❌ *Error during training. ")
    assert "\nValueError: boom\nTraceback:\n```\n" in error
    assert error.endswith("```")
    assert 'raise ValueError("boom")' in error


def test_error_msg_callable_and_format(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            start_msg=None,
            error_msg=lambda m, exc, ctx: f"{ctx['who']}: {type(exc).__name__}",
            context={"who": "alice"},
        )
    )
    other = make_manager(max_epochs=2)
    other.extend(ppe_slacklog.Slack(CHANNEL, start_msg=None, error_msg="E: {error}"))
    with pytest.raises(ValueError):
        run_training(manager, fail_at=1)
    with pytest.raises(ValueError):
        run_training(other, fail_at=1)
    assert [m.text for m in slack_env.messages(CHANNEL)] == [
        "alice: ValueError",
        "E: boom",
    ]


def test_context_object_in_templates(slack_env: SlackEmulator) -> None:
    class Ctx:
        name = "resnet<50>"

    manager = make_manager(max_epochs=1)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            msg=lambda m, ctx: f"{ctx.name} @ {m.epoch}",
            start_msg="{context.name} starts",
            end_msg="{default}",
            context=Ctx(),
        )
    )
    run_training(manager)
    texts = thread_texts(slack_env, CHANNEL)
    # Values interpolated by a format string are escaped; callables are trusted.
    assert texts[0] == "resnet&lt;50&gt; starts"
    assert texts[1] == "resnet<50> @ 1"


def test_disabled_events_post_nothing(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg=None, start_msg=None, end_msg="done")
    )
    run_training(manager)
    assert [m.text for m in slack_env.messages(CHANNEL)] == ["done"]


def test_file_templates_upload_into_thread(
    slack_env: SlackEmulator, tmp_path: Path
) -> None:
    for epoch in (1, 2):
        (tmp_path / f"plot_{epoch}.png").write_bytes(b"PNG" + bytes([epoch]))
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            msg="Epoch {manager.epoch}",
            filenames=[str(tmp_path / "plot_{manager.epoch}.png")],
        )
    )
    run_training(manager)
    parent = slack_env.top_level(CHANNEL)[0]
    files = slack_env.files
    assert [(f.name, f.content) for f in files] == [
        ("plot_1.png", b"PNG\x01"),
        ("plot_2.png", b"PNG\x02"),
    ]
    assert all(f.thread_ts == parent.ts for f in files)
    assert [f.initial_comment for f in files] == ["Epoch 1", "Epoch 2"]
    methods = [c.method for c in slack_env.calls]
    assert "files.completeUploadExternal" in methods
    assert "files.upload" not in methods


def test_upload_trigger_and_filenames_callable(
    slack_env: SlackEmulator, tmp_path: Path
) -> None:
    plot = tmp_path / "statistics.png"
    plot.write_bytes(b"final plot")
    manager = make_manager(max_epochs=3)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            filenames=lambda m, ctx: [str(plot)],
            upload_trigger=(3, "epoch"),
        )
    )
    run_training(manager)
    assert [f.name for f in slack_env.files] == ["statistics.png"]
    slack_env.share_pending_files()  # Slack shares uploads asynchronously
    thread = slack_env.thread(CHANNEL, slack_env.top_level(CHANNEL)[0].ts)
    # start, end and the file (msg=None: no text), which Slack may show
    # after the end message.
    assert len(thread) == 3
    assert [f.name for m in thread for f in m.files] == ["statistics.png"]


def test_missing_file_still_posts_and_says_so(
    slack_env: SlackEmulator, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.png"
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep", filenames=[str(missing)]))
    with pytest.warns(SlackDeliveryWarning, match="could not attach") as caught:
        run_training(manager)
    texts = [m.text for m in slack_env.messages(CHANNEL)]
    assert texts[1] == f"ep\n⚠️ Could not attach `{missing}`: No such file or directory"
    assert len([w for w in caught if "could not attach" in str(w.message)]) == 1
    assert slack_env.files == []


def test_missing_template_key_does_not_stop_training(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch} acc={val/acc}"))
    with pytest.warns(TemplateWarning, match="val/acc") as caught:
        run_training(manager, _loss)
    texts = [m.text for m in slack_env.messages(CHANNEL)]
    assert texts[1:4] == [f"ep {e} acc=[missing: val/acc]" for e in (1, 2, 3)]
    assert len([w for w in caught if issubclass(w.category, TemplateWarning)]) == 1


def test_bad_format_spec_and_raising_callable(slack_env: SlackEmulator) -> None:
    def broken(manager: Any, context: Any) -> str:
        raise KeyError("val/missing")

    manager = make_manager(max_epochs=1)
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg=broken, start_msg="{note:.2f}"),
    )
    with pytest.warns(TemplateWarning):
        run_training(manager, lambda m: {"note": "text"})
    texts = thread_texts(slack_env, CHANNEL)
    assert texts[0] == "[missing: note]"  # nothing reported before the start
    assert texts[1].startswith("Epoch #1\n[missing: the callable raised KeyError")


def test_observation_values_are_escaped(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="note: {note}", start_msg=None))
    run_training(manager, lambda m: {"note": "<!channel> & co"})
    assert slack_env.messages(CHANNEL)[0].text == "note: &lt;!channel&gt; &amp; co"


def test_missing_token_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError) as info:
        ppe_slacklog.Slack(CHANNEL)
    assert "SLACK_BOT_TOKEN" in str(info.value)
    assert "token=" in str(info.value)


def test_token_from_argument(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1)
    ext = ppe_slacklog.Slack(CHANNEL, token=emu.token, base_url=emu.base_url)
    manager.extend(ext)
    run_training(manager)
    assert len(emu.messages(CHANNEL)) == 2  # start and end; msg=None
    assert emu.token not in repr(ext)


def test_wrong_token_warns_once_and_training_goes_on(emu: SlackEmulator) -> None:
    secret = "xoxb-wrong-secret-token"
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL, token=secret, base_url=emu.base_url))
    with pytest.warns(SlackDeliveryWarning) as caught:
        run_training(manager)
    delivery = [str(w.message) for w in caught if w.category is SlackDeliveryWarning]
    assert len(delivery) == 1
    assert "invalid_auth" in delivery[0] and CHANNEL in delivery[0]
    assert "SLACK_BOT_TOKEN" in delivery[0]
    assert all(secret not in str(w.message) for w in caught)
    assert manager.iteration == 6
    assert emu.messages(CHANNEL) == []


def test_channel_errors_are_explained(emu: SlackEmulator) -> None:
    channel, code, hint = "does-not-exist", "channel_not_found", "check the name"
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(channel, token=emu.token, base_url=emu.base_url))
    with pytest.warns(SlackDeliveryWarning) as caught:
        run_training(manager)
    messages = [str(w.message) for w in caught if w.category is SlackDeliveryWarning]
    assert len(messages) == 1
    assert code in messages[0] and hint in messages[0] and channel in messages[0]


def test_unreachable_slack_does_not_stop_training(emu: SlackEmulator) -> None:
    handler = ppe_slacklog.SlackHandler(
        CHANNEL, token="xoxb-x", base_url="http://127.0.0.1:9/api/", flush_timeout=0.2
    )
    logging.getLogger("ppe_slacklog.training").addHandler(handler)
    logging.getLogger("ppe_slacklog.training").setLevel(logging.INFO)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    run_training(manager)
    assert manager.iteration == 4
    with pytest.warns(SlackDeliveryWarning, match="could not be delivered within"):
        handler.close()
    assert handler.stats.sent == 0
    assert handler.stats.api_calls >= 1


def test_two_extensions_post_to_their_own_channels(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1)
    kw = {"token": emu.token, "base_url": emu.base_url, "start_msg": None}
    manager.extend(ppe_slacklog.Slack(CHANNEL, end_msg="a", **kw), name="a")
    manager.extend(ppe_slacklog.Slack("alerts", end_msg="b", **kw), name="b")
    run_training(manager)
    assert [m.text for m in emu.messages(CHANNEL)] == ["a"]
    assert [m.text for m in emu.messages("alerts")] == ["b"]
    # The extensions' own handlers are gone after finalize.
    assert logging.getLogger("ppe_slacklog.training").handlers == []


def test_records_follow_the_contract(slack_env: SlackEmulator) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(Collect())  # routing configured: the drop-in steps aside
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, context="ctx"))
    with pytest.raises(ValueError):
        run_training(manager, _loss, fail_at=4)
    kinds = [r.ppe_event for r in records]  # type: ignore[attr-defined]
    assert kinds == ["start", "trigger", "error"]
    trigger = records[1]
    assert trigger.epoch == 1 and trigger.iteration == 2  # type: ignore[attr-defined]
    assert trigger.observations == {"loss": 0.25, "val/loss": 0.5}  # type: ignore[attr-defined]
    assert trigger.context == "ctx"  # type: ignore[attr-defined]
    assert trigger.filenames == []  # type: ignore[attr-defined]
    assert isinstance(trigger.elapsed_time, float)  # type: ignore[attr-defined]
    assert len({r.run_id for r in records}) == 1  # type: ignore[attr-defined]
    assert trigger.levelno == logging.INFO
    assert trigger.getMessage() == "epoch 1, iteration 2: loss=0.25 val/loss=0.5"
    assert records[2].levelno == logging.ERROR
    assert records[2].exc_info is not None and records[2].exc_info[0] is ValueError
    assert slack_env.token not in repr(records[1].__dict__)


def test_state_dict_keeps_run_id(slack_env: SlackEmulator) -> None:
    ext = ppe_slacklog.Slack(CHANNEL)
    other = ppe_slacklog.Slack(CHANNEL)
    other.load_state_dict(ext.state_dict())
    assert other.run_id == ext.run_id


def test_parity_with_ppe_slack(
    emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run with ppe's own Slack yields the same texts."""
    from pytorch_pfn_extras.training.extensions import Slack as PpeSlack

    monkeypatch.setenv("SLACK_BOT_TOKEN", emu.token)
    kwargs: dict[str, Any] = {
        "msg": "Epoch #{manager.epoch}: loss = {val/loss}",
        "end_msg": "{default} \n <@username> Check out the result!",
    }
    theirs = PpeSlack(CHANNEL, **kwargs)
    # Point ppe's own client at the emulator (configuration, not patching).
    theirs._client.base_url = emu.base_url
    manager = make_manager(max_epochs=2)
    manager.extend(theirs)
    run_training(manager, _loss)
    reference = [m.text for m in emu.messages(CHANNEL)]

    emu.reset()
    manager = make_manager(max_epochs=2)
    # card=False: ppe's exact messages, no live card (no edits, no chart).
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, base_url=emu.base_url, card=False, **kwargs)
    )
    run_training(manager, _loss)
    ours = [m.text for m in emu.messages(CHANNEL)]
    assert ours == reference
    assert not any(c.method == "chat.update" for c in emu.calls)
    assert len(ours) == 4


def test_no_warning_when_all_is_well(slack_env: SlackEmulator) -> None:
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{loss:.2f}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_training(manager, _loss)
    assert [m.text for m in slack_env.messages(CHANNEL)][1] == "0.25"
    assert os.environ["SLACK_BOT_TOKEN"] == slack_env.token


def test_configured_logger_below_info_is_pointed_out(emu: SlackEmulator) -> None:
    handler = ppe_slacklog.SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logging.getLogger("ppe_slacklog.training").addHandler(handler)  # level unset
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    with pytest.warns(UserWarning, match="not enabled for INFO"):
        run_training(manager)


def test_warnings_as_errors_never_reach_training(emu: SlackEmulator) -> None:
    handler = ppe_slacklog.SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logging.getLogger("ppe_slacklog.training").addHandler(handler)  # level unset
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{missing_key}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_training(manager)
    assert manager.iteration == 2
