"""The webhook part of ``ppe-slacklog check``: does the Incoming Webhook answer?

A webhook has no read method, so without ``--post`` it is probed with an
empty message: a live hook refuses it with ``400 no_text`` (nothing is
posted), a revoked one answers ``404 no_service`` (or 403/410). The URL
holds a secret and is only ever shown as ``webhook …/T…/B…``.
"""

from __future__ import annotations

from typing import Final

from ._cli_check import Checklist
from .slackapi import SlackDeliveryError

__all__ = ["check_webhook"]

# What a live webhook answers to an empty message (Slack's "Handling errors").
_ALIVE_ANSWERS: Final = frozenset({"no_text", "invalid_payload"})
_TEST_TEXT: Final = (
    "✅ ppe-slacklog check: this webhook works; training runs post here."
)


def check_webhook(checks: Checklist, url: str, *, post: bool) -> None:
    """Checks the webhook at ``url``; posts a test message with ``post``."""
    from slack_sdk.webhook import WebhookClient

    from .slackapi import silent_logger
    from .webhookapi import WebhookApi, webhook_label

    try:
        label = webhook_label(url)
        api = WebhookApi.create(url)
    except ValueError:
        # urlsplit's message may quote the URL, and with it the secret.
        checks.bad(
            "--webhook is not a valid webhook URL",
            "pass the URL Slack shows under Incoming Webhooks "
            "(https://hooks.slack.com/services/T.../B.../...)",
        )
        return
    print(f"Incoming Webhook: {label}")
    if post:
        try:
            api.post(label, _TEST_TEXT)
        except SlackDeliveryError as exc:
            checks.bad(f"{label} refused the test message ({exc.code})", exc.fix)
            return
        checks.ok(f"{label} posted a test message (webhooks cannot thread)")
        return
    probe = WebhookClient(url, timeout=15, retry_handlers=[], logger=silent_logger())
    try:
        response = probe.send_dict(body={})
    except Exception as exc:  # connection errors: the type only, never the URL
        checks.bad(
            f"{label} cannot be reached ({type(exc).__name__})",
            "check the URL and the network (a proxy?) from this machine",
        )
        return
    body = str(response.body or "").strip()
    if response.status_code == 400 and body in _ALIVE_ANSWERS:
        checks.ok(f"{label} is live (probed with an empty message: nothing posted)")
        return
    error = api._error(response, label)
    checks.bad(f"{label} does not work ({error.code})", error.fix)
