"""``SlackWebhookHandler``: the logging handler for a Slack Incoming Webhook.

The same delivery as :class:`~ppe_slacklog.SlackHandler` (off the caller's
thread, in order, paced, retried, bounded), through a webhook URL instead of
a bot token. An Incoming Webhook posts top-level messages into the one
channel it was created for: there are no threads, no file uploads, and no
way to check whether a post whose answer was lost was stored.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient

from .delivery import DeliveryApi
from .handler import SlackHandler
from .webhookapi import WebhookApi, webhook_label

__all__ = ["SecretUrl", "SlackWebhookHandler", "resolve_webhook_url"]


class SecretUrl(str):
    """A webhook URL whose repr hides its secret (``vars(obj)`` shows reprs).

    Example:
        >>> SecretUrl("https://hooks.slack.com/services/T1/B2/s3cr3tXYZ")
        <webhook …/T1/B2>
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{webhook_label(self)}>"


def resolve_webhook_url(url: str | None) -> SecretUrl | None:
    """The explicit URL, else ``SLACK_WEBHOOK_URL``, else ``None``.

    Raises:
        ValueError: The URL is not an http(s) URL (the message shows no secret).
    """
    if not (isinstance(url, str) and url.strip()):
        url = os.environ.get("SLACK_WEBHOOK_URL", "")
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "not an Incoming Webhook URL (it must look like "
            f"https://hooks.slack.com/services/...): {webhook_label(url)}"
        )
    return SecretUrl(url)


class SlackWebhookHandler(SlackHandler):
    """A logging handler that posts records through a Slack Incoming Webhook.

    Training events are rendered with the documented templates, like
    :class:`~ppe_slacklog.SlackHandler` does, and each becomes a top-level
    message. Files of an event are not uploaded (webhooks cannot); their
    names are listed in the message and a warning says so once.

    Args:
        url: The webhook URL (``https://hooks.slack.com/services/...``);
            defaults to the ``SLACK_WEBHOOK_URL`` environment variable. A
            secret like a token: never shown in reprs or warnings.
        **options: Any keyword argument of :class:`~ppe_slacklog.SlackHandler`
            except ``token``, ``base_url``, ``client``, ``thread`` and
            ``broadcast`` (``msg``, ``flush_timeout``, ``rate_limit``, ...).

    Example:
        >>> import logging.config
        >>> logging.config.dictConfig({
        ...     "version": 1,
        ...     "disable_existing_loggers": False,
        ...     "handlers": {"slack": {
        ...         "()": "ppe_slacklog.SlackWebhookHandler"}},
        ...     "loggers": {"ppe_slacklog.training": {
        ...         "handlers": ["slack"], "level": "INFO"}},
        ... })  # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        url = resolve_webhook_url(url)
        if url is None:
            raise ValueError(
                "SlackWebhookHandler needs an Incoming Webhook URL: set the "
                "SLACK_WEBHOOK_URL environment variable or pass url=..."
            )
        for name in ("token", "base_url", "client", "thread", "broadcast"):
            if name in options:
                raise TypeError(
                    f"SlackWebhookHandler does not take {name}=: Incoming Webhooks "
                    "post top-level messages to their own channel"
                )
        self._url = url
        super().__init__(webhook_label(url), thread=False, broadcast=(), **options)

    def _make_api(
        self,
        channel: str,
        token: str | None,
        base_url: str | None,
        client: WebClient | None,
        timeout: float,
    ) -> DeliveryApi:
        url, self._url = self._url, SecretUrl("")  # held by the transport only
        return WebhookApi.create(url, timeout=timeout)
