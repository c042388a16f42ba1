"""Workspace state of the emulator and the Web API methods acting on it."""

from __future__ import annotations

import json
import mimetypes
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._models import EmulatedFile, EmulatedMessage

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "MAX_TEXT_CHARS",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEAM_NAME",
    "ApiResult",
    "Channel",
    "PendingUpload",
    "WorkspaceState",
    "error_result",
    "flag_param",
    "ok_result",
    "text_param",
]

TEAM_ID = "T0000001"
TEAM_NAME = "Emulated Workspace"
TEAM_DOMAIN = "emulator"
BOT_USER_ID = "U0000001"
BOT_USER_NAME = "ppe-slacklog-bot"
BOT_ID = "B0000001"
APP_ID = "A0000001"
MAX_TEXT_CHARS = 40_000


@dataclass(frozen=True)
class ApiResult:
    """HTTP status, JSON body and extra headers of one API answer."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """The body's ``error`` field when ``ok`` is false."""
        if self.body.get("ok"):
            return None
        error = self.body.get("error")
        return str(error) if error is not None else "unknown_error"


def error_result(error: str, status: int = 200, **extra: Any) -> ApiResult:
    """Build a Slack-style ``{"ok": false, "error": ...}`` answer."""
    return ApiResult(status, {"ok": False, "error": error, **extra})


def ok_result(**fields: Any) -> ApiResult:
    return ApiResult(200, {"ok": True, **fields})


@dataclass
class Channel:
    id: str
    name: str
    private: bool
    member: bool
    created: int


@dataclass
class PendingUpload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


