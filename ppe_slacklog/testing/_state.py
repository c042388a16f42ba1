"""Workspace state of the emulator and the Web API methods acting on it."""

from __future__ import annotations

import copy
import json
import mimetypes
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._models import BOT_USER_ID, EmulatedFile, EmulatedMessage
from ._text import stored_text

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
    "PendingShare",
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
BOT_USER_NAME = "ppe-slacklog-bot"
BOT_ID = "B0000001"
APP_ID = "A0000001"
MAX_TEXT_CHARS = 40_000
TOMBSTONE_TEXT = "This message was deleted."


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
    archived: bool = False
    # Workspace settings that keep the bot from posting here.
    restricted: bool = False


@dataclass
class PendingShare:
    """A completed upload whose file message is not in the channel yet."""

    due: float  # time.monotonic() when Slack shares it
    files: tuple[EmulatedFile, ...]
    channel: str
    thread_ts: str | None
    comment: str | None


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
        # Replies to a thread_ts that names no message: stored, seen nowhere.
        self._orphans: list[EmulatedMessage] = []
        self._shares: list[PendingShare] = []
        # file id -> (channel, ts of its file message, thread_ts)
        self._shared: dict[str, tuple[str, str, str | None]] = {}
        self.share_delay = 0.0
        # Largest page of conversations.history/replies (15 for commercially
        # distributed non-Marketplace apps), None: the method's own maximum.
        self.history_max_limit: int | None = None
        self._pending: dict[str, PendingUpload] = {}
        # (channel, ts) of messages whose edit window a test closed.
        self._edit_closed: set[tuple[str, str]] = set()
        # Deleted files stay here (deleted=True): files.info says file_deleted.
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

    def set_flag(
        self,
        channel_id: str,
        *,
        archived: bool | None = None,
        restricted: bool | None = None,
    ) -> None:
        """Archive a channel or restrict posting there (``None``: unchanged)."""
        with self._lock:
            channel = self._channels[channel_id]
            if archived is not None:
                channel.archived = archived
            if restricted is not None:
                channel.restricted = restricted

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
            self.share_due_files()
            return [m for m in self._messages if channel_id in (None, m.channel)]

    def orphans(self, channel_id: str | None) -> list[EmulatedMessage]:
        """Replies stored under a ``thread_ts`` that named no message."""
        with self._lock:
            return [m for m in self._orphans if channel_id in (None, m.channel)]

    def delete_message(self, channel_id: str, ts: str) -> bool:
        """Delete a message; a parent with replies leaves a tombstone."""
        with self._lock:
            found = [
                n
                for n, m in enumerate(self._messages)
                if m.channel == channel_id and m.ts == ts
            ]
            if not found:
                return False
            number = found[0]
            message = self._messages[number]
            has_replies = any(
                m.channel == channel_id and m.thread_ts == ts for m in self._messages
            )
            if has_replies and message.thread_ts is None:
                # Slack keeps the thread under "This message was deleted."
                self._messages[number] = replace(
                    message,
                    text=TOMBSTONE_TEXT,
                    api_text=None,
                    files=(),
                    metadata=None,
                    deleted=True,
                    blocks=None,
                )
            else:
                del self._messages[number]
            return True

    def share_due_files(self, *, all_now: bool = False) -> None:
        """Post the file messages of completed uploads whose share is due.

        Slack shares asynchronously after ``files.completeUploadExternal``;
        the emulator posts each file message when first observed after its
        due time, so a reply sent meanwhile lands before it.
        """
        with self._lock:
            now = time.monotonic()
            due = [s for s in self._shares if all_now or s.due <= now]
            self._shares = [s for s in self._shares if s not in due]
            for share in due:
                self._post_share(share)

    def _post_share(self, share: PendingShare) -> None:
        thread_ts = share.thread_ts
        if thread_ts is not None:
            thread_ts = self._resolve_thread(share.channel, thread_ts)
            if thread_ts is None:
                return  # the thread's parent was deleted meanwhile
        message = EmulatedMessage(
            ts=self._next_ts(),
            channel=share.channel,
            text=share.comment or "",
            thread_ts=thread_ts,
            reply_broadcast=False,
            files=share.files,
            user=share.files[0].user if share.files else BOT_USER_ID,
            api_text=stored_text(share.comment or ""),
        )
        self._messages.append(message)
        for file in share.files:
            self._shared[file.id] = (share.channel, message.ts, thread_ts)

    def files(self) -> list[EmulatedFile]:
        """Completed files not deleted, in completion order."""
        with self._lock:
            files = [self._files[i] for i in self._file_order]
            return [f for f in files if not f.deleted]

    def reset(self) -> None:
        """Forget messages, files and pending uploads; keep channels."""
        with self._lock:
            self._messages.clear()
            self._orphans.clear()
            self._shares.clear()
            self._shared.clear()
            self._pending.clear()
            self._files.clear()
            self._file_order.clear()
            self._edit_closed.clear()

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
            "is_archived": channel.archived,
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
            "text": message.text if message.api_text is None else message.api_text,
            "ts": message.ts,
            "team": TEAM_ID,
        }
        if message.user == BOT_USER_ID:
            body.update(
                bot_id=BOT_ID,
                app_id=APP_ID,
                bot_profile={
                    "id": BOT_ID,
                    "app_id": APP_ID,
                    "name": BOT_USER_NAME,
                    "team_id": TEAM_ID,
                    "deleted": False,
                },
            )
        if message.blocks:
            body["blocks"] = copy.deepcopy(message.blocks)
        if message.edits:
            body["edited"] = {
                "user": message.user,
                "ts": f"{message.edits[-1].at:.6f}",
            }
        if message.deleted:
            body.update(subtype="tombstone", hidden=True, user="USLACKBOT")
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
        if file.deleted:
            # What messages that shared a deleted file show in its place.
            return {"id": file.id, "mode": "tombstone"}
        # Until Slack has shared the file, it is in no channel.
        where = self._shared.get(file.id)
        channel = self._channels.get(where[0]) if where else None
        shared_public = channel is not None and not channel.private
        shares: dict[str, Any] = {}
        if where is not None and channel is not None:
            share: dict[str, Any] = {
                "ts": where[1],
                "channel_name": channel.name,
                "team_id": TEAM_ID,
                "share_user_id": file.user,
                "source": "UNKNOWN",
            }
            if where[2] is not None:
                share.update(thread_ts=where[2], reply_count=0, reply_users=[])
            shares = {"private" if channel.private else "public": {channel.id: [share]}}
        permalink = (
            f"https://{TEAM_DOMAIN}.slack.com/files/{file.user}/{file.id}/{file.name}"
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
            "user": file.user,
            "user_team": TEAM_ID,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "is_public": shared_public,
            "public_url_shared": False,
            "size": len(file.content),
            "url_private": f"{self._root}/files-pri/{TEAM_ID}-{file.id}/{file.name}",
            "permalink": permalink,
            "channels": [channel.id] if channel is not None and shared_public else [],
            "groups": [channel.id] if channel is not None and channel.private else [],
            "ims": [],
            "shares": shares,
        }

    def store_upload(self, file_id: str, content: bytes) -> bool:
        """Store bytes POSTed to an upload URL; ``False`` if the ID is unknown."""
        with self._lock:
            pending = self._pending.get(file_id)
            if pending is None:
                return False
            pending.content = bytes(content)
            return True
