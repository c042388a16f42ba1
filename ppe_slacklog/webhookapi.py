"""The only module that calls slack_sdk's ``WebhookClient``: Incoming Webhooks.

An Incoming Webhook posts top-level messages into the one channel it was
created for. It cannot reply in threads, share files or read the channel
back, so :class:`WebhookApi` offers the surface the outbox uses on
:class:`~ppe_slacklog.slackapi.SlackApi` with ``can_thread``, ``can_upload``
and ``can_look_back`` set to ``False``, and refuses the rest with a permanent
:class:`~ppe_slacklog.slackapi.SlackDeliveryError`.

The webhook URL is a secret (whoever has it can post): its last path segment
never appears in a repr, an exception, a warning or a log line written by
slack_sdk for this library. :func:`webhook_label` is the printable form.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from slack_sdk.webhook import WebhookClient, WebhookResponse

from .slackapi import (
    _CONNECTION_ERRORS,
    FileData,
    Posted,
    SlackDeliveryError,
    _connection_error,
    _is_transient,
    retry_after_seconds,
    silent_logger,
)
from .stats import DeliveryCounters

__all__ = ["WebhookApi", "webhook_label"]

# https://hooks.slack.com/services/T…(workspace)/B…(webhook)/<secret>
_HOOK_PATH: Final = re.compile(
    r"^/services/(?P<team>[A-Z0-9]+)/(?P<hook>[A-Z0-9]+)/(?P<secret>[^/]+)/?$"
)
# Slack answers webhook errors with a bare code as the body ("no_service");
# anything else (an HTML page from a proxy, say) is summed up by its status.
_CODE: Final = re.compile(r"[a-z][a-z0-9_]{1,63}")
# Shorter strings could be common words: redacting them would garble text.
_MIN_SECRET_CHARS: Final = 6

_NEW_HOOK = "create a new one under Incoming Webhooks of your Slack app"

# What to tell the user for each error a webhook may answer that retrying
# cannot fix. Sources: Slack's "Sending messages using incoming webhooks"
# (Handling errors) and the changelog "Improving error conditions for
# Incoming Webhooks" (2016-05-17), which gives the HTTP statuses.
_FIXES: Final[dict[str, str]] = {
    # 400
    "invalid_payload": (
        "Slack could not read the message sent to the webhook (a proxy "
        "altering requests, or a bug in ppe_slacklog: please report it)"
    ),
    "no_text": "the message was empty",
    "too_many_attachments": "the message had more attachments than Slack accepts",
    "user_not_found": "the user named in the message does not exist",
    # 403
    "invalid_token": f"the webhook URL was revoked or mistyped: {_NEW_HOOK}",
    "action_prohibited": (
        "the workspace does not let this webhook post there (an admin "
        "restriction): ask a workspace admin, or use a bot token instead"
    ),
    "posting_to_general_channel_denied": (
        f"an admin restricted posting to #general: {_NEW_HOOK} for another channel"
    ),
    "team_disabled": "the Slack workspace of this webhook was disabled",
    # 404
    "no_service": (
        "the webhook URL was revoked or mistyped (or the app that owns it was "
        f"uninstalled): {_NEW_HOOK}"
    ),
    "no_service_id": f"the webhook URL is incomplete: {_NEW_HOOK}",
    "no_team": f"no Slack workspace matches the webhook URL: {_NEW_HOOK}",
    "no_active_hooks": (
        "Incoming Webhooks are turned off for the app: turn them on again under "
        f"Incoming Webhooks of your Slack app, or {_NEW_HOOK}"
    ),
    "channel_not_found": (
        f"the webhook's channel no longer exists: {_NEW_HOOK} for an existing channel"
    ),
    # 410
    "channel_is_archived": (
        "the webhook's channel is archived: unarchive it, or "
        f"{_NEW_HOOK} for another channel"
    ),
}

# For answers without one of Slack's codes.
_STATUS_FIXES: Final[dict[int, str]] = {
    400: "Slack refused the message sent to the webhook",
    403: f"Slack refused the webhook URL: {_NEW_HOOK}",
    404: f"no Incoming Webhook answers at this URL: check it, or {_NEW_HOOK}",
    410: f"the webhook is gone: {_NEW_HOOK}",
    429: "Slack rate-limited the webhook (about one message per second)",
}


def webhook_label(url: str) -> str:
    """A printable name for a webhook URL, without its secret.

    Args:
        url: The Incoming Webhook URL.

    Returns:
        ``"webhook …/<workspace ID>/<webhook ID>"`` for Slack's URL shape,
        else ``"webhook <host>/…"``.

    Example:
        >>> webhook_label("https://hooks.slack.com/services/T0001/B0002/s3cr3tXYZ")
        'webhook …/T0001/B0002'
        >>> webhook_label("http://127.0.0.1:8080/hook?key=s3cr3t")
        'webhook 127.0.0.1:8080/…'
    """
    parts = urlsplit(url)
    found = _HOOK_PATH.match(parts.path)
    if found:
        return f"webhook …/{found['team']}/{found['hook']}"
    return f"webhook {parts.netloc.rpartition('@')[2] or '?'}/…"


def _secret_parts(url: str) -> tuple[str, ...]:
    """The pieces of ``url`` that must never be shown, longest first."""
    parts = urlsplit(url)
    secrets = [url, parts.path.rstrip("/").rpartition("/")[2], parts.query]
    if parts.password:
        secrets.append(parts.password)
    return tuple(
        sorted(
            (s for s in secrets if len(s) >= _MIN_SECRET_CHARS), key=len, reverse=True
        )
    )


def _redactor(url: str) -> Callable[[str], str]:
    label = webhook_label(url)
    secrets = _secret_parts(url)

    def redact(text: str) -> str:
        text = text.replace(url, label)
        for secret in secrets:
            text = text.replace(secret, "…")
        return text

    return redact


class WebhookApi:
    """Posts messages through a Slack Incoming Webhook (``WebhookClient``).

    The same surface as :class:`~ppe_slacklog.slackapi.SlackApi`, minus what
    a webhook cannot do: no threads (``thread_ts`` is ignored and replies
    are posted top-level), no uploads and no reading back (both raise a
    permanent :class:`~ppe_slacklog.slackapi.SlackDeliveryError`).

    Args:
        client: A ready client. :meth:`create` builds one without retry
            handlers (429s, 5xx answers and connection errors are retried by
            the outbox, paced) and with a silent logger (slack_sdk's lines
            would quote the URL's secret).
        stats: Counters shared with the outbox.

    Example:
        >>> from ppe_slacklog.testing import SlackEmulator
        >>> with SlackEmulator() as emu:
        ...     api = WebhookApi.create(emu.webhook_url("general"))
        ...     _ = api.post(api.label, "loss 0.25")
        ...     [m.text for m in emu.top_level("general")], api.stats.api_calls
        (['loss 0.25'], 1)
    """

    can_thread: ClassVar[bool] = False
    """Webhook messages are always top-level."""
    can_upload: ClassVar[bool] = False
    """Webhooks cannot share files."""
    can_look_back: ClassVar[bool] = False
    """Webhooks cannot read the channel, so a lost answer cannot be checked."""

    def __init__(
        self, client: WebhookClient, stats: DeliveryCounters | None = None
    ) -> None:
        self._client = client
        self._redact = _redactor(client.url)
        self.stats = stats if stats is not None else DeliveryCounters()

    @classmethod
    def create(cls, url: str, timeout: float = 15.0) -> WebhookApi:
        """Builds a client with the retry handler and logger this library relies on.

        Args:
            url: The Incoming Webhook URL (``https://hooks.slack.com/services/…``).
            timeout: Seconds to wait for Slack's answer (whole seconds, >= 1).

        Raises:
            ValueError: ``url`` is not an http(s) URL.

        Example:
            >>> WebhookApi.create("https://hooks.slack.com/services/T1/B2/xyz123")
            <WebhookApi webhook …/T1/B2>
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(
                f"not a webhook URL (it must start with https://): {webhook_label(url)}"
            )
        client = WebhookClient(
            url=url,
            timeout=max(1, round(timeout)),
            # Retries belong to the outbox, which paces them; slack_sdk's
            # log lines would quote the URL's secret and repeat per retry.
            retry_handlers=[],
            logger=silent_logger(),
        )
        return cls(client)

    def __repr__(self) -> str:
        return f"<WebhookApi {self.label}>"

    @property
    def label(self) -> str:
        """The webhook for messages: ``"webhook …/T…/B…"`` (no secret)."""
        return webhook_label(self._client.url)

    @property
    def base_url(self) -> str:
        """The webhook URL, as a key for pacing. Secret: never print it."""
        return str(self._client.url)

    def post(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        message_id: str | None = None,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> Posted:
        """Posts ``text`` as a top-level message of the webhook's channel.

        Args:
            channel: Only used in error messages: the webhook decides the
                channel. Pass :attr:`label` or the channel's name.
            text: The message (Slack mrkdwn).
            thread_ts: Ignored: webhooks cannot thread (``can_thread``).
            reply_broadcast: Ignored.
            message_id: Ignored: webhook messages carry no metadata.
            blocks: Ignored: webhooks post no live card.
            run_id: Ignored, like ``message_id``.

        Returns:
            ``Posted("", "")``: a webhook does not say where the message went.

        Raises:
            SlackDeliveryError: Slack refused the message (``permanent``),
                or may take it later (a 429 after retries, a 5xx answer, a
                connection error).
        """
        where = self._where(channel)
        self.stats.api_calls += 1
        try:
            response = self._client.send(text=text)
        except _CONNECTION_ERRORS as exc:
            raise _connection_error(exc, where, redact=self._redact) from None
        if 200 <= response.status_code < 300:
            return Posted(channel_id="", ts="")
        raise self._error(response, where)

    def _where(self, channel: str) -> str:
        # Whatever the caller names the channel, the URL must not show.
        return self._redact(channel) if channel else self.label

    def _error(self, response: WebhookResponse, where: str) -> SlackDeliveryError:
        status = int(response.status_code)
        body = str(response.body or "").strip()
        if body.startswith("{"):
            # A webhook's 429 comes as JSON: {"ok": false, "error": ...}.
            with contextlib.suppress(ValueError, AttributeError):
                body = str(json.loads(body).get("error") or "")
        code = body if _CODE.fullmatch(body) else f"http_{status}"
        if status == 429:
            self.stats.rate_limited += 1
        transient = _is_transient(status, code)
        fix = _FIXES.get(code) or _STATUS_FIXES.get(status)
        if fix is None:
            fix = f"Slack answered HTTP {status} ('{code}')"
        return SlackDeliveryError(
            code,
            channel=where,
            permanent=not transient,
            fix=self._redact(fix),
            # A 5xx may come after Slack stored the message.
            ambiguous=status >= 500,
            retry_after=retry_after_seconds(status, response.headers),
        )

    def upload(
        self,
        channel: str,
        files: Sequence[FileData],
        *,
        comment: str | None,
        thread_ts: str | None,
        on_staged: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        """Always refuses: Incoming Webhooks cannot share files.

        Raises:
            SlackDeliveryError: ``webhook_cannot_upload``, permanent.
        """
        raise SlackDeliveryError(
            "webhook_cannot_upload",
            channel=self._where(channel),
            permanent=True,
            fix=(
                "an Incoming Webhook cannot share files: use a bot token "
                "(SLACK_BOT_TOKEN with files:write) to upload them"
            ),
        )

    def find_posted(
        self, channel: str, message_id: str, *, thread_ts: str | None, oldest: float
    ) -> Posted | None:
        """Always refuses: Incoming Webhooks cannot read the channel.

        Raises:
            SlackDeliveryError: ``webhook_cannot_look_back``, permanent.
        """
        raise self._no_history(channel)

    def find_upload(
        self,
        channel: str,
        file_ids: Sequence[str],
        *,
        thread_ts: str | None,
        oldest: float,
    ) -> bool:
        """Always refuses: Incoming Webhooks cannot read the channel.

        Raises:
            SlackDeliveryError: ``webhook_cannot_look_back``, permanent.
        """
        raise self._no_history(channel)

    def thread_exists(self, channel: str, ts: str) -> bool | None:
        """``None``: webhooks have no threads to check."""
        return None

    def _no_history(self, channel: str) -> SlackDeliveryError:
        return SlackDeliveryError(
            "webhook_cannot_look_back",
            channel=self._where(channel),
            permanent=True,
            fix="an Incoming Webhook cannot read the channel's messages",
        )

    def channel_id(self, channel: str) -> str:
        """``channel`` unchanged: the webhook decides where messages go.

        Example:
            >>> WebhookApi.create("https://hooks.slack.com/services/T/B/x").channel_id(
            ...     "#general"
            ... )
            '#general'
        """
        return channel
