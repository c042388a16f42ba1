"""``conversations.history`` and ``conversations.replies`` of the emulator."""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ._models import EmulatedMessage
from ._state import (
    BOT_USER_ID,
    ApiResult,
    Channel,
    WorkspaceState,
    error_result,
    flag_param,
    ok_result,
    text_param,
)

__all__ = ["HistoryMethods", "decode_cursor", "encode_cursor", "ts_micros"]

_CURSOR_PREFIX = "next_ts:"
_HISTORY_LIMITS = (100, 999)  # (default, maximum) per the method docs
_REPLIES_LIMITS = (1000, 1000)


def ts_micros(value: str) -> int | None:
    """Parse a Slack timestamp (``"1700000000.000100"``, ``"0"``) to µs.

    Example:
        >>> ts_micros("1700000000.000100"), ts_micros("12"), ts_micros("x")
        (1700000000000100, 12000000, None)
    """
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0:
        return None
    return int(number * 1_000_000)


def encode_cursor(ts: str) -> str:
    """Opaque cursor pointing at the message ``ts`` (next one to return).

    Like Slack's: base64 of ``next_ts:<ts without the dot>``.

    Example:
        >>> decode_cursor(encode_cursor("1700000000.000100"))
        1700000000000100
    """
    micros = ts_micros(ts) or 0
    return base64.b64encode(f"{_CURSOR_PREFIX}{micros}".encode()).decode()


def decode_cursor(cursor: str) -> int | None:
    """The µs timestamp inside a cursor from :func:`encode_cursor`, or ``None``."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    digits = text[len(_CURSOR_PREFIX) :]
    if not text.startswith(_CURSOR_PREFIX) or not digits.isdigit():
        return None
    return int(digits)


def _key(message: EmulatedMessage) -> int:
    return ts_micros(message.ts) or 0


class HistoryMethods(WorkspaceState):
    """Read methods over stored messages (mixed into ``Workspace``).

    Example:
        >>> ws = HistoryMethods(("general",), None, ("channels:history",))
        >>> ws._conversations_history({"channel": "C0000001"}).body["messages"]
        []
    """

    def _history_channel(self, params: Mapping[str, Any]) -> Channel | ApiResult:
        # Like Slack, these methods take conversation IDs only (no names).
        channel = self._visible(
            self._lookup(text_param(params, "channel") or "", allow_names=False)
        )
        if channel is None:
            return error_result("channel_not_found")
        needed = "groups:history" if channel.private else "channels:history"
        denied = self._missing_scope(needed)
        if denied:
            return denied
        if not channel.member:
            return error_result("not_in_channel")
        return channel

    def _page(
        self,
        params: Mapping[str, Any],
        messages: Sequence[EmulatedMessage],
        limits: tuple[int, int],
        newest_first: bool,
    ) -> ApiResult | tuple[list[EmulatedMessage], str]:
        """Filter by ``oldest``/``latest``/``inclusive``, then cut one page."""
        bounds: list[int | None] = []
        for name in ("oldest", "latest"):
            raw = text_param(params, name)
            value = ts_micros(raw) if raw else None
            if raw and value is None:
                return error_result(f"invalid_ts_{name}")
            bounds.append(value)
        oldest, latest = bounds
        inclusive = flag_param(params, "inclusive")
        try:
            limit = int(text_param(params, "limit") or limits[0])
        except ValueError:
            return error_result("invalid_limit")
        limit = min(max(limit, 1), limits[1], self.history_max_limit or limits[1])

        def wanted(key: int) -> bool:
            if oldest is not None and (
                key < oldest or (key == oldest and not inclusive)
            ):
                return False
            return latest is None or key < latest or (key == latest and inclusive)

        ordered = sorted(messages, key=_key, reverse=newest_first)
        chosen = [m for m in ordered if wanted(_key(m))]
        cursor = text_param(params, "cursor")
        if cursor:
            start = decode_cursor(cursor)
            if start is None:
                return error_result("invalid_cursor")
            chosen = [
                m
                for m in chosen
                if (_key(m) <= start if newest_first else _key(m) >= start)
            ]
        next_cursor = encode_cursor(chosen[limit].ts) if len(chosen) > limit else ""
        return chosen[:limit], next_cursor

    def _history_json(
        self, message: EmulatedMessage, with_metadata: bool
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if message.thread_ts is None:
            replies = [
                m
                for m in self._messages
                if m.channel == message.channel and m.thread_ts == message.ts
            ]
            if replies:
                extra.update(
                    thread_ts=message.ts,
                    reply_count=len(replies),
                    reply_users_count=1,
                    latest_reply=replies[-1].ts,
                    reply_users=[BOT_USER_ID],
                    is_locked=False,
                    subscribed=False,
                )
        if with_metadata and message.metadata is not None:
            extra["metadata"] = copy.deepcopy(message.metadata)
        return self._message_json(message, extra)

    def _conversations_history(self, params: Mapping[str, Any]) -> ApiResult:
        channel = self._history_channel(params)
        if isinstance(channel, ApiResult):
            return channel
        # Top-level messages plus replies also sent to the channel.
        visible = [
            m
            for m in self._messages
            if m.channel == channel.id and (m.thread_ts is None or m.reply_broadcast)
        ]
        paged = self._page(params, visible, _HISTORY_LIMITS, newest_first=True)
        if isinstance(paged, ApiResult):
            return paged
        page, next_cursor = paged
        with_metadata = flag_param(params, "include_all_metadata")
        return ok_result(
            messages=[self._history_json(m, with_metadata) for m in page],
            has_more=bool(next_cursor),
            pin_count=0,
            channel_actions_ts=None,
            channel_actions_count=0,
            response_metadata={"next_cursor": next_cursor},
        )

    def _conversations_replies(self, params: Mapping[str, Any]) -> ApiResult:
        channel = self._history_channel(params)
        if isinstance(channel, ApiResult):
            return channel
        root = self._resolve_thread(channel.id, text_param(params, "ts") or "")
        if root is None:
            return error_result("thread_not_found")
        thread = [
            m
            for m in self._messages
            if m.channel == channel.id and root in (m.ts, m.thread_ts)
        ]
        paged = self._page(params, thread, _REPLIES_LIMITS, newest_first=False)
        if isinstance(paged, ApiResult):
            return paged
        page, next_cursor = paged
        with_metadata = flag_param(params, "include_all_metadata")
        return ok_result(
            messages=[self._history_json(m, with_metadata) for m in page],
            has_more=bool(next_cursor),
            response_metadata={"next_cursor": next_cursor},
        )
