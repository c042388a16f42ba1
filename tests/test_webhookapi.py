"""WebhookApi against the emulator: real HTTP, the real ``WebhookClient``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from slack_sdk.webhook import WebhookClient

from ppe_slacklog.delivery import Outbox
from ppe_slacklog.queueing import Post
from ppe_slacklog.slackapi import FileData, Posted, SlackApi, SlackDeliveryError
from ppe_slacklog.testing import SlackEmulator
from ppe_slacklog.webhookapi import WebhookApi, webhook_label

__all__: list[str] = []


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def url(emu: SlackEmulator) -> str:
    return emu.webhook_url("alerts")


def _secret(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _refused(api: WebhookApi, text: str = "x") -> SlackDeliveryError:
    with pytest.raises(SlackDeliveryError) as excinfo:
        api.post(api.label, text)
    return excinfo.value


def _shown(exc: SlackDeliveryError) -> str:
    """Everything of an error that may end up in front of a user."""
    return " ".join([str(exc), repr(exc), exc.fix, exc.channel, exc.code])


# ------------------------------------------------------------------ posting


def test_post_lands_top_level_and_is_counted(emu: SlackEmulator, url: str) -> None:
    api = WebhookApi.create(url)
    posted = api.post(api.label, "epoch 1: *loss* 0.25")
    assert posted == Posted(channel_id="", ts="")
    assert [m.text for m in emu.top_level("alerts")] == ["epoch 1: *loss* 0.25"]
    assert api.stats.api_calls == 1
    assert (api.stats.retries, api.stats.rate_limited) == (0, 0)


def test_thread_broadcast_and_message_id_are_ignored(
    emu: SlackEmulator, url: str
) -> None:
    api = WebhookApi.create(url)
    api.post(api.label, "parent")
    parent = emu.messages("alerts")[0].ts
    api.post(
        api.label, "reply?", thread_ts=parent, reply_broadcast=True, message_id="m-1"
    )
    assert [m.text for m in emu.top_level("alerts")] == ["parent", "reply?"]
    assert emu.calls[-1].params == {"text": "reply?", "hook": url.split("/")[-2]}


def test_capabilities() -> None:
    assert (WebhookApi.can_thread, WebhookApi.can_upload) == (False, False)
    assert WebhookApi.can_look_back is False
    assert (SlackApi.can_thread, SlackApi.can_upload, SlackApi.can_look_back) == (
        True,
        True,
        True,
    )


def test_what_a_webhook_cannot_do_is_refused_for_good(url: str) -> None:
    api = WebhookApi.create(url)
    files = [FileData("loss.png", b"png")]
    with pytest.raises(SlackDeliveryError) as upload:
        api.upload("alerts", files, comment="plot", thread_ts=None)
    assert upload.value.code == "webhook_cannot_upload"
    assert upload.value.permanent and not upload.value.ambiguous
    assert "bot token" in upload.value.fix
    with pytest.raises(SlackDeliveryError) as posted:
        api.find_posted("alerts", "m-1", thread_ts=None, oldest=0.0)
    with pytest.raises(SlackDeliveryError) as uploaded:
        api.find_upload("alerts", ["F0000001"], thread_ts=None, oldest=0.0)
    for exc in (posted.value, uploaded.value):
        assert exc.code == "webhook_cannot_look_back" and exc.permanent
    assert api.channel_id("#alerts") == "#alerts"
    assert api.stats.api_calls == 0


def test_base_url_is_the_url_for_pacing_only(url: str) -> None:
    api = WebhookApi.create(url)
    assert api.base_url == url
    assert WebhookApi.create(url).base_url == api.base_url


# ------------------------------------------------------------------- errors


def test_revoked_url_is_permanent_with_a_fix(emu: SlackEmulator, url: str) -> None:
    api = WebhookApi.create(url)
    emu.revoke_webhook(url)
    exc = _refused(api)
    assert exc.code == "no_service"
    assert exc.permanent and not exc.ambiguous
    assert "revoked or mistyped" in exc.fix
    assert "Incoming Webhooks of your Slack app" in exc.fix
    assert exc.channel == api.label


def test_mistyped_url_is_permanent(url: str) -> None:
    exc = _refused(WebhookApi.create(url[:-3] + "zzz"))
    assert (exc.code, exc.permanent) == ("no_service", True)


def test_empty_text_is_permanent(url: str) -> None:
    exc = _refused(WebhookApi.create(url), text="")
    assert (exc.code, exc.permanent, exc.fix) == (
        "no_text",
        True,
        "the message was empty",
    )


def test_unknown_path_is_a_permanent_http_404(emu: SlackEmulator) -> None:
    root = emu.base_url.removesuffix("/api/")
    exc = _refused(WebhookApi.create(root + "/elsewhere/hook"))
    assert (exc.code, exc.permanent) == ("http_404", True)
    assert "no Incoming Webhook answers at this URL" in exc.fix


@pytest.mark.parametrize(
    ("status", "code"), [(500, "rollup_error"), (503, "service_unavailable")]
)
def test_server_errors_are_transient_and_ambiguous(
    emu: SlackEmulator, url: str, status: int, code: str
) -> None:
    emu.fail_next(1, status=status, method="webhook")
    exc = _refused(WebhookApi.create(url))
    assert (exc.code, exc.permanent, exc.ambiguous) == (code, False, True)


def test_a_500_after_accept_may_have_posted(emu: SlackEmulator, url: str) -> None:
    emu.fail_after_accept(1, status=500, method="webhook")
    exc = _refused(WebhookApi.create(url), text="maybe")
    assert exc.ambiguous and not exc.permanent
    assert [m.text for m in emu.messages("alerts")] == ["maybe"]


def test_outage_is_transient(emu: SlackEmulator, url: str) -> None:
    api = WebhookApi.create(url)
    emu.set_outage(True)
    exc = _refused(api)
    assert not exc.permanent
    emu.set_outage(False)
    api.post(api.label, "back")
    assert [m.text for m in emu.messages("alerts")] == ["back"]


def test_rate_limit_is_left_to_the_outbox_with_its_retry_after(
    emu: SlackEmulator, url: str
) -> None:
    # slack_sdk's own 429 retry would bypass the channel's pacer: the 429
    # reaches the outbox, which waits Retry-After for the whole channel.
    emu.rate_limit("webhook", per_second=1, burst=1)
    api = WebhookApi.create(url)
    api.post(api.label, "first")
    exc = _refused(api)
    assert (exc.code, exc.permanent, exc.retry_after) == ("rate_limited", False, 1.0)
    assert [c.status for c in emu.calls] == [200, 429]
    assert (api.stats.api_calls, api.stats.rate_limited) == (2, 1)


def test_a_429_left_over_is_transient_and_counted(emu: SlackEmulator, url: str) -> None:
    # Without retry handlers the 429 reaches WebhookApi, as it does once
    # slack_sdk's handler has used up its retries.
    api = WebhookApi(WebhookClient(url, retry_handlers=[]))
    emu.fail_next(1, status=429, method="webhook")
    exc = _refused(api)
    assert (exc.code, exc.permanent, exc.ambiguous) == ("rate_limited", False, False)
    assert api.stats.rate_limited == 1


def test_refused_connection_is_transient_not_ambiguous(
    emu: SlackEmulator, url: str
) -> None:
    api = WebhookApi.create(url)
    emu.stop()
    exc = _refused(api)
    assert (exc.code, exc.permanent, exc.ambiguous) == (
        "connection_error",
        False,
        False,
    )


def test_dropped_connection_is_transient_and_ambiguous(
    emu: SlackEmulator, url: str
) -> None:
    emu.drop_connections(1, method="webhook")
    exc = _refused(WebhookApi.create(url))
    assert (exc.code, exc.permanent, exc.ambiguous) == (
        "connection_error",
        False,
        True,
    )


def test_timeout_is_ambiguous_and_the_post_may_be_there(
    emu: SlackEmulator, url: str
) -> None:
    emu.delay_after_accept(1, 2.0, method="webhook")
    exc = _refused(WebhookApi.create(url, timeout=1.0), text="late")
    assert (exc.code, exc.permanent, exc.ambiguous) == (
        "connection_error",
        False,
        True,
    )
    assert "TimeoutError" in exc.fix
    assert [m.text for m in emu.messages("alerts")] == ["late"]


# ------------------------------------------------------------------ secrecy


def test_label_has_no_secret(url: str) -> None:
    api = WebhookApi.create(url)
    assert api.label == "webhook …/T0000001/" + url.split("/")[-2]
    assert _secret(url) not in api.label
    assert _secret(url) not in repr(api) and _secret(url) not in str(api)
    assert webhook_label("https://example.com/x?token=abcdefgh") == (
        "webhook example.com/…"
    )
    assert webhook_label("https://user:pw123456@example.com/x") == (
        "webhook example.com/…"
    )


def test_secret_is_never_in_errors(emu: SlackEmulator, url: str) -> None:
    secret = _secret(url)
    api = WebhookApi.create(url)
    shown = []
    emu.fail_next(1, status=503, method="webhook")
    shown.append(_shown(_refused(api)))
    emu.drop_connections(1, method="webhook")
    shown.append(_shown(_refused(api)))
    # The URL given as the "channel" is redacted too.
    with pytest.raises(SlackDeliveryError) as excinfo:
        api.upload(url, [], comment=None, thread_ts=None)
    shown.append(_shown(excinfo.value))
    with pytest.raises(SlackDeliveryError) as excinfo:
        api.post(url, "")
    shown.append(_shown(excinfo.value))
    emu.revoke_webhook(url)
    shown.append(_shown(_refused(api)))
    emu.stop()
    shown.append(_shown(_refused(api)))
    assert all(secret not in text and url not in text for text in shown), shown


def test_bad_url_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as excinfo:
        WebhookApi.create("hooks.slack.com/services/T1/B2/s3cr3tValue")
    assert "s3cr3tValue" not in str(excinfo.value)


def test_slack_sdk_logs_nothing_so_no_secret_and_no_line_per_retry(
    emu: SlackEmulator, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # slack_sdk's WebhookClient logs its URL at DEBUG and a line per failed
    # request; the library reports each problem once itself instead.
    logging.getLogger("slack_sdk").handlers.clear()  # as a user's config may
    emu.rate_limit("webhook", per_second=1, burst=1)
    api = WebhookApi.create(url)
    with caplog.at_level(logging.DEBUG):
        api.post(api.label, "a")
        errors = [_refused(api)]  # 429
        emu.drop_connections(1, method="webhook")
        errors.append(_refused(api))
        emu.stop()
        errors.append(_refused(api))
    assert [r for r in caplog.records if r.name.startswith("slack_sdk")] == []
    assert _secret(url) not in caplog.text
    assert all(_secret(url) not in str(e) for e in errors)


# ------------------------------------------------------------- with Outbox


def test_outbox_delivers_through_a_webhook(emu: SlackEmulator, url: str) -> None:
    api = WebhookApi.create(url)
    outbox = Outbox(api, api.label, thread=False)  # type: ignore[arg-type]
    try:
        for text in ("start", "epoch 1", "end"):
            outbox.submit(Post(text))
        assert outbox.flush(timeout=5.0)
    finally:
        outbox.close(timeout=1.0)
    # Posts may share a message when they queue up behind the pacing.
    texts = [m.text for m in emu.top_level("alerts")]
    assert "\n".join(texts) == "start\nepoch 1\nend"
    assert api.stats.sent == 3
