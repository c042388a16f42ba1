"""Tests of the Slack emulator, driven through the real ``slack_sdk.WebClient``."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.metadata import Metadata

from ppe_slacklog.testing import ApiCall, EmulatedFile, EmulatedMessage, SlackEmulator

__all__: list[str] = []


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    # Exercises the methods one by one: a fast Slack (no rate limits, files
    # shared at once). Slack's own defaults: test_emulator_slacklike.py.
    with SlackEmulator(
        channels=("general", "experiment-progress", "alerts"),
        member_of=("general", "experiment-progress"),
        rate_limits=False,
        share_delay=0,
    ) as emulator:
        yield emulator


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> Any:
    return excinfo.value.response["error"]


def _raw_post(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        payload: dict[str, Any] = json.loads(response.read())
        return payload


# --------------------------------------------------------------- lifecycle


def test_base_url_client_and_idempotent_start_stop() -> None:
    emulator = SlackEmulator()
    assert not emulator.running
    emulator.start()
    emulator.start()
    try:
        assert emulator.base_url.startswith("http://127.0.0.1:")
        assert emulator.base_url.endswith("/api/")
        client = emulator.client()
        assert isinstance(client, WebClient)
        assert client.base_url == emulator.base_url
        assert client.token == emulator.token == "xoxb-emulator-token"
    finally:
        emulator.stop()
        emulator.stop()
    assert not emulator.running
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


def test_channel_ids_and_add_channel() -> None:
    emulator = SlackEmulator()
    assert emulator.channel_id("general") == "C0000001"
    assert emulator.channel_id("#experiment-progress") == "C0000002"
    assert emulator.channel_id("C0000003") == "C0000003"
    new_id = emulator.add_channel("new-one")
    assert new_id == "C0000004" == emulator.channel_id("#new-one")
    with pytest.raises(KeyError):
        emulator.channel_id("missing")
    with pytest.raises(ValueError):
        emulator.add_channel("general")
    with pytest.raises(ValueError):
        SlackEmulator(member_of=("nope",))


# ------------------------------------------------------------------ auth


def test_auth_test_shape(emu: SlackEmulator) -> None:
    response = emu.client().auth_test()
    assert response.status_code == 200
    for key in ("ok", "url", "team", "user", "team_id", "user_id", "bot_id"):
        assert key in response.data
    assert response["ok"] is True
    assert response["user_id"].startswith("U")
    assert response["bot_id"].startswith("B")


def test_invalid_auth_and_not_authed(emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as wrong:
        emu.client(token="xoxb-wrong").chat_postMessage(channel="general", text="x")
    assert _error(wrong) == "invalid_auth"
    assert wrong.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=emu.base_url).chat_postMessage(channel="general", text="x")
    assert _error(missing) == "not_authed"
    assert emu.messages() == []


def test_missing_scope_reports_needed_and_provided() -> None:
    with SlackEmulator(scopes=("files:write",)) as emulator:
        with pytest.raises(SlackApiError) as excinfo:
            emulator.client().chat_postMessage(channel="general", text="x")
        response = excinfo.value.response
        assert response["error"] == "missing_scope"
        assert response["needed"] == "chat:write"
        assert response["provided"] == "files:write"


def test_form_token_is_accepted_and_never_logged(emu: SlackEmulator) -> None:
    body = urlencode(
        {"token": emu.token, "channel": "general", "text": "form"}
    ).encode()
    payload = _raw_post(
        emu.base_url + "chat.postMessage", body, "application/x-www-form-urlencoded"
    )
    assert payload["ok"] is True
    emu.client().auth_test()
    assert [m.text for m in emu.messages("general")] == ["form"]
    for call in emu.calls:
        assert "token" not in call.params
        assert emu.token not in repr(call)


# -------------------------------------------------------------- messages


def test_post_message_by_name_hash_and_id(emu: SlackEmulator) -> None:
    client = emu.client()
    responses = [
        client.chat_postMessage(channel=channel, text=f"hello {i}")
        for i, channel in enumerate(("general", "#general", "C0000001"))
    ]
    for response in responses:
        assert response["ok"] is True
        assert response["channel"] == "C0000001"
        message = response["message"]
        assert message["ts"] == response["ts"]
        assert message["type"] == "message"
        assert message["bot_id"]
    stamps = [r["ts"] for r in responses]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [float(t) for t in stamps] == sorted({float(t) for t in stamps})
    stored = emu.messages("general")
    assert [m.text for m in stored] == ["hello 0", "hello 1", "hello 2"]
    assert all(isinstance(m, EmulatedMessage) for m in stored)
    assert stored[0].channel == "C0000001"
    assert stored[0].user == client.auth_test()["user_id"]


def test_ts_strictly_increasing_under_concurrency(emu: SlackEmulator) -> None:
    client = emu.client()

    def post(n: int) -> None:
        for i in range(10):
            client.chat_postMessage(channel="general", text=f"{n}-{i}")

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps = [m.ts for m in emu.messages("general")]
    assert len(stamps) == 40
    as_micro = [int(t.replace(".", "")) for t in stamps]
    assert as_micro == sorted(as_micro)
    assert len(set(as_micro)) == 40


def test_threads_and_reply_broadcast(emu: SlackEmulator) -> None:
    client = emu.client()
    parent = client.chat_postMessage(channel="experiment-progress", text="Run 1")["ts"]
    other = client.chat_postMessage(channel="experiment-progress", text="Run 2")["ts"]
    reply = client.chat_postMessage(
        channel="experiment-progress", text="epoch 1", thread_ts=parent
    )
    assert reply["message"]["thread_ts"] == parent
    broadcast = client.chat_postMessage(
        channel="experiment-progress",
        text="finished",
        thread_ts=parent,
        reply_broadcast=True,
    )
    assert broadcast["message"]["subtype"] == "thread_broadcast"
    # Replying to a reply lands in the parent's thread.
    client.chat_postMessage(
        channel="experiment-progress", text="nested", thread_ts=reply["ts"]
    )
    thread = emu.thread("experiment-progress", parent)
    assert [m.text for m in thread] == ["Run 1", "epoch 1", "finished", "nested"]
    assert [m.reply_broadcast for m in thread] == [False, False, True, False]
    assert all(m.thread_ts == parent for m in thread[1:])
    assert [m.ts for m in emu.top_level("experiment-progress")] == [parent, other]
    assert emu.thread("experiment-progress", other)[0].text == "Run 2"
    assert emu.thread("experiment-progress", "1.000000") == []
    assert len(emu.messages()) == 5


def test_channel_errors(emu: SlackEmulator) -> None:
    client = emu.client()
    with pytest.raises(SlackApiError) as not_found:
        client.chat_postMessage(channel="#nope", text="x")
    assert _error(not_found) == "channel_not_found"
    with pytest.raises(SlackApiError) as not_member:
        client.chat_postMessage(channel="alerts", text="x")
    assert _error(not_member) == "not_in_channel"
    private = emu.add_channel("secret", member=False, private=True)
    with pytest.raises(SlackApiError) as hidden:
        client.chat_postMessage(channel=private, text="x")
    assert _error(hidden) == "channel_not_found"
    assert emu.messages() == []


def test_text_errors(emu: SlackEmulator) -> None:
    client = emu.client()
    with pytest.raises(SlackApiError) as no_text, pytest.warns(UserWarning):
        client.chat_postMessage(channel="general", text="")
    assert _error(no_text) == "no_text"
    # Slack truncates at 40,000 characters and says so only in a warning.
    too_long = client.chat_postMessage(channel="general", text="x" * 40_001 + "END")
    assert too_long["warning"] == "message_truncated"
    assert too_long["response_metadata"]["warnings"] == ["message_truncated"]
    assert too_long["message"]["text"] == "x" * 40_000
    assert emu.messages("general")[-1].text == "x" * 40_000
    assert "warning" not in client.chat_postMessage(channel="general", text="ok")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    with pytest.warns(UserWarning, match="text"):
        response = client.chat_postMessage(channel="general", blocks=blocks)
    assert response["message"]["blocks"] == blocks
    assert len(emu.messages("general")) == 3


def test_reply_to_an_unknown_thread_is_accepted_and_seen_nowhere(
    emu: SlackEmulator,
) -> None:
    client = emu.client()
    elsewhere = client.chat_postMessage(channel="general", text="parent")["ts"]
    wrong_channel = client.chat_postMessage(
        channel="experiment-progress", text="reply", thread_ts=elsewhere
    )
    unknown = client.chat_postMessage(channel="general", text="r", thread_ts="1.000001")
    assert wrong_channel["ok"] and unknown["ok"]
    assert [m.text for m in emu.messages()] == ["parent"]
    assert [m.text for m in emu.orphans()] == ["reply", "r"]
    history = client.conversations_history(channel=emu.channel_id("general"))
    assert [m["text"] for m in history["messages"]] == ["parent"]
    replies = client.conversations_replies(channel="C0000001", ts=elsewhere)
    assert [m["text"] for m in replies["messages"]] == ["parent"]


def test_chat_write_public_allows_posting_without_membership() -> None:
    scopes = ("chat:write", "chat:write.public")
    with SlackEmulator(member_of=(), scopes=scopes) as emulator:
        emulator.client().chat_postMessage(channel="alerts", text="public")
        assert emulator.messages("alerts")[0].text == "public"


def test_form_encoded_and_json_bodies(emu: SlackEmulator) -> None:
    url = emu.base_url + "chat.postMessage"
    headers = {"Authorization": f"Bearer {emu.token}"}
    form = urlencode({"channel": "general", "text": "as form"}).encode()
    form_request = urllib.request.Request(
        url,
        data=form,
        method="POST",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(form_request, timeout=5) as response:
        assert json.loads(response.read())["ok"] is True
    body = json.dumps({"channel": "#general", "text": "as json"}).encode()
    json_request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    with urllib.request.urlopen(json_request, timeout=5) as response:
        assert json.loads(response.read())["ok"] is True
    assert [m.text for m in emu.messages("general")] == ["as form", "as json"]


def test_unknown_method(emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().api_call("chat.nonexistentMethod")
    assert _error(excinfo) == "unknown_method"
    assert excinfo.value.response.status_code == 404


# ------------------------------------------------------------------ files


def test_files_upload_v2_into_thread_with_comment(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    client = emu.client()
    parent = client.chat_postMessage(channel="experiment-progress", text="Run 7")["ts"]
    plot = tmp_path / "loss.png"
    plot.write_bytes(b"\x89PNG\r\n fake image")
    response = client.files_upload_v2(
        channel=emu.channel_id("experiment-progress"),
        file=str(plot),
        filename="loss.png",
        title="Loss curve",
        initial_comment="epoch 3 plot",
        thread_ts=parent,
    )
    assert response["ok"] is True
    info = response["files"][0]
    assert {"id", "title", "name", "permalink"} <= info.keys()
    assert info["title"] == "Loss curve"
    assert response["file"]["id"] == info["id"]

    [stored] = emu.files
    assert isinstance(stored, EmulatedFile)
    assert stored.id == info["id"]
    assert stored.name == "loss.png"
    assert stored.content == plot.read_bytes()
    assert stored.channel == emu.channel_id("experiment-progress")
    assert stored.thread_ts == parent
    assert stored.initial_comment == "epoch 3 plot"

    thread = emu.thread("experiment-progress", parent)
    assert len(thread) == 2
    share = thread[1]
    assert share.text == "epoch 3 plot"
    assert share.files == (stored,)
    assert emu.top_level("experiment-progress")[0].ts == parent

    methods = [c.method for c in emu.calls]
    assert methods[-3:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    upload_call = emu.calls[-2]
    assert upload_call.params == {"file_id": stored.id, "size": len(stored.content)}
    assert "files.upload" not in methods


def test_files_upload_v2_bytes_without_channel_is_private(emu: SlackEmulator) -> None:
    response = emu.client().files_upload_v2(content=b"a,b\n1,2\n", filename="m.csv")
    [stored] = emu.files
    assert stored.channel is None
    assert stored.title == "m.csv"
    assert stored.content == b"a,b\n1,2\n"
    assert response["files"][0]["id"] == stored.id
    assert emu.messages() == []


def test_files_info_needs_files_read_scope(emu: SlackEmulator) -> None:
    client = emu.client()
    file_id = client.files_upload_v2(content=b"x", filename="x.txt")["file"]["id"]
    with pytest.raises(SlackApiError) as excinfo:
        client.files_info(file=file_id)
    assert _error(excinfo) == "missing_scope"
    scopes = (*emu.scopes, "files:read")
    with SlackEmulator(scopes=scopes) as emulator:
        reader = emulator.client()
        file_id = reader.files_upload_v2(content=b"x", filename="x.txt")["file"]["id"]
        assert reader.files_info(file=file_id)["file"]["name"] == "x.txt"
        with pytest.raises(SlackApiError) as missing:
            reader.files_info(file="F9999999")
        assert _error(missing) == "file_not_found"


def test_complete_upload_errors(emu: SlackEmulator) -> None:
    client = emu.client()
    with pytest.raises(SlackApiError) as unknown:
        client.files_completeUploadExternal(files=[{"id": "F9999999", "title": "x"}])
    assert _error(unknown) == "file_not_found"
    pending = client.files_getUploadURLExternal(filename="a.txt", length=3)
    assert pending["upload_url"].startswith("http://127.0.0.1:")
    with pytest.raises(SlackApiError) as not_uploaded:
        client.files_completeUploadExternal(files=[{"id": pending["file_id"]}])
    assert _error(not_uploaded) == "file_not_found"
    urllib.request.urlopen(
        urllib.request.Request(pending["upload_url"], data=b"abc", method="POST"),
        timeout=5,
    ).close()
    files = [{"id": pending["file_id"], "title": "A"}]
    with pytest.raises(SlackApiError) as by_name:
        client.files_completeUploadExternal(files=files, channel_id="general")
    assert _error(by_name) == "channel_not_found"
    with pytest.raises(SlackApiError) as not_member:
        client.files_completeUploadExternal(
            files=files, channel_id=emu.channel_id("alerts")
        )
    assert _error(not_member) == "not_in_channel"
    assert emu.files == []
    done = client.files_completeUploadExternal(
        files=files, channel_id=emu.channel_id("general")
    )
    assert done["files"][0]["title"] == "A"
    assert emu.messages("general")[0].files[0].content == b"abc"


def test_raw_upload_answer_like_slack(emu: SlackEmulator) -> None:
    client = emu.client()
    pending = client.files_getUploadURLExternal(filename="b.bin", length=4)
    request = urllib.request.Request(
        pending["upload_url"], data=b"\x00\x01\x02\x03", method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"OK - 4"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(
            urllib.request.Request(
                pending["upload_url"].rsplit("/", 1)[0] + "/F9999999",
                data=b"x",
                method="POST",
            ),
            timeout=5,
        )
    assert missing.value.code == 404


def test_files_upload_is_retired(emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as excinfo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emu.client().files_upload(
            channels="C0000001", content="hello", filename="h.txt"
        )
    assert _error(excinfo) == "method_deprecated"
    with pytest.raises(SlackApiError) as multipart, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emu.client().files_upload(channels="C0000001", file=b"abc", filename="b.bin")
    assert _error(multipart) == "method_deprecated"
    assert emu.calls[-1].params["file"] == "<3 bytes>"
    assert emu.files == []
    assert [c.method for c in emu.calls] == ["files.upload", "files.upload"]


# ----------------------------------------------------------- conversations


def test_conversations_list_pagination(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.add_channel("four")
    first = client.conversations_list(limit=3)
    assert [c["name"] for c in first["channels"]] == [
        "general",
        "experiment-progress",
        "alerts",
    ]
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    second = client.conversations_list(limit=3, cursor=cursor)
    assert [c["name"] for c in second["channels"]] == ["four"]
    assert second["response_metadata"]["next_cursor"] == ""
    names = [
        channel["name"]
        for page in client.conversations_list(limit=1)
        for channel in page["channels"]
    ]
    assert names == ["general", "experiment-progress", "alerts", "four"]
    members = {c["name"]: c["is_member"] for c in first["channels"]}
    assert members == {"general": True, "experiment-progress": True, "alerts": False}
    with pytest.raises(SlackApiError) as bad_cursor:
        client.conversations_list(cursor="not-a-cursor")
    assert _error(bad_cursor) == "invalid_cursor"


def test_conversations_list_private_needs_groups_read(emu: SlackEmulator) -> None:
    emu.add_channel("mine", private=True)
    emu.add_channel("theirs", private=True, member=False)
    with pytest.raises(SlackApiError) as excinfo:
        emu.client().conversations_list(types="private_channel")
    assert excinfo.value.response["needed"] == "groups:read"
    scopes = (*emu.scopes, "groups:read")
    with SlackEmulator(scopes=scopes) as emulator:
        emulator.add_channel("mine", private=True)
        emulator.add_channel("theirs", private=True, member=False)
        listed = emulator.client().conversations_list(types="private_channel")
        assert [c["name"] for c in listed["channels"]] == ["mine"]
        assert listed["channels"][0]["is_private"] is True


def test_conversations_info_and_join(emu: SlackEmulator) -> None:
    client = emu.client()
    alerts = emu.channel_id("alerts")
    info = client.conversations_info(channel=alerts)["channel"]
    assert info["id"] == alerts
    assert info["name"] == "alerts"
    assert info["is_member"] is False
    assert info["is_private"] is False
    with pytest.raises(SlackApiError) as by_name:
        client.conversations_info(channel="alerts")
    assert _error(by_name) == "channel_not_found"

    joined = client.conversations_join(channel=alerts)
    assert joined["channel"]["is_member"] is True
    assert client.conversations_info(channel=alerts)["channel"]["is_member"] is True
    again = client.conversations_join(channel=alerts)
    assert again["warning"] == "already_in_channel"
    client.chat_postMessage(channel="alerts", text="now a member")
    assert emu.messages("alerts")[0].text == "now a member"

    private = emu.add_channel("private-one", private=True)
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_join(channel=private)
    assert _error(excinfo) == "method_not_supported_for_channel_type"


def test_conversations_join_needs_scope() -> None:
    with SlackEmulator(member_of=(), scopes=("channels:read",)) as emulator:
        with pytest.raises(SlackApiError) as excinfo:
            emulator.client().conversations_join(channel="C0000001")
        assert excinfo.value.response["needed"] == "channels:join"


# ------------------------------------------------------------------ faults


def test_latency_is_added_to_every_call() -> None:
    with SlackEmulator(latency=0.15) as emulator:
        client = emulator.client()
        start = time.perf_counter()
        client.auth_test()
        assert time.perf_counter() - start >= 0.15
        emulator.set_latency(0.0)
        start = time.perf_counter()
        client.auth_test()
        fast = time.perf_counter() - start
        emulator.set_latency(1.0)
        start = time.perf_counter()
        client.auth_test()
        assert time.perf_counter() - start >= 1.0 > fast
        emulator.reset()
        start = time.perf_counter()
        client.auth_test()
        # Back to the constructor's 0.15 s, not 1.0 s (wide: a loaded machine).
        assert 0.15 <= time.perf_counter() - start < 1.0


def test_rate_limit_429_with_retry_after(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.rate_limit("chat.postMessage", per_second=0.5, burst=2)
    client.chat_postMessage(channel="general", text="1")
    client.chat_postMessage(channel="general", text="2")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="general", text="3")
    response = excinfo.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    # The bucket is per (method, channel): other channels are unaffected.
    client.chat_postMessage(channel="experiment-progress", text="other")
    assert [m.text for m in emu.messages("general")] == ["1", "2"]
    assert sum(1 for c in emu.calls if c.status == 429) == 1
    emu.rate_limit("chat.postMessage", None)
    client.chat_postMessage(channel="general", text="4")
    assert len(emu.messages("general")) == 3


def test_rate_limit_refills(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.rate_limit("chat.postMessage", per_second=20.0, burst=1)
    client.chat_postMessage(channel="general", text="a")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="general", text="b")
    assert excinfo.value.response.headers["Retry-After"] == "1"
    time.sleep(0.1)
    client.chat_postMessage(channel="general", text="c")
    assert [m.text for m in emu.messages("general")] == ["a", "c"]


def test_fail_next_has_no_effect(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.fail_next(2, status=500, method="chat.postMessage")
    client.auth_test()  # other methods are not affected
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel="general", text="lost")
        assert excinfo.value.response.status_code == 500
    assert emu.messages() == []
    client.chat_postMessage(channel="general", text="kept")
    assert [m.text for m in emu.messages()] == ["kept"]
    assert [c.status for c in emu.calls] == [200, 500, 500, 200]
    emu.fail_next(1, status=503)
    with pytest.raises(SlackApiError) as any_method:
        client.auth_test()
    assert any_method.value.response.status_code == 503


def test_fail_after_accept_stores_message(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.fail_after_accept(1)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="general", text="maybe lost?")
    assert excinfo.value.response.status_code == 500
    client.chat_postMessage(channel="general", text="maybe lost?")
    assert [m.text for m in emu.messages("general")] == ["maybe lost?"] * 2


def test_drop_connections_raises_connection_error(emu: SlackEmulator) -> None:
    client = emu.client(retry_handlers=[])
    emu.drop_connections(1, method="chat.postMessage")
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        client.chat_postMessage(channel="general", text="dropped")
    assert emu.messages() == []
    assert emu.calls[-1].status == 0
    assert emu.calls[-1].error == "connection_dropped"
    client.chat_postMessage(channel="general", text="after")
    assert [m.text for m in emu.messages()] == ["after"]


def test_default_client_retries_one_dropped_connection(emu: SlackEmulator) -> None:
    client = emu.client()  # default ConnectionErrorRetryHandler retries once
    emu.drop_connections(1)
    client.chat_postMessage(channel="general", text="retried")
    assert [m.text for m in emu.messages()] == ["retried"]
    assert [c.status for c in emu.calls] == [0, 200]


def test_outage(emu: SlackEmulator) -> None:
    client = emu.client()
    emu.set_outage(True)
    with pytest.raises(SlackApiError) as auth:
        client.auth_test()
    with pytest.raises(SlackApiError) as post:
        client.chat_postMessage(channel="general", text="x")
    for excinfo in (auth, post):
        # Slack's edge answers a 5xx with an HTML page, not JSON.
        assert excinfo.value.response.status_code == 503
        assert "non-JSON" in excinfo.value.response["error"]
        assert "<html>" in excinfo.value.response["error"]
    assert emu.messages() == []
    emu.set_outage(False)
    client.chat_postMessage(channel="general", text="back")
    assert len(emu.messages()) == 1


def test_reset_clears_state_and_faults(emu: SlackEmulator) -> None:
    client = emu.client()
    client.chat_postMessage(channel="general", text="x")
    client.files_upload_v2(content=b"x", filename="x.txt")
    emu.set_outage(True)
    emu.fail_next(5)
    emu.rate_limit("auth.test", per_second=0.1, burst=1)
    emu.reset()
    assert emu.messages() == [] and emu.files == [] and emu.calls == []
    for _ in range(3):
        client.auth_test()
    assert emu.channel_id("alerts") == "C0000003"
    assert all(isinstance(c, ApiCall) and c.ok for c in emu.calls)


# ---------------------------------------------------------- read-back misc


def test_wait_for_polls_until_true(emu: SlackEmulator) -> None:
    client = emu.client()
    timer = threading.Timer(
        0.1, lambda: client.chat_postMessage(channel="general", text="later")
    )
    timer.start()
    try:
        assert emu.wait_for(lambda e: len(e.messages()) == 1, timeout=5.0)
    finally:
        timer.join()
    assert not emu.wait_for(lambda e: len(e.messages()) == 2, timeout=0.1)


def test_render_shows_threads_and_files(emu: SlackEmulator) -> None:
    client = emu.client()
    run = client.chat_postMessage(channel="experiment-progress", text="Run started")
    client.chat_postMessage(
        channel="experiment-progress", text="epoch 1\nloss 0.5", thread_ts=run["ts"]
    )
    client.files_upload_v2(
        channel=emu.channel_id("experiment-progress"),
        content=b"png",
        filename="loss.png",
        initial_comment="plot",
        thread_ts=run["ts"],
    )
    client.chat_postMessage(
        channel="experiment-progress",
        text="done",
        thread_ts=run["ts"],
        reply_broadcast=True,
    )
    client.chat_postMessage(channel="experiment-progress", text="Run 2")
    assert emu.render("#experiment-progress") == "\n".join(
        [
            "#experiment-progress",
            "Run started",
            "  > epoch 1",
            "    loss 0.5",
            "  > plot [file: loss.png]",
            "  > (also sent to the channel) done",
            "Run 2",
        ]
    )
    assert emu.render("alerts") == "#alerts\n(no messages)"


def test_read_back_returns_copies(emu: SlackEmulator) -> None:
    emu.client().chat_postMessage(channel="general", text="x")
    emu.messages().clear()
    emu.calls[0].params.clear()
    emu.calls.clear()
    emu.files.clear()
    assert len(emu.messages()) == 1
    assert len(emu.calls) == 1
    assert emu.calls[0].params["text"] == "x"


# ------------------------------------------------------- history and replies


def _post(client: WebClient, text: str, **kwargs: Any) -> str:
    ts: str = client.chat_postMessage(channel="general", text=text, **kwargs)["ts"]
    return ts


def test_metadata_round_trip_through_history(emu: SlackEmulator) -> None:
    client = emu.client()
    as_dict = {"event_type": "run_started", "event_payload": {"run": "r1", "n": 3}}
    response = client.chat_postMessage(channel="general", text="dict", metadata=as_dict)
    assert response["message"]["metadata"] == as_dict
    # A JSON string is not in slack_sdk's annotation but is sent as is.
    as_string: Any = json.dumps({"event_type": "epoch", "event_payload": {"epoch": 1}})
    client.chat_postMessage(channel="general", text="string", metadata=as_string)
    client.chat_postMessage(
        channel="general",
        text="model",
        metadata=Metadata(event_type="done", event_payload={"ok": True}),
    )
    _post(client, "plain")
    # slack_sdk sends a dict inside its JSON body; a JSON string stays a string.
    sent = [c.params["metadata"] for c in emu.calls if "metadata" in c.params]
    assert isinstance(sent[0], dict) and isinstance(sent[1], str)
    expected = [
        None,
        {"event_type": "done", "event_payload": {"ok": True}},
        {"event_type": "epoch", "event_payload": {"epoch": 1}},
        as_dict,
    ]
    assert [m.metadata for m in reversed(emu.messages())] == expected
    channel = emu.channel_id("general")
    hidden = client.conversations_history(channel=channel)["messages"]
    assert [m["text"] for m in hidden] == ["plain", "model", "string", "dict"]
    assert all("metadata" not in m for m in hidden)
    shown = client.conversations_history(channel=channel, include_all_metadata=True)
    assert [m.get("metadata") for m in shown["messages"]] == expected
    first = shown["messages"][-1]
    replies = client.conversations_replies(
        channel=channel, ts=first["ts"], include_all_metadata=True
    )
    assert replies["messages"][0]["metadata"] == as_dict


def test_invalid_metadata_is_rejected(emu: SlackEmulator) -> None:
    client = emu.client()
    with pytest.raises(SlackApiError) as not_json:
        broken: Any = "{nope"
        client.chat_postMessage(channel="general", text="x", metadata=broken)
    assert _error(not_json) == "invalid_metadata_format"
    with pytest.raises(SlackApiError) as no_payload:
        client.chat_postMessage(
            channel="general", text="x", metadata={"event_type": "run"}
        )
    assert _error(no_payload) == "invalid_metadata_schema"
    assert emu.messages() == []


def test_history_shape_threads_and_broadcasts(emu: SlackEmulator) -> None:
    client = emu.client()
    parent = _post(client, "Run 1")
    _post(client, "epoch 1", thread_ts=parent)
    broadcast = _post(client, "finished", thread_ts=parent, reply_broadcast=True)
    lonely = _post(client, "Run 2")
    response = client.conversations_history(channel=emu.channel_id("general"))
    assert response["ok"] is True
    assert response["has_more"] is False
    assert response["response_metadata"]["next_cursor"] == ""
    messages = response["messages"]
    # Newest first; replies only appear when also sent to the channel.
    assert [m["ts"] for m in messages] == [lonely, broadcast, parent]
    assert all(m["type"] == "message" and m["user"] == "U0000001" for m in messages)
    assert "thread_ts" not in messages[0] and "reply_count" not in messages[0]
    assert messages[1]["subtype"] == "thread_broadcast"
    assert messages[1]["thread_ts"] == parent
    assert messages[2]["thread_ts"] == parent
    assert messages[2]["reply_count"] == 2
    assert messages[2]["latest_reply"] == broadcast


def test_history_paging_with_cursor_and_oldest(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id("general")
    stamps = [_post(client, f"m{i}") for i in range(5)]
    first = client.conversations_history(channel=channel, limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = client.conversations_history(channel=channel, limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"]
    # slack_sdk's own pagination follows next_cursor until it is empty.
    # (It reuses one response object, so read each page while iterating.)
    pages = [
        ([m["text"] for m in page["messages"]], page["has_more"])
        for page in client.conversations_history(channel=channel, limit=2)
    ]
    assert pages == [(["m4", "m3"], True), (["m2", "m1"], True), (["m0"], False)]
    newer = client.conversations_history(channel=channel, oldest=stamps[2])
    assert [m["text"] for m in newer["messages"]] == ["m4", "m3"]
    inclusive = client.conversations_history(
        channel=channel, oldest=stamps[2], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2"]
    window = client.conversations_history(
        channel=channel, oldest=stamps[0], latest=stamps[3]
    )
    assert [m["text"] for m in window["messages"]] == ["m2", "m1"]
    paged = client.conversations_history(channel=channel, oldest=stamps[0], limit=3)
    assert [m["text"] for m in paged["messages"]] == ["m4", "m3", "m2"]
    rest = client.conversations_history(
        channel=channel,
        oldest=stamps[0],
        limit=3,
        cursor=paged["response_metadata"]["next_cursor"],
    )
    assert [m["text"] for m in rest["messages"]] == ["m1"]
    with pytest.raises(SlackApiError) as bad_cursor:
        client.conversations_history(channel=channel, cursor="not-a-cursor")
    assert _error(bad_cursor) == "invalid_cursor"
    with pytest.raises(SlackApiError) as bad_oldest:
        client.conversations_history(channel=channel, oldest="yesterday")
    assert _error(bad_oldest) == "invalid_ts_oldest"


def test_replies_parent_first_then_oldest_first(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id("general")
    parent = _post(client, "Run 1")
    _post(client, "other")
    replies = [_post(client, f"epoch {i}", thread_ts=parent) for i in range(3)]
    response = client.conversations_replies(channel=channel, ts=parent)
    messages = response["messages"]
    assert [m["text"] for m in messages] == ["Run 1", "epoch 0", "epoch 1", "epoch 2"]
    assert [m["ts"] for m in messages] == [parent, *replies]
    assert messages[0]["reply_count"] == 3
    assert all(m["thread_ts"] == parent for m in messages)
    assert all(m["parent_user_id"] == "U0000001" for m in messages[1:])
    assert response["has_more"] is False
    first = client.conversations_replies(channel=channel, ts=parent, limit=2)
    assert [m["text"] for m in first["messages"]] == ["Run 1", "epoch 0"]
    assert first["has_more"] is True
    rest = client.conversations_replies(
        channel=channel, ts=parent, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["epoch 1", "epoch 2"]
    unthreaded = client.conversations_replies(channel=channel, ts=_post(client, "x"))
    assert [m["text"] for m in unthreaded["messages"]] == ["x"]


def test_history_and_replies_need_channels_history_scope() -> None:
    scopes = ("chat:write", "channels:read", "channels:join")
    with SlackEmulator(scopes=scopes) as emulator:
        client = emulator.client()
        ts = _post(client, "x")
        channel = emulator.channel_id("general")
        with pytest.raises(SlackApiError) as history:
            client.conversations_history(channel=channel)
        with pytest.raises(SlackApiError) as replies:
            client.conversations_replies(channel=channel, ts=ts)
        for excinfo in (history, replies):
            assert _error(excinfo) == "missing_scope"
            assert excinfo.value.response["needed"] == "channels:history"
    assert "channels:history" in SlackEmulator().scopes
    assert "groups:read" not in SlackEmulator().scopes


def test_private_channel_history_needs_groups_history() -> None:
    with SlackEmulator() as emulator:
        private = emulator.add_channel("secret", private=True)
        with pytest.raises(SlackApiError) as excinfo:
            emulator.client().conversations_history(channel=private)
        assert _error(excinfo) == "missing_scope"
        assert excinfo.value.response["needed"] == "groups:history"


def test_history_channel_errors(emu: SlackEmulator) -> None:
    client = emu.client()
    with pytest.raises(SlackApiError) as not_member:
        client.conversations_history(channel=emu.channel_id("alerts"))
    assert _error(not_member) == "not_in_channel"
    with pytest.raises(SlackApiError) as replies_not_member:
        client.conversations_replies(channel=emu.channel_id("alerts"), ts="1.000001")
    assert _error(replies_not_member) == "not_in_channel"
    with pytest.raises(SlackApiError) as by_name:
        client.conversations_history(channel="general")
    assert _error(by_name) == "channel_not_found"


def test_replies_thread_not_found(emu: SlackEmulator) -> None:
    client = emu.client()
    ts = _post(client, "parent")
    with pytest.raises(SlackApiError) as unknown:
        client.conversations_replies(channel=emu.channel_id("general"), ts="1.000001")
    assert _error(unknown) == "thread_not_found"
    with pytest.raises(SlackApiError) as wrong_channel:
        client.conversations_replies(
            channel=emu.channel_id("experiment-progress"), ts=ts
        )
    assert _error(wrong_channel) == "thread_not_found"


def test_delay_after_accept_times_out_but_stores(emu: SlackEmulator) -> None:
    client = emu.client(timeout=0.2)
    emu.delay_after_accept(1, 5.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel="general", text="accepted?")
    assert time.monotonic() - started < 4.0  # the client's 0.2 s, not the 5 s
    # Stored and logged as accepted although the client saw a timeout; the
    # default retry handlers do not retry a read timeout.
    assert [m.text for m in emu.messages()] == ["accepted?"]
    assert [(c.method, c.ok) for c in emu.calls] == [("chat.postMessage", True)]
    client.chat_postMessage(channel="general", text="next is on time")
    assert len(emu.messages()) == 2
    emu.delay_after_accept(3, 5.0, method="auth.test")
    emu.reset()
    client.auth_test()
    with pytest.raises(ValueError):
        emu.delay_after_accept(1, -1.0)


# ---------------------------------------------------------------- fixtures


def test_plugin_fixtures(
    slack_emulator: SlackEmulator, slack_client: WebClient
) -> None:
    assert slack_emulator.running
    assert slack_client.base_url == slack_emulator.base_url
    slack_client.chat_postMessage(channel="#alerts", text="from fixture")
    assert slack_emulator.messages("alerts")[0].text == "from fixture"
