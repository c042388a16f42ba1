"""``SlackWebhookHandler``: the logging handler for a Slack Incoming Webhook.

The same delivery as :class:`~ppe_slacklog.SlackHandler` (off the caller's
thread, in order, paced, retried, bounded), through a webhook URL instead of
a bot token. An Incoming Webhook posts top-level messages into the one
channel it was created for: there are no threads, no file uploads, and no
way to check whether a post whose answer was lost was stored.
"""

from __future__ import annotations

import os
from typing import Any, Final
from urllib.parse import urlsplit

from slack_sdk import WebClient

from ._secret import Secret
from .delivery import DeliveryApi
from .handler import SlackHandler
from .webhookapi import WebhookApi, webhook_label

__all__ = ["SecretUrl", "SlackWebhookHandler", "resolve_webhook_url"]


_ENV: Final = "SLACK_WEBHOOK_URL"


class SecretUrl(Secret):
    """A webhook URL that is never shown or pickled (see :class:`Secret`).

    Its repr names the webhook without its secret, so ``vars()`` of an
    object holding it is safe to print; a pickled copy reads the URL again
    from ``SLACK_WEBHOOK_URL`` when loaded.

    Example:
        >>> SecretUrl("https://hooks.slack.com/services/T1/B2/s3cr3tXYZ")
        <webhook …/T1/B2>
    """

    __slots__ = ()

    def __init__(self, value: str, *, env: str = _ENV) -> None:
        super().__init__(value, env=env)

    @classmethod
    def from_env(cls, env: str) -> SecretUrl | None:
        """The URL in ``env``; ``None`` when unset, empty or not a URL.

        Never raises: it runs while a checkpoint is loaded.
        """
        try:
            return _parse(os.environ.get(env, ""), env)
        except ValueError:
            return None

    def label(self) -> str:
        return webhook_label(self.reveal())


def _parse(url: str, env: str = _ENV) -> SecretUrl | None:
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "not an Incoming Webhook URL (it must look like "
            f"https://hooks.slack.com/services/...): {webhook_label(url)}"
        )
    return SecretUrl(url, env=env)


def resolve_webhook_url(url: str | Secret | None) -> SecretUrl | None:
    """The explicit URL, else ``SLACK_WEBHOOK_URL``, else ``None``.

    Raises:
        ValueError: The URL is not an http(s) URL (the message shows no secret).
    """
    if isinstance(url, Secret):
        url = url.reveal()
    if not (isinstance(url, str) and url.strip()):
        url = os.environ.get(_ENV, "")
    return _parse(url)


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

    def __init__(self, url: str | Secret | None = None, **options: Any) -> None:
        resolved = resolve_webhook_url(url)
        if resolved is None:
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
        self._url: SecretUrl | None = resolved
        super().__init__(resolved.label(), thread=False, broadcast=(), **options)

    def _make_api(
        self,
        channel: str,
        token: str | None,
        base_url: str | None,
        client: WebClient | None,
        timeout: float,
    ) -> DeliveryApi:
        url, self._url = self._url, None  # held by the transport only
        assert url is not None  # set by __init__ just before
        return WebhookApi.create(url.reveal(), timeout=timeout)
