"""``SlackHandler``: configuration, routing, rendering and delivery."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import pytest
from conftest import make_manager, run_training, slack_dict_config

import ppe_slacklog
from ppe_slacklog import SlackHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def test_dictconfig_routes_training_and_project_logs(slack_env: SlackEmulator) -> None:
    logging.config.dictConfig(slack_dict_config(slack_env))
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack("ignored-channel", msg="Epoch #{manager.epoch}"))
    run_training(manager)
    logging.getLogger("myproject").info("not sent: below WARNING")
    logging.getLogger("myproject").warning("disk %s is %d%% full", "/data", 93)
    handler = logging.getLogger("myproject").handlers[0]
    handler.flush()

    # The configured handler posts; the extension attached none of its own.
    assert logging.getLogger("ppe_slacklog.training").handlers == [handler]
    top = slack_env.top_level(CHANNEL)
    assert len(top) == 2
    thread = slack_env.thread(CHANNEL, top[0].ts)
    assert [m.text for m in thread][1:] == [
        "Epoch #1",
        "Epoch #2",
        thread[-1].text,
    ]
    assert thread[-1].text.startswith("✅ *Training finished!")
    assert top[1].text == "⚠️ *myproject* disk /data is 93% full"


def test_handler_templates_override_the_records(emu: SlackEmulator) -> None:
    progress = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    alerts = SlackHandler(
        "alerts",
        emu.token,
        base_url=emu.base_url,
        start_msg=None,
        msg=None,
        end_msg="Run finished at epoch {manager.epoch} (loss {loss})",
    )
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(progress)
    logger.addHandler(alerts)
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch}"))
    run_training(manager, lambda m: {"loss": 0.5})
    assert [m.text for m in emu.messages("alerts")] == [
        "Run finished at epoch 2 (loss 0.5)"
    ]
    assert [m.text for m in emu.messages(CHANNEL)][1:3] == ["ep 1", "ep 2"]


def test_plain_records_are_readable_top_level(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, thread=True)
    logger = logging.getLogger("myproject.data")
    logger.addHandler(handler)
    logger.error("loading %s failed", "<!channel>")
    try:
        raise KeyError("shard<3>")
    except KeyError:
        logger.exception("shard missing")
    logger.log(logging.CRITICAL, {"not": "a string"})
    handler.flush()
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert texts[0] == "❌ *myproject.data* loading &lt;!channel&gt; failed"
    assert texts[1].startswith("❌ *myproject.data* shard missing\n```\nTraceback")
    assert "KeyError: 'shard&lt;3&gt;'" in texts[1]
    assert texts[1].endswith("\n```")
    assert texts[2] == "🔥 *myproject.data* {'not': 'a string'}"
    assert all(m.thread_ts is None for m in emu.messages(CHANNEL))


def test_emit_returns_before_slack_answers(emu: SlackEmulator) -> None:
    emu.set_latency(0.3)
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    for i in range(3):
        logger.warning("message %d", i)
    # Nothing could have reached Slack yet: emit only queued.
    assert emu.messages(CHANNEL) == []
    assert handler.pending == 3
    assert handler.drain(timeout=5.0)
    assert [m.text for m in emu.messages(CHANNEL)] == [
        f"⚠️ *myproject* message {i}" for i in range(3)
    ]
    assert handler.stats.sent == 3 and handler.stats.queued == 3


def test_flush_is_bounded_when_slack_is_down(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, flush_timeout=0.3)
    logging.getLogger("myproject").addHandler(handler)
    logging.getLogger("myproject").warning("lost?")
    assert handler.drain() is False
    assert handler.pending == 1
    emu.set_outage(False)
    assert handler.drain(timeout=20.0)
    assert [m.text for m in emu.messages(CHANNEL)] == ["⚠️ *myproject* lost?"]
    assert handler.stats.retries >= 1


def test_server_errors_are_retried(emu: SlackEmulator) -> None:
    emu.fail_next(2, status=500, method="chat.postMessage")
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.warning("after 5xx")
    assert handler.drain(timeout=20.0)
    assert [m.text for m in emu.messages(CHANNEL)] == ["⚠️ *myproject* after 5xx"]
    assert handler.stats.retries == 2 and handler.stats.sent == 1


def test_long_traceback_is_split_in_code_blocks(emu: SlackEmulator) -> None:
    handler = SlackHandler(
        CHANNEL, emu.token, base_url=emu.base_url, max_record_chars=40_000
    )
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    lines = [f"line {i:05d} " + "x" * 60 for i in range(300)]
    try:
        raise RuntimeError("\n".join(lines))
    except RuntimeError:
        logger.exception("huge")
    assert handler.drain(timeout=10.0)
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert len(texts) > 1
    assert all(len(t) <= 4000 for t in texts)
    assert all(t.count("```") % 2 == 0 for t in texts)
    joined = "\n".join(texts)
    assert all(line in joined for line in lines)


def test_slack_sdk_and_sender_logs_never_loop(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("myproject").warning("one")
    assert handler.drain(timeout=5.0)
    logging.getLogger("slack_sdk.web.base_client").debug("request sent")
    assert handler.drain(timeout=5.0)
    assert [m.text for m in emu.messages(CHANNEL)] == ["⚠️ *myproject* one"]


def test_missing_token_and_channel_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN"):
        SlackHandler(CHANNEL)
    with pytest.raises(ValueError, match="channel"):
        SlackHandler("", token="xoxb-1")


def test_dictconfig_without_token_fails_clearly(emu: SlackEmulator) -> None:
    with pytest.raises(ValueError, match="slack") as info:
        logging.config.dictConfig(slack_dict_config(emu))
    assert "SLACK_BOT_TOKEN" in str(info.value.__cause__)
    # The handler that failed is still on logging's shutdown list until it
    # is collected: the next configuration must not trip over it.
    logging.config.dictConfig(slack_dict_config(emu, token=emu.token))


def test_client_argument_and_repr(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, client=emu.client(), level="WARNING")
    assert repr(handler) == f"<SlackHandler {CHANNEL} (WARNING)>"
    assert emu.token not in repr(handler) and emu.token not in str(vars(handler))
    logging.getLogger("myproject").addHandler(handler)
    logging.getLogger("myproject").warning("via client")
    assert handler.drain(timeout=5.0)
    assert len(emu.messages(CHANNEL)) == 1


def test_close_stops_sender_and_later_records_are_reported(
    emu: SlackEmulator,
) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.warning("before close")
    sender = handler._outbox._sender
    handler.close()
    assert [m.text for m in emu.messages(CHANNEL)] == ["⚠️ *myproject* before close"]
    assert sender is not None
    sender.join(timeout=2.0)
    assert not sender.is_alive()
    with pytest.warns(ppe_slacklog.SlackDeliveryWarning, match="closed"):
        handler.handle(logging.makeLogRecord({"msg": "late", "levelno": 30}))
    assert handler.stats.dropped == 1


def test_files_without_thread_resolve_the_channel_id(
    emu: SlackEmulator, tmp_path: Any
) -> None:
    from ppe_slacklog.events import ManagerSnapshot, event_extra

    plot = tmp_path / "loss.png"
    plot.write_bytes(b"png")
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, thread=False)
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    extra = event_extra(
        kind="trigger",
        run_id="r1",
        snapshot=ManagerSnapshot(epoch=1),
        context=None,
        filenames=[str(plot)],
        template="Epoch {manager.epoch}",
    )
    logger.info("epoch 1", extra=extra)
    assert handler.drain(timeout=5.0)
    emu.share_pending_files()  # Slack shares uploads asynchronously
    (message,) = emu.messages(CHANNEL)
    assert message.text == "Epoch 1" and message.thread_ts is None
    assert [f.content for f in message.files] == [b"png"]
    # The bot lacks groups:read: the lookup fell back to public channels.
    lookups = [c for c in emu.calls if c.method == "conversations.list"]
    assert [c.error for c in lookups] == ["missing_scope", None]


def test_records_rebuilt_without_a_level_are_posted(emu: SlackEmulator) -> None:
    """A JSON line replayed through ``logging.makeLogRecord`` has no level."""
    handler = SlackHandler("general", emu.token, base_url=emu.base_url)
    replayed = logging.makeLogRecord(
        {"ppe_event": "trigger", "run_id": "r", "epoch": 3, "observations": {}}
    )
    plain = logging.makeLogRecord({"name": "replay", "msg": "hello"})
    as_float = logging.makeLogRecord({"name": "replay", "msg": "bad", "levelno": 40.0})
    by_name = logging.makeLogRecord(
        {"name": "replay", "msg": "hm", "levelname": "warning"}
    )
    for record in (replayed, plain, as_float, by_name):
        handler.handle(record)
    assert handler.drain()
    texts = "\n".join(m.text for m in emu.messages("general")).splitlines()
    assert texts == ["Epoch #3", "ℹ️ *replay* hello", "❌ *replay* bad", "⚠️ *replay* hm"]
    handler.close()
