"""``SlackWebhook`` and ``SlackWebhookHandler``: webhooks with full delivery."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from conftest import make_manager, run_training

import ppe_slacklog
from ppe_slacklog import SlackDeliveryWarning, SlackWebhookHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "alerts"


def _secret(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def test_extension_posts_every_event_at_top_level(emu: SlackEmulator) -> None:
    url = emu.webhook_url(CHANNEL)
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.SlackWebhook(url, msg="Epoch #{manager.epoch}: loss={loss:.1f}")
    )
    run_training(manager, report=lambda m: {"loss": 0.5})
    texts = [m.text for m in emu.top_level(CHANNEL)]
    assert len(texts) == 4
    assert "Training started" in texts[0]
    assert texts[1:3] == ["Epoch #1: loss=0.5", "Epoch #2: loss=0.5"]
    assert "Training finished" in texts[3]
    assert {c.method for c in emu.calls} == {"webhook"}


def test_same_messages_as_the_token_extension(emu: SlackEmulator) -> None:
    """The webhook drop-in renders exactly what the bot-token one does."""
    url = emu.webhook_url(CHANNEL)
    for ext in (
        ppe_slacklog.SlackWebhook(url, msg="{default} {manager.iteration}"),
        ppe_slacklog.Slack(
            "general",
            msg="{default} {manager.iteration}",
            thread=False,
            token=emu.token,
            base_url=emu.base_url,
        ),
    ):
        manager = make_manager(max_epochs=2)
        manager.extend(ext)
        run_training(manager)
    via_hook = [m.text for m in emu.top_level(CHANNEL)]
    via_api = [m.text for m in emu.top_level("general")]
    assert via_hook == via_api and len(via_hook) == 4


def test_errors_and_order_under_a_rate_limit(emu: SlackEmulator) -> None:
    url = emu.webhook_url(CHANNEL)
    emu.rate_limit("webhook", per_second=1.0, burst=3)
    manager = make_manager(max_epochs=6, iters_per_epoch=1)
    manager.extend(ppe_slacklog.SlackWebhook(url, msg="{manager.epoch}"))
    with pytest.raises(ValueError):
        run_training(manager, fail_at=5)
    texts = [m.text for m in emu.top_level(CHANNEL)]
    # Records that waited for their turn share a message, line by line.
    lines = "\n".join(texts[1:-1]).splitlines()
    assert lines == ["1", "2", "3", "4"]
    assert "ValueError: boom" in texts[-1]
    assert not any(c.status == 429 for c in emu.calls)


def test_filenames_warn_once_and_text_still_goes(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    url = emu.webhook_url(CHANNEL)
    with pytest.warns(UserWarning, match="cannot upload files") as caught:
        ext = ppe_slacklog.SlackWebhook(url, filenames=[str(tmp_path / "plot.png")])
    assert len(caught) == 1
    manager = make_manager(max_epochs=1)
    manager.extend(ext)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_training(manager)
    assert len(emu.top_level(CHANNEL)) == 2
    assert emu.files == []


def test_handler_lists_files_it_cannot_upload(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"png")
    handler = SlackWebhookHandler(emu.webhook_url(CHANNEL))
    logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch}", filenames=[str(plot)])
    )
    with pytest.warns(SlackDeliveryWarning, match="cannot upload") as caught:
        run_training(manager)
        assert handler.drain()
    assert len([w for w in caught if "cannot upload" in str(w.message)]) == 1
    texts = [m.text for m in emu.top_level(CHANNEL)]
    assert texts[1].startswith("epoch 1\n📎 Not attached")
    assert "`plot.png`" in texts[1]
    assert emu.files == []


def test_revoked_webhook_is_explained_once_and_secret_stays_hidden(
    emu: SlackEmulator,
) -> None:
    url = emu.webhook_url(CHANNEL)
    emu.revoke_webhook(url)
    handler = SlackWebhookHandler(url, flush_timeout=5)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    with pytest.warns(SlackDeliveryWarning) as caught:
        for i in range(3):
            logger.warning("attempt %d", i)
        handler.drain()
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1
    assert "no_service" in texts[0] and "Incoming Webhooks" in texts[0]
    assert all(_secret(url) not in t for t in texts)
    assert _secret(url) not in repr(handler)
    assert handler.stats.failed == 3


def test_outage_is_retried_until_delivered(emu: SlackEmulator) -> None:
    url = emu.webhook_url(CHANNEL)
    handler = SlackWebhookHandler(url, flush_timeout=20)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    emu.set_outage(True)
    logger.warning("during the outage")
    # A 503 may come after Slack stored the post; a webhook cannot check.
    with pytest.warns(SlackDeliveryWarning, match="may appear twice"):
        assert not handler.drain(1.0)
        emu.set_outage(False)
        assert handler.drain()
    assert ["during the outage" in m.text for m in emu.top_level(CHANNEL)] == [True]
    assert handler.stats.retries >= 1


def test_url_from_environment_and_clear_errors(
    emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match="SLACK_WEBHOOK_URL"):
        ppe_slacklog.SlackWebhook()
    with pytest.raises(ValueError, match="SLACK_WEBHOOK_URL"):
        SlackWebhookHandler()
    with pytest.raises(TypeError, match="thread"):
        SlackWebhookHandler(emu.webhook_url(CHANNEL), thread=True)
    with pytest.raises(ValueError, match="not an Incoming Webhook URL") as bad:
        ppe_slacklog.SlackWebhook("hooks.slack.com/services/T1/B2/s3cr3tXYZ")
    assert "s3cr3tXYZ" not in str(bad.value)
    url = emu.webhook_url(CHANNEL)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    ext = ppe_slacklog.SlackWebhook(msg="hi")
    assert _secret(url) not in repr(ext) and _secret(url) not in repr(vars(ext))
    manager = make_manager(max_epochs=1)
    manager.extend(ext)
    run_training(manager)
    assert [m.text for m in emu.top_level(CHANNEL)][1] == "hi"


def test_dictconfig_routes_other_logs_through_the_webhook(
    emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging.config

    monkeypatch.setenv("SLACK_WEBHOOK_URL", emu.webhook_url(CHANNEL))
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "slack": {"()": "ppe_slacklog.SlackWebhookHandler", "level": "WARNING"}
            },
            "loggers": {"myproject": {"handlers": ["slack"]}},
        }
    )
    logging.getLogger("myproject").warning("disk %s full", "<almost>")
    (handler,) = logging.getLogger("myproject").handlers
    assert isinstance(handler, SlackWebhookHandler) and handler.drain()
    assert emu.top_level(CHANNEL)[0].text.endswith("disk &lt;almost&gt; full")
