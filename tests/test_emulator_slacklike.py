"""The emulator's defaults follow Slack where Slack is harsh (issue 14)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


# ------------------------------------------------------------- rate limits


def test_posting_faster_than_one_a_second_is_rate_limited(emu: SlackEmulator) -> None:
    client = emu.client()
    for i in range(4):  # a short burst passes
        client.chat_postMessage(channel=CHANNEL, text=str(i))
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=CHANNEL, text="too fast")
    assert excinfo.value.response.status_code == 429
    assert _error(excinfo) == "ratelimited"
    assert int(excinfo.value.response.headers["Retry-After"]) >= 1
    # Per channel: another channel still has its burst.
    client.chat_postMessage(channel="general", text="elsewhere")


def test_the_workspace_has_a_limit_of_its_own(emu: SlackEmulator) -> None:
    client = emu.client()
    names = [f"c{i}" for i in range(6)]
    for name in names:
        emu.add_channel(name)
    answers = []
    for _ in range(4):
        for name in names:
            try:
                client.chat_postMessage(channel=name, text="x")
                answers.append(200)
            except SlackApiError as exc:
                answers.append(exc.response.status_code)
    # 24 posts, each channel within its burst of 4: the workspace's 20 bind.
    assert answers.count(429) >= 3


def test_history_reads_are_tier_3(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id(CHANNEL)
    for _ in range(50):  # "50+ per minute", sporadic bursts welcome
        client.conversations_history(channel=channel)
    with pytest.raises(SlackApiError) as limited:
        client.conversations_history(channel=channel)
    assert limited.value.response.status_code == 429
    # Per method: replies have their own allowance.
    parent = client.chat_postMessage(channel=CHANNEL, text="p")["ts"]
    assert client.conversations_replies(channel=channel, ts=parent)["ok"]


@pytest.mark.slack_emulator(non_marketplace=True)
def test_non_marketplace_apps_read_history_once_a_minute(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id("general")
    history = client.conversations_history(channel=channel, limit=200)
    assert history["ok"]
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_history(channel=channel)
    assert excinfo.value.response.status_code == 429
    assert int(excinfo.value.response.headers["Retry-After"]) > 50


@pytest.mark.slack_emulator(non_marketplace=True, rate_limits=False)
def test_non_marketplace_pages_hold_at_most_15_messages(emu: SlackEmulator) -> None:
    client = emu.client()
    for i in range(20):
        client.chat_postMessage(channel="general", text=str(i))
    page = client.conversations_history(channel=emu.channel_id("general"), limit=200)
    assert len(page["messages"]) == 15
    assert page["has_more"]


@pytest.mark.slack_emulator(rate_limits=False)
def test_the_marker_asks_for_a_fast_slack(emu: SlackEmulator) -> None:
    client = emu.client()
    for i in range(10):
        client.chat_postMessage(channel=CHANNEL, text=str(i))
    assert len(emu.messages(CHANNEL)) == 10


def test_reset_restores_slacks_limits(emu: SlackEmulator) -> None:
    emu.rate_limit("chat.postMessage", per_second=None)
    client = emu.client()
    for i in range(6):
        client.chat_postMessage(channel=CHANNEL, text=str(i))
    emu.reset()
    with pytest.raises(SlackApiError):
        for i in range(6):
            client.chat_postMessage(channel=CHANNEL, text=str(i))


# ------------------------------------------------------------------ threads


def test_a_reply_to_a_deleted_parent_is_ok_and_seen_nowhere(emu: SlackEmulator) -> None:
    client = emu.client()
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    emu.delete_message(CHANNEL, parent)
    answer = client.chat_postMessage(channel=CHANNEL, text="after", thread_ts=parent)
    assert answer["ok"] and answer["ts"]
    assert emu.messages(CHANNEL) == []
    assert [m.text for m in emu.orphans(CHANNEL)] == ["after"]
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_replies(channel=emu.channel_id(CHANNEL), ts=parent)
    assert _error(excinfo) == "thread_not_found"
    with pytest.raises(KeyError):
        emu.delete_message(CHANNEL, parent)


def test_a_deleted_parent_with_replies_stays_as_a_tombstone(
    emu: SlackEmulator,
) -> None:
    client = emu.client()
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    client.chat_postMessage(channel=CHANNEL, text="before", thread_ts=parent)
    emu.delete_message(CHANNEL, parent)
    client.chat_postMessage(channel=CHANNEL, text="after", thread_ts=parent)
    replies = client.conversations_replies(channel=emu.channel_id(CHANNEL), ts=parent)
    first, *rest = replies["messages"]
    assert (first["subtype"], first["text"]) == (
        "tombstone",
        "This message was deleted.",
    )
    assert [m["text"] for m in rest] == ["before", "after"]
    assert emu.orphans() == []


# -------------------------------------------------------------------- files


def test_a_file_is_shared_after_the_completion_answered(emu: SlackEmulator) -> None:
    client = emu.client(token=emu.token)
    parent = client.chat_postMessage(channel=CHANNEL, text="run")["ts"]
    completion = client.files_upload_v2(
        content=b"png",
        filename="loss.png",
        channel=emu.channel_id(CHANNEL),
        thread_ts=parent,
        initial_comment="epoch 1",
    )
    assert completion["file"]["shares"] == {}
    assert completion["file"]["channels"] == []
    client.chat_postMessage(channel=CHANNEL, text="epoch 2", thread_ts=parent)
    assert [m.text for m in emu.thread(CHANNEL, parent)] == ["run", "epoch 2"]
    assert emu.wait_for(lambda e: len(e.thread(CHANNEL, parent)) == 3, timeout=5)
    # Slack orders by when it stored the message: the file comes last.
    assert [m.text for m in emu.thread(CHANNEL, parent)] == [
        "run",
        "epoch 2",
        "epoch 1",
    ]
    assert [f.name for f in emu.files] == ["loss.png"]


@pytest.mark.slack_emulator(scopes=("chat:write", "files:write", "files:read"))
def test_files_info_shows_the_share_once_it_happened(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id(CHANNEL)
    file_id = client.files_upload_v2(content=b"x", filename="x.txt", channel=channel)[
        "file"
    ]["id"]
    assert client.files_info(file=file_id)["file"]["shares"] == {}
    emu.share_pending_files()
    info = client.files_info(file=file_id)["file"]
    (share,) = info["shares"]["public"][channel]
    assert share["ts"] == emu.messages(CHANNEL)[-1].ts
    assert info["channels"] == [channel]


@pytest.mark.slack_emulator(share_delay=0)
def test_share_delay_zero_shares_at_once(emu: SlackEmulator) -> None:
    emu.client().files_upload_v2(
        content=b"x", filename="x.txt", channel=emu.channel_id(CHANNEL)
    )
    assert [f.name for m in emu.messages(CHANNEL) for f in m.files] == ["x.txt"]


# --------------------------------------------------------------------- text


def test_over_40000_characters_are_truncated_with_a_warning(emu: SlackEmulator) -> None:
    answer = emu.client().chat_postMessage(channel=CHANNEL, text="a" * 40_000 + "b")
    assert answer["ok"]
    assert answer["warning"] == "message_truncated"
    assert emu.messages(CHANNEL)[0].text == "a" * 40_000


def test_stored_text_comes_back_rewritten_like_slacks(emu: SlackEmulator) -> None:
    client = emu.client()
    sent = "✅ ❌ ⚠️ ℹ️ 📎 see https://example.com/a, or <https://example.com/b|b>"
    answer = client.chat_postMessage(channel=CHANNEL, text=sent)
    returned = (
        ":white_check_mark: :x: :warning: :information_source: :paperclip: see "
        "<https://example.com/a>, or <https://example.com/b|b>"
    )
    assert answer["message"]["text"] == returned
    history = client.conversations_history(channel=emu.channel_id(CHANNEL))
    assert history["messages"][0]["text"] == returned
    (stored,) = emu.messages(CHANNEL)
    assert (stored.text, stored.api_text) == (sent, returned)


# -------------------------------------------------------------------- errors


def test_5xx_answers_are_html_pages(emu: SlackEmulator) -> None:
    emu.fail_next(1, status=503)
    request = urllib.request.Request(
        emu.base_url + "auth.test",
        data=b"",
        headers={"Authorization": f"Bearer {emu.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 503
    assert excinfo.value.headers["Content-Type"].startswith("text/html")
    assert b"<html>" in excinfo.value.read()


@pytest.mark.parametrize("error", ["fatal_error", "internal_error"])
def test_http_200_server_trouble_can_be_injected(
    emu: SlackEmulator, error: str
) -> None:
    emu.fail_after_accept(1, status=200, error=error)
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().chat_postMessage(channel=CHANNEL, text="stored anyway")
    assert excinfo.value.response.status_code == 200
    assert _error(excinfo) == error
    assert [m.text for m in emu.messages(CHANNEL)] == ["stored anyway"]
    with pytest.raises(ValueError, match="status"):
        emu.fail_next(1, status=200)


def test_a_webhooks_429_body_is_json(emu: SlackEmulator) -> None:
    emu.rate_limit("webhook", per_second=1, burst=1)
    client = WebhookClient(emu.webhook_url("alerts"))
    assert client.send(text="1").status_code == 200
    limited = client.send(text="2")
    assert limited.status_code == 429
    assert json.loads(limited.body)["error"] == "rate_limited"


def test_archived_channels(emu: SlackEmulator) -> None:
    client = emu.client()
    url = emu.webhook_url("alerts")
    emu.archive_channel("alerts")
    channel = emu.channel_id("alerts")
    assert client.conversations_info(channel=channel)["channel"]["is_archived"]
    listed = client.conversations_list(exclude_archived=True)["channels"]
    assert channel not in [c["id"] for c in listed]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="alerts", text="x")
    assert _error(excinfo) == "is_archived"
    answer = WebhookClient(url).send(text="x")
    assert (answer.status_code, answer.body) == (410, "channel_is_archived")
    emu.archive_channel("alerts", archived=False)
    client.chat_postMessage(channel="alerts", text="back")


def test_restricted_action(emu: SlackEmulator) -> None:
    emu.restrict_posting("general")
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().chat_postMessage(channel="general", text="x")
    assert _error(excinfo) == "restricted_action"
    emu.restrict_posting("general", restricted=False)
    emu.client().chat_postMessage(channel="general", text="x")


def test_wait_for_sees_a_share_that_falls_due(emu: SlackEmulator) -> None:
    emu.share_delay = 0.2
    emu.client().files_upload_v2(
        content=b"x", filename="x.txt", channel=emu.channel_id(CHANNEL)
    )
    started = time.monotonic()
    assert emu.wait_for(lambda e: bool(e.messages(CHANNEL)), timeout=5)
    assert time.monotonic() - started < 5
