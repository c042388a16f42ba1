"""Incoming Webhooks of the emulator: hooks bound to channels, and their posts."""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ._history import HistoryMethods
from ._models import EmulatedMessage
from ._state import BOT_USER_ID, TEAM_ID, ApiResult, error_result, text_param

__all__ = ["Hook", "WebhookMethods", "parse_webhook_payload"]

# /services/<team>/<hook>/<secret>, as in Slack's hooks.slack.com URLs.
_PATH = re.compile(r"^(?P<team>[^/]+)/(?P<hook>[^/]+)/(?P<secret>[^/]+)/?$")
_SECRET_CHARS = string.ascii_letters + string.digits


@dataclass
class Hook:
    """One Incoming Webhook: its ID, its channel and its secret."""

    id: str
    channel: str
    secret: str
    revoked: bool = False

    @property
    def path(self) -> str:
        """The URL path Slack gives the hook."""
        return f"/services/{TEAM_ID}/{self.id}/{self.secret}"


def parse_webhook_payload(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The JSON object POSTed to a webhook, or ``None`` when unreadable.

    Slack takes a JSON body, or a form whose ``payload`` field holds the JSON.

    Example:
        >>> parse_webhook_payload("application/json", b'{"text": "hi"}')
        {'text': 'hi'}
        >>> parse_webhook_payload("application/x-www-form-urlencoded",
        ...                       b"payload=%7B%22text%22%3A+%22hi%22%7D")
        {'text': 'hi'}
        >>> parse_webhook_payload("application/json", b"{oops") is None
        True
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
        if kind == "application/x-www-form-urlencoded":
            text = dict(parse_qsl(text, keep_blank_values=True)).get("payload", "")
        decoded = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


class WebhookMethods(HistoryMethods):
    """Workspace state plus Incoming Webhooks (one live hook per channel).

    Example:
        >>> ws = WebhookMethods(("general",), None, ())
        >>> hook = ws.add_webhook("C0000001")
        >>> ws.post_webhook(hook, {"text": "hi"}).status, ws.messages(None)[0].text
        (200, 'hi')
    """

    def __init__(
        self,
        channels: Iterable[str],
        member_of: Iterable[str] | None,
        scopes: Iterable[str],
    ) -> None:
        """Create the channels; no webhooks exist until :meth:`add_webhook`."""
        super().__init__(channels, member_of, scopes)
        self._hooks: list[Hook] = []

    def add_webhook(self, channel_id: str) -> Hook:
        """The live hook of ``channel_id``, created on first use."""
        with self._lock:
            for hook in self._hooks:
                if hook.channel == channel_id and not hook.revoked:
                    return hook
            # Workspace IDs are T…, a webhook's are B… like bot IDs; the
            # emulated bot is B0000001, so hooks count on from there.
            hook = Hook(
                id=f"B{len(self._hooks) + 2:07d}",
                channel=channel_id,
                secret="".join(secrets.choice(_SECRET_CHARS) for _ in range(24)),
            )
            self._hooks.append(hook)
            return hook

    def find_webhook(self, path: str) -> tuple[str | None, Hook | None]:
        """The hook ID named in ``path`` (after ``/services/``), and the live hook.

        The ID is returned for the call log even when no live hook matches;
        the secret is never returned.
        """
        found = _PATH.match(path)
        if found is None:
            return None, None
        with self._lock:
            for hook in self._hooks:
                if (
                    found["team"] == TEAM_ID
                    and hook.id == found["hook"]
                    and secrets.compare_digest(hook.secret, found["secret"])
                ):
                    return hook.id, None if hook.revoked else hook
        return found["hook"], None

    def revoke_webhook(self, path: str) -> bool:
        """Revoke the hook at ``path``; ``False`` if there is none."""
        _, hook = self.find_webhook(path)
        if hook is None:
            return False
        with self._lock:
            hook.revoked = True
        return True

    def post_webhook(self, hook: Hook, payload: Mapping[str, Any]) -> ApiResult:
        """Store a message POSTed to ``hook``; the answer's error is the body."""
        text = text_param(payload, "text")
        has_rich = bool(payload.get("blocks")) or bool(payload.get("attachments"))
        if not text and not has_rich:
            return error_result("no_text", 400)
        with self._lock:
            if self._channels[hook.channel].archived:
                return error_result("channel_is_archived", 410)
            # Slack's webhook page documents no threading; replies with a
            # known thread_ts are modelled as chat.postMessage does them.
            thread_ts = None
            requested = text_param(payload, "thread_ts")
            if requested:
                thread_ts = self._resolve_thread(hook.channel, requested)
            self._messages.append(
                EmulatedMessage(
                    ts=self._next_ts(),
                    channel=hook.channel,
                    text=text or "",
                    thread_ts=thread_ts,
                    reply_broadcast=False,
                    files=(),
                    user=BOT_USER_ID,
                )
            )
        return ApiResult(200, {"ok": True})
