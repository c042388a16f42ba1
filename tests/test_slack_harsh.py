"""The library against Slack's harsh sides, as the emulator has them by default.

Each test reproduces a way real Slack differs from a kind server (issue 14):
replies to a thread that is gone are accepted and shown nowhere, HTTP 200
``fatal_error`` may have stored the post, file shares are asynchronous,
long texts are truncated with only a warning, stored text is rewritten, and
history reads may be limited to one a minute.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from ppe_slacklog import SlackDeliveryWarning, SlackHandler
from ppe_slacklog.events import ManagerSnapshot, event_extra
from ppe_slacklog.slackapi import SlackApi, SlackDeliveryError
from ppe_slacklog.testing import SlackEmulator
from ppe_slacklog.testing._emulator import DEFAULT_SCOPES

CHANNEL = "experiment-progress"


def _handler(emu: SlackEmulator, **kw: Any) -> SlackHandler:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, **kw)
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _trigger(run_id: str, text: str, **kw: Any) -> None:
    extra = event_extra(
        kind="trigger",
        run_id=run_id,
        snapshot=ManagerSnapshot(epoch=1),
        context=None,
        template=text,
        **kw,
    )
    logging.getLogger("ppe_slacklog.training").info(text, extra=extra)


def _plot(tmp_path: Path) -> str:
    plot = tmp_path / "loss.png"
    plot.write_bytes(b"png bytes")
    return str(plot)


# ---------------------------------------------- 1. threads that are gone


def test_a_saved_thread_whose_parent_was_deleted_starts_a_new_one(
    emu: SlackEmulator,
) -> None:
    client = emu.client()
    saved = client.chat_postMessage(channel=CHANNEL, text="Training started")["ts"]
    emu.delete_message(CHANNEL, saved)
    handler = _handler(emu)
    handler.continue_thread("run", saved)
    with pytest.warns(SlackDeliveryWarning, match="no longer exists"):
        _trigger("run", "epoch 2")
        _trigger("run", "epoch 3")
        assert handler.drain(timeout=10.0)
    (top,) = emu.top_level(CHANNEL)
    assert [m.text for m in emu.thread(CHANNEL, top.ts)] == ["epoch 2", "epoch 3"]
    assert emu.orphans() == []
    assert handler.thread_ts("run") == top.ts


def test_a_saved_thread_that_exists_is_checked_once_and_continued(
    emu: SlackEmulator,
) -> None:
    saved = emu.client().chat_postMessage(channel=CHANNEL, text="started")["ts"]
    handler = _handler(emu)
    handler.continue_thread("run", saved)
    _trigger("run", "epoch 2")
    assert handler.drain(timeout=10.0)
    _trigger("run", "epoch 3")
    assert handler.drain(timeout=10.0)
    texts = [m.text for m in emu.thread(CHANNEL, saved)]
    assert "\n".join(texts).splitlines() == ["started", "epoch 2", "epoch 3"]
    checks = [c for c in emu.calls if c.method == "conversations.replies"]
    assert len(checks) == 1


def test_a_thread_of_another_channel_is_not_replied_to_invisibly(
    emu: SlackEmulator,
) -> None:
    elsewhere = emu.client().chat_postMessage(channel="general", text="x")["ts"]
    handler = _handler(emu)
    handler.continue_thread("run", elsewhere)
    with pytest.warns(SlackDeliveryWarning, match="no longer exists"):
        _trigger("run", "epoch 2")
        assert handler.drain(timeout=10.0)
    assert [m.text for m in emu.top_level(CHANNEL)] == ["epoch 2"]
    assert emu.orphans() == []


def test_without_history_scope_a_saved_thread_is_trusted_and_that_is_said() -> None:
    scopes = [s for s in DEFAULT_SCOPES if s != "channels:history"]
    with SlackEmulator(scopes=scopes) as emu:
        saved = emu.client().chat_postMessage(channel=CHANNEL, text="started")["ts"]
        handler = _handler(emu)
        handler.continue_thread("run", saved)
        with pytest.warns(SlackDeliveryWarning, match="channels:history") as said:
            _trigger("run", "epoch 2")
            _trigger("run", "epoch 3")
            assert handler.drain(timeout=10.0)
        assert len([w for w in said if "cannot check" in str(w.message)]) == 1
        texts = [m.text for m in emu.thread(CHANNEL, saved)]
        assert "\n".join(texts).splitlines() == ["started", "epoch 2", "epoch 3"]
        handler.close()


@pytest.mark.slack_emulator(non_marketplace=True)
def test_a_users_client_with_slack_sdks_retry_handlers_never_stalls_the_sender(
    emu: SlackEmulator,
) -> None:
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    client = emu.client(retry_handlers=[RateLimitErrorRetryHandler()])
    handler = SlackHandler(CHANNEL, client=client, flush_timeout=60)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    emu.fail_after_accept(2, status=503, method="chat.postMessage")
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlackDeliveryWarning)
        for n in range(3):
            logger.warning("epoch %d", n)
        assert handler.drain(timeout=60.0)
    # slack_sdk's handler would sleep Retry-After (60 s) on each look-up.
    assert time.monotonic() - started < 30.0
    assert client.retry_handlers  # the user's client itself is left alone
    logger.removeHandler(handler)
    handler.close()


# ------------------------------------------- 2. HTTP 200 server trouble


@pytest.mark.parametrize("error", ["fatal_error", "internal_error"])
def test_http_200_server_trouble_is_checked_before_sending_again(
    emu: SlackEmulator, error: str
) -> None:
    emu.fail_after_accept(1, status=200, error=error, method="chat.postMessage")
    handler = _handler(emu)
    _trigger("run", "epoch 1")
    assert handler.drain(timeout=10.0)
    assert [m.text for m in emu.messages(CHANNEL)] == ["epoch 1"]
    assert handler.stats.sent == 1


def test_a_5xx_html_page_is_named_by_its_status(emu: SlackEmulator) -> None:
    emu.fail_next(1, status=502, method="chat.postMessage")
    api = SlackApi.create(token=emu.token, base_url=emu.base_url)
    with pytest.raises(SlackDeliveryError) as excinfo:
        api.post(CHANNEL, "x")
    assert excinfo.value.code == "http_502"
    assert excinfo.value.ambiguous and not excinfo.value.permanent
    assert "html" not in str(excinfo.value).lower()


# ------------------------------------------------ 3. asynchronous shares


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(
            "tier 3",
            id="slow-share",
            marks=pytest.mark.slack_emulator(share_delay=3.0),
        ),
        # No files:read, history once a minute: the one read must come
        # after the share (about a second), or the upload is sent twice.
        pytest.param(
            "once a minute",
            id="one-read-a-minute",
            marks=pytest.mark.slack_emulator(non_marketplace=True),
        ),
        pytest.param(
            "files.info",
            id="files-info",
            marks=pytest.mark.slack_emulator(
                share_delay=3.0, scopes=(*DEFAULT_SCOPES, "files:read")
            ),
        ),
    ],
)
def test_a_lost_completion_is_found_by_file_id(
    emu: SlackEmulator, tmp_path: Path, how: str
) -> None:
    emu.fail_after_accept(1, status=500, method="files.completeUploadExternal")
    handler = _handler(emu)
    _trigger("run", "start")
    _trigger("run", "epoch 1", filenames=[_plot(tmp_path)])
    assert handler.drain(timeout=30.0)
    emu.share_pending_files()
    assert [f.name for f in emu.files] == ["loss.png"]
    assert sum(1 for m in emu.messages(CHANNEL) if m.files) == 1
    if how == "files.info":
        assert any(c.method == "files.info" for c in emu.calls)


def test_a_completion_that_never_took_effect_is_sent_again_at_once(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    scopes = (*DEFAULT_SCOPES, "files:read")
    with SlackEmulator(scopes=scopes) as slack:
        slack.fail_next(1, status=503, method="files.completeUploadExternal")
        handler = _handler(slack)
        _trigger("run", "start")
        _trigger("run", "epoch 1", filenames=[_plot(tmp_path)])
        assert handler.drain(timeout=10.0)
        assert [f.name for f in slack.files] == ["loss.png"]
        # files.info said file_not_found: no waiting for a share.
        infos = [c for c in slack.calls if c.method == "files.info"]
        assert [c.error for c in infos] == ["file_not_found"]
        handler.close()


# ---------------------------------------------------- 4. long texts


def test_max_message_chars_above_slacks_limit_is_refused(emu: SlackEmulator) -> None:
    with pytest.raises(ValueError, match="40000"):
        SlackHandler(
            CHANNEL, emu.token, base_url=emu.base_url, max_message_chars=100_000
        )
    SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, max_message_chars=40_000)


def test_a_truncation_warning_reaches_the_diagnostics(emu: SlackEmulator) -> None:
    api = SlackApi.create(token=emu.token, base_url=emu.base_url)
    with pytest.warns(SlackDeliveryWarning, match="message_truncated"):
        api.post(CHANNEL, "x" * 40_010)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.post(CHANNEL, "y" * 40_010)  # once per kind
    assert [len(m.text) for m in emu.messages(CHANNEL)] == [40_000, 40_000]


# ----------------------------------------------- 5. rewritten stored text


def test_an_upload_with_a_link_and_emoji_in_its_comment_is_not_repeated(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    emu.fail_after_accept(1, status=500, method="files.completeUploadExternal")
    handler = _handler(emu)
    _trigger("run", "start")
    text = "✅ epoch 1, details: https://example.com/runs/1"
    _trigger("run", text, filenames=[_plot(tmp_path)])
    assert handler.drain(timeout=30.0)
    emu.share_pending_files()
    assert [f.name for f in emu.files] == ["loss.png"]
    (shared,) = [m for m in emu.messages(CHANNEL) if m.files]
    assert shared.text == text
    assert shared.api_text == (
        ":white_check_mark: epoch 1, details: <https://example.com/runs/1>"
    )


def test_a_post_with_a_link_whose_answer_was_lost_is_found_by_metadata(
    emu: SlackEmulator,
) -> None:
    emu.fail_after_accept(1, status=500, method="chat.postMessage")
    handler = _handler(emu)
    _trigger("run", "⚠️ see https://example.com/x")
    assert handler.drain(timeout=10.0)
    assert len(emu.messages(CHANNEL)) == 1


# ------------------------------------------------------ rate limits


@pytest.mark.slack_emulator(non_marketplace=True)
def test_history_look_up_gives_up_quickly_under_one_request_a_minute(
    emu: SlackEmulator,
) -> None:
    # Someone else's read used this minute's only history request.
    emu.client().conversations_history(channel=emu.channel_id(CHANNEL))
    emu.fail_after_accept(1, status=500, method="chat.postMessage")
    handler = _handler(emu, thread=False)
    started = time.monotonic()
    with pytest.warns(SlackDeliveryWarning, match="once a minute"):
        _trigger("run", "epoch 1")
        assert handler.drain(timeout=20.0)
    assert time.monotonic() - started < 20.0
    # It could not tell, so it sent again: a duplicate, not a stall.
    assert [m.text for m in emu.messages(CHANNEL)] == ["epoch 1", "epoch 1"]


def test_a_busy_run_stays_under_slacks_default_limits(emu: SlackEmulator) -> None:
    handler = _handler(emu)
    for i in range(8):
        _trigger("run", f"epoch {i}")
        time.sleep(0.05)
    assert handler.drain(timeout=30.0)
    assert not [c for c in emu.calls if c.status == 429]
    lines = "\n".join(m.text for m in emu.messages(CHANNEL)).splitlines()
    assert lines == [f"epoch {i}" for i in range(8)]


# ------------------------------------------------ refusals by name


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda e: e.archive_channel(CHANNEL), "archived"),
        (lambda e: e.restrict_posting(CHANNEL), "does not allow"),
    ],
)
def test_archived_or_restricted_channels_are_reported_not_retried(
    emu: SlackEmulator, setup: Any, words: str
) -> None:
    setup(emu)
    handler = _handler(emu)
    with pytest.warns(SlackDeliveryWarning, match=words):
        _trigger("run", "epoch 1")
        _trigger("run", "epoch 2")
        assert handler.drain(timeout=10.0)
    assert handler.stats.failed == 2
    assert emu.messages(CHANNEL) == []