def text_param(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def flag_param(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


class WorkspaceState:
    """Channels, messages and files of one emulated workspace (thread-safe).

    The Web API methods live in the ``Workspace`` subclass (``_methods``).

    Example:
        >>> ws = WorkspaceState(("general", "alerts"), ("general",), ())
        >>> ws.find_channel("#alerts")
        'C0000002'
    """

    def __init__(
        self,
        channels: Iterable[str],
        member_of: Iterable[str] | None,
        scopes: Iterable[str],
    ) -> None:
        """Create the channels; the bot joins ``member_of`` (``None``: all)."""
        self._lock = threading.RLock()
        self.scopes: tuple[str, ...] = tuple(scopes)
        self._root = "http://127.0.0.1"
        self._channels: dict[str, Channel] = {}
        self._messages: list[EmulatedMessage] = []
        self._pending: dict[str, PendingUpload] = {}
        self._files: dict[str, EmulatedFile] = {}
        self._file_order: list[str] = []
        self._last_us = 0
        self._file_counter = 0
        names = list(channels)
        members = set(names if member_of is None else member_of)
        unknown = members.difference(names)
        if unknown:
            raise ValueError(f"member_of names unknown channels: {sorted(unknown)}")
        for name in names:
            self.add_channel(name, member=name in members, private=False)

    # ------------------------------------------------------------------ setup

    def set_root(self, root: str) -> None:
        """Set ``http://host:port`` used to build upload URLs."""
        with self._lock:
            self._root = root.rstrip("/")

    def add_channel(self, name: str, *, member: bool, private: bool) -> str:
        """Create a channel and return its generated ID."""
        clean = name.lstrip("#")
        if not re.fullmatch(r"[a-z0-9_\-]{1,80}", clean):
            raise ValueError(f"invalid Slack channel name: {name!r}")
        with self._lock:
            if any(c.name == clean for c in self._channels.values()):
                raise ValueError(f"channel already exists: {clean!r}")
            channel_id = f"C{len(self._channels) + 1:07d}"
            self._channels[channel_id] = Channel(
                channel_id, clean, private, member, int(time.time())
            )
            return channel_id

    def find_channel(self, name_or_id: str) -> str | None:
        """Resolve ``"general"``, ``"#general"`` or an ID to a channel ID."""
        channel = self._lookup(name_or_id, allow_names=True)
        return channel.id if channel else None

    def set_member(self, name_or_id: str, member: bool) -> None:
        """Make the bot join or leave a channel (``/invite``, ``/kick``)."""
        channel = self._lookup(name_or_id, allow_names=True)
        if channel is None:
            raise KeyError(name_or_id)
        with self._lock:
            channel.member = member

    def channel_name(self, channel_id: str) -> str:
        """Name of the channel with ID ``channel_id``."""
        with self._lock:
            return self._channels[channel_id].name

    def channel_key(self, value: str | None) -> str:
        """Rate-limit key of a ``channel`` parameter (ID when resolvable)."""
        if not value:
            return ""
        return self.find_channel(value) or value

    def _lookup(self, value: str, *, allow_names: bool) -> Channel | None:
        with self._lock:
            if value in self._channels:
                return self._channels[value]
            if not allow_names:
                return None
            name = value[1:] if value.startswith("#") else value
            for channel in self._channels.values():
                if channel.name == name:
                    return channel
            return None

    # ------------------------------------------------------------- read-back

    def messages(self, channel_id: str | None) -> list[EmulatedMessage]:
        """All messages in post order, optionally of one channel."""
        with self._lock:
            return [m for m in self._messages if channel_id in (None, m.channel)]

    def files(self) -> list[EmulatedFile]:
        """Completed files in completion order."""
        with self._lock:
            return [self._files[i] for i in self._file_order]

    def reset(self) -> None:
        """Forget messages, files and pending uploads; keep channels."""
        with self._lock:
            self._messages.clear()
            self._pending.clear()
            self._files.clear()
            self._file_order.clear()

    # ---------------------------------------------------------------- helpers

    def _missing_scope(self, *needed: str) -> ApiResult | None:
        for scope in needed:
            if scope not in self.scopes:
                return error_result(
                    "missing_scope", needed=scope, provided=",".join(self.scopes)
                )
        return None

    def _next_ts(self) -> str:
        now_us = int(time.time() * 1_000_000)
        self._last_us = max(now_us, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def _visible(self, channel: Channel | None) -> Channel | None:
        # A bot cannot see private channels it is not a member of.
        if channel is None or (channel.private and not channel.member):
            return None
        return channel

    def _channel_json(self, channel: Channel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.private,
            "is_archived": False,
            "is_general": channel.name == "general",
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_member": channel.member,
            "created": channel.created,
            "creator": BOT_USER_ID,
            "context_team_id": TEAM_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _resolve_thread(self, channel_id: str, thread_ts: str) -> str | None:
        for message in self._messages:
            if message.channel == channel_id and message.ts == thread_ts:
                # Replying to a reply lands in the parent's thread.
                return message.thread_ts or message.ts
        return None

    def _message_json(
        self, message: EmulatedMessage, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "user": message.user,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": message.text,
            "ts": message.ts,
            "team": TEAM_ID,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": BOT_USER_NAME,
                "team_id": TEAM_ID,
                "deleted": False,
            },
        }
        if message.thread_ts is not None:
            body["thread_ts"] = message.thread_ts
            body["parent_user_id"] = BOT_USER_ID
            if message.reply_broadcast:
                body["subtype"] = "thread_broadcast"
        if message.files:
            body["files"] = [self._file_json(f) for f in message.files]
            body["upload"] = True
        body.update(extra)
        return body

    def _file_json(self, file: EmulatedFile) -> dict[str, Any]:
        channel = self._channels.get(file.channel or "")
        shared_public = channel is not None and not channel.private
        permalink = (
            f"https://{TEAM_DOMAIN}.slack.com/files/{BOT_USER_ID}/{file.id}/{file.name}"
        )
        return {
            "id": file.id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": file.name,
            "title": file.title,
            "mimetype": mimetypes.guess_type(file.name)[0]
            or "application/octet-stream",
            "filetype": file.name.rsplit(".", 1)[-1] if "." in file.name else "",
            "user": BOT_USER_ID,
            "user_team": TEAM_ID,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "is_public": shared_public,
            "public_url_shared": False,
            "size": len(file.content),
            "url_private": f"{self._root}/files-pri/{TEAM_ID}-{file.id}/{file.name}",
            "permalink": permalink,
            "channels": [file.channel] if shared_public and file.channel else [],
            "groups": [file.channel] if channel is not None and channel.private else [],
            "ims": [],
        }

    def store_upload(self, file_id: str, content: bytes) -> bool:
        """Store bytes POSTed to an upload URL; ``False`` if the ID is unknown."""
        with self._lock:
            pending = self._pending.get(file_id)
            if pending is None:
                return False
            pending.content = bytes(content)
            return True
