"""The emulator's side of the live card (issue 11): blocks, chat.update, files.delete.

Everything goes through the real ``slack_sdk.WebClient`` over HTTP.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ppe_slacklog.testing import MessageEdit, SlackEmulator

CHANNEL = "experiment-progress"
CHANNEL_ID = "C0000002"  # experiment-progress, the second default channel
FAST = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)
WITH_FILES_READ = pytest.mark.slack_emulator(
    scopes=(
        "chat:write",
        "files:write",
        "files:read",
        "channels:read",
        "channels:join",
        "channels:history",
    )
)
# slack_sdk warns (rightly) when an update has no text fallback.
NO_TEXT_WARNING = pytest.mark.filterwarnings("ignore:The top-level `text`")


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


def _text(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _text("plain_text", text)}


def section(text: str | None = None, fields: list[str] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section"}
    if text is not None:
        block["text"] = _text("mrkdwn", text)
    if fields is not None:
        block["fields"] = [_text("mrkdwn", f) for f in fields]
    return block


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_text("mrkdwn", t) for t in texts]}


def image_file(file_id: str) -> dict[str, Any]:
    return {"type": "image", "alt_text": "chart", "slack_file": {"id": file_id}}


CARD = [
    header("🏃 Training: resnet"),
    section("alice@gpu01 · PID 4242 · `python train.py`"),
    section("`████████░░░░` 2/3 epochs · iteration 200"),
    section(fields=["*loss*", "0.51 (best 0.48 @ 1)", "*acc*", "0.82"]),
    {"type": "divider"},
    context("elapsed 3 min", "12.5 it/s", "ETA 1 min"),
]


def _post_card(emu: SlackEmulator, blocks: list[dict[str, Any]] = CARD) -> str:
    answer = emu.client().chat_postMessage(
        channel=CHANNEL, text="🏃 running", blocks=blocks
    )
    return str(answer["ts"])


def _blocks_error(
    client: WebClient, blocks: Any, *, update_ts: str | None = None
) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as excinfo:
        if update_ts is None:
            client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
        else:
            client.chat_update(
                channel=CHANNEL_ID, ts=update_ts, text="t", blocks=blocks
            )
    return dict(excinfo.value.response.data)  # type: ignore[arg-type]


# ------------------------------------------------------------------ blocks


def test_post_message_stores_blocks_sent_as_json(emu: SlackEmulator) -> None:
    client = emu.client()
    answer = client.chat_postMessage(channel=CHANNEL, text="🏃 running", blocks=CARD)
    assert answer["message"]["blocks"] == CARD
    stored = emu.message(CHANNEL, answer["ts"])
    assert stored.blocks == CARD and stored.text == "🏃 running"
    assert stored.edits == []
    history = client.conversations_history(channel=emu.channel_id(CHANNEL))
    assert history["messages"][0]["blocks"] == CARD
    assert "edited" not in history["messages"][0]


def test_post_message_takes_blocks_as_a_form_field(emu: SlackEmulator) -> None:
    client = emu.client()
    answer = client.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "x", "blocks": json.dumps(CARD)},
    )
    assert emu.message(CHANNEL, answer["ts"]).blocks == CARD
    # A form body carries a JSON string; one that is not an array is refused.
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call(
            "chat.postMessage",
            data={"channel": CHANNEL, "text": "x", "blocks": '{"type": "divider"}'},
        )
    assert _error(excinfo) == "invalid_blocks_format"


@NO_TEXT_WARNING
def test_empty_blocks_without_text_is_no_text(emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().chat_postMessage(channel=CHANNEL, blocks=[])
    assert _error(excinfo) == "no_text"
    # Blocks alone are a message (the text is only the fallback).
    ts = emu.client().chat_postMessage(channel=CHANNEL, blocks=[header("h")])["ts"]
    assert emu.message(CHANNEL, ts).text == ""


@FAST
@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        (
            [{"type": "divider"}] * 51,
            "no more than 50 items allowed [json-pointer:/blocks]",
        ),
        (
            [{"type": "carousel"}],
            "must be a valid enum value [json-pointer:/blocks/0/type]",
        ),
        (
            [{"type": "header", "text": _text("mrkdwn", "*run*")}],
            "must be plain_text [json-pointer:/blocks/0/text/type]",
        ),
        (
            [header("x" * 151)],
            "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            [{"type": "divider"}, section("x" * 3001)],
            "must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
        ),
        (
            [section(fields=["f"] * 11)],
            "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        ),
        (
            [section(fields=["a", "x" * 2001])],
            "must be less than 2001 characters [json-pointer:/blocks/0/fields/1/text]",
        ),
        (
            [section()],
            "must provide either text or fields [json-pointer:/blocks/0]",
        ),
        (
            [context(*["c"] * 11)],
            "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        ),
        (
            [{"type": "image", "image_url": "https://example.com/a.png"}],
            "missing required field: alt_text [json-pointer:/blocks/0]",
        ),
        (
            [{"type": "image", "alt_text": "chart"}],
            "must provide either image_url or slack_file [json-pointer:/blocks/0]",
        ),
        (
            [image_file("F0009999")],
            "invalid slack file [json-pointer:/blocks/0/slack_file]",
        ),
        (
            [{"type": "markdown", "text": "x" * 12_001}],
            "must be less than 12001 characters [json-pointer:/blocks/0/text]",
        ),
        (
            [
                section("a", fields=["b"]),
                {**section("c"), "block_id": "card"},
                {**section("d"), "block_id": "card"},
            ],
            "duplicate block_id: card [json-pointer:/blocks/2/block_id]",
        ),
    ],
)
def test_invalid_blocks_are_refused_like_slack(
    emu: SlackEmulator, blocks: list[dict[str, Any]], expected: str
) -> None:
    client = emu.client()
    refused = _blocks_error(client, blocks)
    assert refused["ok"] is False and refused["error"] == "invalid_blocks"
    assert refused["errors"] == [expected]
    assert refused["response_metadata"]["messages"] == [f"[ERROR] {expected}"]
    # chat.update checks the same rules, and the card stays as it was.
    ts = _post_card(emu)
    refused = _blocks_error(client, blocks, update_ts=ts)
    assert refused["errors"] == [expected]
    assert emu.message(CHANNEL, ts).blocks == CARD and not emu.edits(CHANNEL, ts)
    assert not [m for m in emu.messages(CHANNEL) if m.ts != ts]


@FAST
def test_blocks_at_the_limits_are_accepted(emu: SlackEmulator) -> None:
    client = emu.client()
    at_limits = [
        header("x" * 150),
        section("y" * 2_000, fields=["z" * 100] * 10),
        context(*["c"] * 10),
        {"type": "markdown", "text": "m" * 5_000},
        {"type": "image", "alt_text": "a", "image_url": "https://example.com/a.png"},
        {"type": "rich_text", "elements": []},  # known types pass unchecked
        {"type": "actions", "elements": []},
    ]
    assert client.chat_postMessage(channel=CHANNEL, text="t", blocks=at_limits)["ok"]
    many = [{"type": "divider"}] * 50
    assert client.chat_postMessage(channel=CHANNEL, text="t", blocks=many)["ok"]


@FAST
def test_blocks_too_long_in_total(emu: SlackEmulator) -> None:
    # Each section is within its 3,000 characters; together over ~13,000.
    blocks = [section("x" * 2_900) for _ in range(5)]
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    assert _error(excinfo) == "msg_blocks_too_long"
    assert emu.messages(CHANNEL) == []


# ------------------------------------------------------------- chat.update


def test_update_replaces_text_and_blocks_and_keeps_history(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post_card(emu)
    before = time.time()
    done = [header("✅ Training: resnet"), section("3/3 epochs")]
    answer = client.chat_update(channel=CHANNEL_ID, ts=ts, text="✅ done", blocks=done)
    assert answer["ok"] and answer["channel"] == CHANNEL_ID and answer["ts"] == ts
    assert answer["text"] == ":white_check_mark: done"  # stored text, like Slack
    assert answer["message"]["blocks"] == done
    assert answer["message"]["edited"]["user"] == "U0000001"
    current = emu.message(CHANNEL, ts)
    assert (current.text, current.blocks) == ("✅ done", done)
    (edit,) = emu.edits(CHANNEL, ts)
    assert isinstance(edit, MessageEdit)
    assert (edit.text, edit.blocks) == ("🏃 running", CARD)
    assert before <= edit.at <= time.time()
    # Still one message: the thread parent was edited in place.
    assert [m.ts for m in emu.messages(CHANNEL)] == [ts]
    replies = client.conversations_replies(channel=CHANNEL_ID, ts=ts)["messages"]
    assert replies[0]["blocks"] == done
    assert float(replies[0]["edited"]["ts"]) == pytest.approx(edit.at, abs=1e-5)


def test_every_edit_keeps_the_version_it_replaced(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="v0")["ts"]
    for n in range(1, 4):
        client.chat_update(channel=CHANNEL_ID, ts=ts, text=f"v{n}")
    assert [e.text for e in emu.edits(CHANNEL, ts)] == ["v0", "v1", "v2"]
    assert emu.message(CHANNEL, ts).text == "v3"
    edits = emu.edits(CHANNEL, ts)
    assert all(a.at <= b.at for a, b in itertools.pairwise(edits))


@NO_TEXT_WARNING
def test_update_keeps_left_out_metadata_and_text_alone_drops_blocks(
    emu: SlackEmulator,
) -> None:
    client = emu.client()
    metadata = {"event_type": "ppe_run", "event_payload": {"run_id": "r1"}}
    ts = client.chat_postMessage(
        channel=CHANNEL, text="🏃 running", blocks=CARD, metadata=metadata
    )["ts"]
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="🏃 running", blocks=CARD[:2])
    assert emu.message(CHANNEL, ts).metadata == metadata
    # docs.slack.dev chat.update: text without blocks removes the blocks.
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="plain now")
    assert emu.message(CHANNEL, ts).blocks is None
    history = client.conversations_history(
        channel=CHANNEL_ID, include_all_metadata=True
    )["messages"][0]
    assert "blocks" not in history and history["metadata"] == metadata
    # Blocks without text: the text is gone (it was the notification text).
    client.chat_update(channel=CHANNEL_ID, ts=ts, blocks=CARD)
    assert (emu.message(CHANNEL, ts).text, emu.message(CHANNEL, ts).blocks) == (
        "",
        CARD,
    )
    # An empty metadata object removes it.
    client.api_call(
        "chat.update",
        json={"channel": CHANNEL_ID, "ts": ts, "text": "x", "metadata": {}},
    )
    assert emu.message(CHANNEL, ts).metadata is None


def test_update_takes_blocks_as_a_form_field(emu: SlackEmulator) -> None:
    ts = emu.client().chat_postMessage(channel=CHANNEL, text="v0")["ts"]
    emu.client().api_call(
        "chat.update",
        data={
            "channel": CHANNEL_ID,
            "ts": ts,
            "text": "v1",
            "blocks": json.dumps(CARD),
        },
    )
    assert emu.message(CHANNEL, ts).blocks == CARD


@NO_TEXT_WARNING
def test_update_errors(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="mine")["ts"]

    def update(**kwargs: Any) -> str:
        arguments = {"channel": CHANNEL_ID, "ts": ts, "text": "new", **kwargs}
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_update(**arguments)
        assert excinfo.value.response.status_code == 200
        return _error(excinfo)

    assert update(ts="1.000001") == "message_not_found"
    assert update(channel="C0999999") == "channel_not_found"
    assert update(channel=CHANNEL) == "channel_not_found"  # names are not IDs here
    assert update(text=None) == "no_text"
    assert update(text="", blocks=[]) == "no_text"
    assert update(text="x" * 40_001) == "msg_too_long"
    assert update(blocks=[{"type": "header"}]) == "invalid_blocks"
    # A person's message: the bot cannot edit it.
    theirs = emu.post_as_user(CHANNEL, "nice run!", thread_ts=ts)
    assert update(ts=theirs) == "cant_update_message"
    assert emu.message(CHANNEL, theirs).text == "nice run!"
    # The workspace's edit window closed for this message.
    emu.close_edit_window(CHANNEL, ts)
    assert update() == "edit_window_closed"
    assert emu.message(CHANNEL, ts).text == "mine" and not emu.edits(CHANNEL, ts)
    # A deleted message (a parent with replies stays as a tombstone).
    emu.delete_message(CHANNEL, ts)
    assert update() == "message_not_found"
    other = client.chat_postMessage(channel=CHANNEL, text="gone")["ts"]
    emu.delete_message(CHANNEL, other)
    assert update(ts=other) == "message_not_found"


def test_update_where_the_bot_is_not_a_member(emu: SlackEmulator) -> None:
    channel = emu.add_channel("outside", member=False)
    ts = emu.post_as_user("outside", "hello")
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().chat_update(channel=channel, ts=ts, text="x")
    assert _error(excinfo) == "not_in_channel"


def test_user_messages_read_as_a_person_wrote_them(emu: SlackEmulator) -> None:
    ts = emu.post_as_user(CHANNEL, "hi")
    history = emu.client().conversations_history(channel=CHANNEL_ID)["messages"]
    assert history[0]["ts"] == ts and history[0]["user"] == "U0000002"
    assert "bot_id" not in history[0]


# ------------------------------------------------------------- rate limits


def test_chat_update_is_tier_3_for_the_whole_workspace(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.add_channel("other-run")
    other = emu.channel_id("other-run")
    cards = [
        (CHANNEL_ID, client.chat_postMessage(channel=CHANNEL, text="a")["ts"]),
        (other, client.chat_postMessage(channel="other-run", text="b")["ts"]),
    ]
    statuses: list[int] = []
    retry_after = None
    for n in range(30):
        channel, ts = cards[n % 2]  # two runs, two channels: one budget
        try:
            client.chat_update(channel=channel, ts=ts, text=f"update {n}")
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)
            assert exc.response["error"] == "ratelimited"
            retry_after = int(exc.response.headers["Retry-After"])
            break
    # A burst of 20 passes, then 429 with Retry-After, whatever the channel.
    assert statuses[:20] == [200] * 20 and statuses[-1] == 429
    assert retry_after is not None and retry_after >= 1
    limited = [c for c in emu.calls if c.method == "chat.update" and c.status == 429]
    assert len(limited) == 1


@pytest.mark.slack_emulator(rate_limits=False)
def test_rate_limits_false_turns_the_update_limit_off(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="v")["ts"]
    for n in range(60):
        assert client.chat_update(channel=CHANNEL_ID, ts=ts, text=f"v{n}")["ok"]
    assert len(emu.edits(CHANNEL, ts)) == 60


def test_the_update_limit_can_be_changed(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="v")["ts"]
    emu.rate_limit("chat.update", per_second=0.1, burst=2, per_channel=False)
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="1")
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="2")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel=CHANNEL_ID, ts=ts, text="3")
    assert excinfo.value.response.status_code == 429
    assert int(excinfo.value.response.headers["Retry-After"]) >= 9
    assert emu.message(CHANNEL, ts).text == "2"


# ------------------------------------------------------------ files, images


def _upload(client: WebClient, thread_ts: str, **kwargs: Any) -> str:
    answer = client.files_upload_v2(
        channel=CHANNEL_ID,
        thread_ts=thread_ts,
        content=b"\x89PNG fake",
        filename="chart.png",
        **kwargs,
    )
    return str(answer["file"]["id"])


@WITH_FILES_READ
def test_image_blocks_show_shared_files_only(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post_card(emu)
    file_id = _upload(client, ts)
    # Slack shares asynchronously: right after the upload the file cannot be
    # shown yet (python-slack-sdk #1521).
    refused = _blocks_error(client, [*CARD, image_file(file_id)], update_ts=ts)
    assert refused["errors"] == [
        "invalid slack file [json-pointer:/blocks/6/slack_file]"
    ]
    emu.share_pending_files()
    client.chat_update(
        channel=CHANNEL_ID,
        ts=ts,
        text="🏃 running",
        blocks=[*CARD, image_file(file_id)],
    )
    assert emu.render(CHANNEL).splitlines()[8] == "  [image: chart.png]"
    # By permalink too.
    permalink = client.files_info(file=file_id)["file"]["permalink"]
    by_url = {"type": "image", "alt_text": "c", "slack_file": {"url": permalink}}
    assert client.chat_update(channel=CHANNEL_ID, ts=ts, text="t", blocks=[by_url])


@FAST
def test_a_private_upload_cannot_be_shown(emu: SlackEmulator) -> None:
    client = emu.client()
    answer = client.files_upload_v2(content=b"png", filename="private.png")
    refused = _blocks_error(client, [image_file(answer["file"]["id"])])
    assert refused["errors"] == [
        "invalid slack file [json-pointer:/blocks/0/slack_file]"
    ]


@FAST
@WITH_FILES_READ
def test_files_delete_replaces_a_chart(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post_card(emu)
    old = _upload(client, ts)
    client.chat_update(
        channel=CHANNEL_ID, ts=ts, text="🏃", blocks=[*CARD, image_file(old)]
    )
    new = _upload(client, ts)
    assert client.files_delete(file=old)["ok"]
    # Gone from files.info and from the thread (its message had only it).
    with pytest.raises(SlackApiError) as excinfo:
        client.files_info(file=old)
    assert _error(excinfo) == "file_deleted"
    assert [f.id for f in emu.files] == [new]
    thread = emu.thread(CHANNEL, ts)
    assert [[f.id for f in m.files] for m in thread] == [[], [new]]
    # The card still names it: Slack shows the image as deleted.
    assert "[image: chart.png (deleted)]" in emu.render(CHANNEL)
    refused = _blocks_error(client, [image_file(old)], update_ts=ts)
    assert refused["errors"] == [
        "invalid slack file [json-pointer:/blocks/0/slack_file]"
    ]
    client.chat_update(
        channel=CHANNEL_ID, ts=ts, text="🏃", blocks=[*CARD, image_file(new)]
    )
    with pytest.raises(SlackApiError) as excinfo:
        client.files_delete(file=old)
    assert _error(excinfo) == "file_deleted"
    with pytest.raises(SlackApiError) as excinfo:
        client.files_delete(file="F0999999")
    assert _error(excinfo) == "file_not_found"


@FAST
def test_a_deleted_file_with_a_comment_leaves_a_tombstone(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="run")["ts"]
    file_id = _upload(client, ts, initial_comment="the chart")
    client.files_delete(file=file_id)
    replies = client.conversations_replies(channel=CHANNEL_ID, ts=ts)["messages"]
    assert replies[1]["text"] == "the chart"
    assert replies[1]["files"] == [{"id": file_id, "mode": "tombstone"}]
    assert emu.render(CHANNEL) == (
        "#experiment-progress\nrun\n  > the chart (This file was deleted.)"
    )


@FAST
@WITH_FILES_READ
def test_the_bot_cannot_delete_a_persons_file(emu: SlackEmulator) -> None:
    file_id = emu.upload_as_user(CHANNEL, "notes.txt", b"mine")
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().files_delete(file=file_id)
    assert _error(excinfo) == "cant_delete_file"
    assert emu.client().files_info(file=file_id)["file"]["user"] == "U0000002"


def test_files_delete_is_tier_3(emu: SlackEmulator) -> None:
    emu.rate_limit("files.delete", per_second=0.1, burst=1, per_channel=False)
    client = emu.client()
    with pytest.raises(SlackApiError):
        client.files_delete(file="F0999999")  # file_not_found, spends the token
    with pytest.raises(SlackApiError) as excinfo:
        client.files_delete(file="F0999998")
    assert excinfo.value.response.status_code == 429


# ------------------------------------------------------------------ render


def test_render_reads_a_card_as_a_person_does(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post_card(emu)
    client.chat_postMessage(channel=CHANNEL, text="epoch 1: loss 0.6", thread_ts=ts)
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="🏃 running", blocks=CARD)
    assert emu.render(CHANNEL) == "\n".join(
        [
            "#experiment-progress",
            "🏃 Training: resnet",
            "  alice@gpu01 · PID 4242 · `python train.py`",
            "  `████████░░░░` 2/3 epochs · iteration 200",
            "  *loss*   0.51 (best 0.48 @ 1)",
            "  *acc*    0.82",
            "  " + "─" * 24,
            "  elapsed 3 min  12.5 it/s  ETA 1 min",
            "  > epoch 1: loss 0.6",
        ]
    )


def test_render_marks_text_edits_only(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = client.chat_postMessage(channel=CHANNEL, text="first")["ts"]
    before = emu.render(CHANNEL)
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="second")
    assert before == "#experiment-progress\nfirst"
    # Slack shows "(edited)" for a text edit, not for a blocks edit.
    assert emu.render(CHANNEL) == "#experiment-progress\nsecond (edited)"
    client.chat_update(channel=CHANNEL_ID, ts=ts, text="t", blocks=[header("third")])
    assert emu.render(CHANNEL) == "#experiment-progress\nthird"


def test_a_deleted_card_with_replies_reads_as_a_tombstone(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post_card(emu)
    client.chat_postMessage(channel=CHANNEL, text="epoch 1", thread_ts=ts)
    emu.delete_message(CHANNEL, ts)
    assert emu.render(CHANNEL) == (
        "#experiment-progress\nThis message was deleted.\n  > epoch 1"
    )
    replies = client.conversations_replies(channel=CHANNEL_ID, ts=ts)["messages"]
    assert replies[0]["subtype"] == "tombstone" and "blocks" not in replies[0]
