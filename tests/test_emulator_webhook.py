"""Incoming Webhooks of the emulator, driven by the real ``WebhookClient``."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.client import HTTPException
from urllib.parse import urlencode

import pytest
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from ppe_slacklog.testing import SlackEmulator

__all__: list[str] = []

_SHAPE = re.compile(
    r"^http://127\.0\.0\.1:\d+/services/T0000001/B\d{7}/[A-Za-z0-9]{24}$"
)

# Exercises the emulator's methods one by one: a fast Slack (no rate limits,
# files shared at once). Slack's own defaults: test_emulator_slacklike.py.
pytestmark = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    # The bot is a member of "general" only: webhooks do not need it.
    with SlackEmulator(member_of=("general",)) as emulator:
        yield emulator


def _client(url: str, **kwargs: object) -> WebhookClient:
    # No retry handlers: each test sees the emulator's first answer.
    kwargs.setdefault("retry_handlers", [])
    return WebhookClient(url, **kwargs)  # type: ignore[arg-type]


def _raw(url: str, body: bytes, content_type: str) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _secret(url: str) -> str:
    return url.rsplit("/", 1)[1]


# ------------------------------------------------------------------ posting


def test_post_lands_as_top_level_bot_message(emu: SlackEmulator) -> None:
    url = emu.webhook_url("#alerts")
    response = _client(url).send(text="GPU 3 *overheating*")
    assert (response.status_code, response.body) == (200, "ok")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert emu.wait_for(lambda e: len(e.top_level("alerts")) == 1)
    [message] = emu.messages("alerts")
    assert message.text == "GPU 3 *overheating*"
    assert message.thread_ts is None
    assert message.user == "U0000001"
    assert emu.render("alerts") == "#alerts\nGPU 3 *overheating*"
    assert emu.messages("general") == []


def test_webhook_url_has_slacks_shape_and_is_one_per_channel(
    emu: SlackEmulator,
) -> None:
    url = emu.webhook_url("alerts")
    assert _SHAPE.match(url), url
    assert emu.webhook_url("#alerts") == url
    assert emu.webhook_url(emu.channel_id("alerts")) == url
    other = emu.webhook_url("general")
    assert other != url and _SHAPE.match(other)
    _client(other).send(text="to general")
    assert [m.text for m in emu.top_level("general")] == ["to general"]
    assert emu.top_level("alerts") == []


def test_webhook_url_needs_a_channel_and_a_running_emulator(
    emu: SlackEmulator,
) -> None:
    with pytest.raises(KeyError):
        emu.webhook_url("nope")
    with pytest.raises(RuntimeError):
        SlackEmulator().webhook_url("general")


def test_form_field_payload_is_accepted(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    body = urlencode({"payload": json.dumps({"text": "from curl"})}).encode()
    status, text, _ = _raw(url, body, "application/x-www-form-urlencoded")
    assert (status, text) == (200, "ok")
    assert [m.text for m in emu.messages("alerts")] == ["from curl"]


def test_blocks_without_text_are_accepted(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    block = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    assert _client(url).send(blocks=[block]).status_code == 200
    assert [m.text for m in emu.messages("alerts")] == [""]


def test_thread_ts_of_a_known_message_posts_a_reply(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    _client(url).send(text="parent")
    parent = emu.messages("alerts")[0].ts
    _client(url).send_dict({"text": "reply", "thread_ts": parent})
    _client(url).send_dict({"text": "lost", "thread_ts": "1.000001"})
    assert [m.text for m in emu.thread("alerts", parent)] == ["parent", "reply"]
    assert [m.text for m in emu.top_level("alerts")] == ["parent", "lost"]


def test_channel_and_username_overrides_are_ignored(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    _client(url).send_dict({"text": "hi", "channel": "#general", "username": "x"})
    assert [m.text for m in emu.messages("alerts")] == ["hi"]
    assert emu.messages("general") == []


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b"payload=%7Boops", "application/x-www-form-urlencoded"),
        (b"text=hi", "application/x-www-form-urlencoded"),
    ],
)
def test_unreadable_payload_is_invalid_payload(
    emu: SlackEmulator, body: bytes, content_type: str
) -> None:
    status, text, headers = _raw(emu.webhook_url("alerts"), body, content_type)
    assert (status, text) == (400, "invalid_payload")
    assert headers["Content-Type"].startswith("text/plain")
    assert emu.messages() == []
    assert emu.calls[-1].error == "invalid_payload"


def test_empty_text_is_no_text(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    for payload in ({"text": ""}, {"username": "bot"}):
        response = _client(url).send_dict(payload)
        assert (response.status_code, response.body) == (400, "no_text")
    assert emu.messages() == []


def test_unknown_or_mistyped_hook_is_no_service(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    mistyped = url[:-1] + ("A" if url[-1] != "A" else "B")
    other_team = url.replace("/T0000001/", "/T9999999/")
    unknown = url.rsplit("/", 2)[0] + "/B7654321/" + _secret(url)
    for bad in (mistyped, other_team, unknown, url + "/extra"):
        response = _client(bad).send(text="x")
        assert (response.status_code, response.body) == (404, "no_service"), bad
    assert emu.messages() == []


def test_revoked_hook_answers_no_service_and_a_new_one_works(
    emu: SlackEmulator,
) -> None:
    url = emu.webhook_url("alerts")
    assert _client(url).send(text="before").status_code == 200
    emu.revoke_webhook(url)
    response = _client(url).send(text="after")
    assert (response.status_code, response.body) == (404, "no_service")
    with pytest.raises(KeyError):
        emu.revoke_webhook(url)
    with pytest.raises(KeyError):
        emu.revoke_webhook(emu.base_url)
    fresh = emu.webhook_url("alerts")
    assert fresh != url
    assert _client(fresh).send(text="again").status_code == 200
    assert [m.text for m in emu.messages("alerts")] == ["before", "again"]


def test_get_on_a_webhook_url_is_not_found(emu: SlackEmulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(emu.webhook_url("alerts"), timeout=5)
    assert excinfo.value.code == 404


# ------------------------------------------------------------- call log


def test_calls_show_the_hook_id_never_its_secret(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    hook_id = url.rsplit("/", 2)[1]
    _client(url).send(text="logged")
    _client(url + "x").send(text="refused")
    ok, refused = emu.calls
    assert (ok.method, ok.status, ok.error) == ("webhook", 200, None)
    assert ok.params == {"text": "logged", "hook": hook_id}
    assert (refused.status, refused.error) == (404, "no_service")
    assert refused.params["hook"] == hook_id
    assert _secret(url) not in repr(emu.calls)


# ------------------------------------------------------------------ faults


def test_rate_limit_is_per_hook_with_retry_after(emu: SlackEmulator) -> None:
    emu.rate_limit("webhook", per_second=1, burst=2)
    url = emu.webhook_url("alerts")
    other = emu.webhook_url("general")
    answers = [_client(url).send(text=str(i)) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    # Unlike its other errors, a webhook's 429 body is JSON.
    assert json.loads(answers[2].body) == {
        "ok": False,
        "error": "rate_limited",
        "retry_after": int(answers[2].headers["Retry-After"]),
    }
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert _client(other).send(text="other hook").status_code == 200
    assert [m.text for m in emu.messages("alerts")] == ["0", "1"]
    # chat.postMessage keeps its own (absent) limit.
    emu.client().chat_postMessage(channel="general", text="api")


def test_slack_sdk_retries_a_rate_limited_post(emu: SlackEmulator) -> None:
    emu.rate_limit("webhook", per_second=1, burst=1)
    client = _client(
        emu.webhook_url("alerts"), retry_handlers=[RateLimitErrorRetryHandler()]
    )
    assert client.send(text="first").status_code == 200
    assert client.send(text="second").status_code == 200
    assert [c.status for c in emu.calls] == [200, 429, 200]
    assert [m.text for m in emu.messages("alerts")] == ["first", "second"]


def test_fail_next_answers_without_posting(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    emu.fail_next(1, status=500, method="webhook")
    emu.fail_next(1, status=503, method="webhook")
    first, second = (_client(url).send(text="x") for _ in range(2))
    assert (first.status_code, first.body) == (500, "rollup_error")
    assert (second.status_code, second.body) == (503, "service_unavailable")
    assert emu.messages() == []
    assert _client(url).send(text="y").status_code == 200


def test_faults_for_other_methods_leave_webhooks_alone(emu: SlackEmulator) -> None:
    emu.fail_next(1, status=500, method="chat.postMessage")
    emu.drop_connections(1, method="chat.postMessage")
    assert _client(emu.webhook_url("alerts")).send(text="x").status_code == 200


def test_fail_after_accept_posts_but_answers_an_error(emu: SlackEmulator) -> None:
    emu.fail_after_accept(1, status=500, method="webhook")
    response = _client(emu.webhook_url("alerts")).send(text="stored anyway")
    assert (response.status_code, response.body) == (500, "rollup_error")
    assert [m.text for m in emu.messages("alerts")] == ["stored anyway"]


def test_dropped_connection_raises_in_the_client(emu: SlackEmulator) -> None:
    emu.drop_connections(1, method="webhook")
    with pytest.raises((OSError, HTTPException)):
        _client(emu.webhook_url("alerts")).send(text="x")
    assert emu.messages() == []
    assert emu.calls[-1].error == "connection_dropped"


def test_outage_answers_503(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    emu.set_outage(True)
    response = _client(url).send(text="x")
    assert (response.status_code, response.body) == (503, "service_unavailable")
    emu.set_outage(False)
    assert _client(url).send(text="y").status_code == 200
    assert [m.text for m in emu.messages("alerts")] == ["y"]


def test_latency_and_late_answers_apply(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    emu.set_latency(0.2)
    started = time.monotonic()
    assert _client(url).send(text="slow").status_code == 200
    assert time.monotonic() - started >= 0.2
    emu.set_latency(0.0)
    emu.delay_after_accept(1, 2.0, method="webhook")
    with pytest.raises(TimeoutError):
        _client(url, timeout=1).send(text="late")
    assert [m.text for m in emu.messages("alerts")] == ["slow", "late"]


def test_reset_keeps_webhooks(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    _client(url).send(text="x")
    emu.reset()
    assert emu.messages() == [] and emu.calls == []
    assert emu.webhook_url("alerts") == url
    assert _client(url).send(text="y").status_code == 200
