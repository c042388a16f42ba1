"""Web API methods implemented by the emulator, acting on its state."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._editing import EditMethods
from ._metadata import parse_metadata
from ._models import EmulatedFile, EmulatedMessage
from ._state import (
    BOT_ID,
    BOT_USER_ID,
    BOT_USER_NAME,
    MAX_TEXT_CHARS,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    ApiResult,
    Channel,
    PendingShare,
    PendingUpload,
    error_result,
    flag_param,
    ok_result,
    text_param,
)
from ._text import stored_text

__all__ = ["Workspace"]


class Workspace(EditMethods):
    """Workspace state plus the Web API methods (and webhooks) that act on it.

    Example:
        >>> ws = Workspace(("general",), None, ("chat:write",))
        >>> ws.execute("chat.postMessage", {"channel": "general", "text": "hi"}).status
        200
    """

    def __init__(
        self,
        channels: Iterable[str],
        member_of: Iterable[str] | None,
        scopes: Iterable[str],
    ) -> None:
        """Create the channels; the bot joins ``member_of`` (``None``: all)."""
        super().__init__(channels, member_of, scopes)
        self._handlers: dict[str, Callable[[Mapping[str, Any]], ApiResult]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.list": self._conversations_list,
            "conversations.replies": self._conversations_replies,
            "files.completeUploadExternal": self._files_complete,
            "files.delete": self._files_delete,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.info": self._files_info,
            "files.upload": self._files_upload_retired,
        }

    def knows(self, method: str) -> bool:
        """Whether ``method`` is an implemented Web API method."""
        return method in self._handlers

    def execute(self, method: str, params: Mapping[str, Any]) -> ApiResult:
        """Run an (already authenticated) API method."""
        with self._lock:
            self.share_due_files()
            return self._handlers[method](params)

    # ---------------------------------------------------------------- methods

    def _auth_test(self, params: Mapping[str, Any]) -> ApiResult:
        return ok_result(
            url=f"https://{TEAM_DOMAIN}.slack.com/",
            team=TEAM_NAME,
            user=BOT_USER_NAME,
            team_id=TEAM_ID,
            user_id=BOT_USER_ID,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _chat_post_message(self, params: Mapping[str, Any]) -> ApiResult:
        channel = self._writable_channel(params, allow_names=True)
        if isinstance(channel, ApiResult):
            return channel
        if channel.restricted:
            return error_result("restricted_action")
        text, blocks, refused = self._checked_content(params)
        if refused is not None:
            return refused
        warnings: list[str] = []
        if text is not None and len(text) > MAX_TEXT_CHARS:
            # Slack keeps the first 40,000 characters and says so only in a
            # warning (changelog 2018-04, "truncating really long messages").
            text = text[:MAX_TEXT_CHARS]
            warnings.append("message_truncated")
        metadata, bad_metadata = parse_metadata(params.get("metadata"))
        if bad_metadata:
            return error_result(bad_metadata)
        thread_ts: str | None = None
        orphan = False
        requested = text_param(params, "thread_ts")
        if requested:
            thread_ts = self._resolve_thread(channel.id, requested)
            if thread_ts is None:
                # Slack answers ok and stores the reply where nobody sees it
                # (python-slack-sdk #840, node-slack-sdk #780).
                thread_ts, orphan = requested, True
        message = EmulatedMessage(
            ts=self._next_ts(),
            channel=channel.id,
            text=text or "",
            thread_ts=thread_ts,
            reply_broadcast=thread_ts is not None
            and not orphan
            and flag_param(params, "reply_broadcast"),
            files=(),
            user=BOT_USER_ID,
            metadata=metadata,
            api_text=stored_text(text or ""),
            blocks=blocks or None,
        )
        (self._orphans if orphan else self._messages).append(message)
        extra = {k: params[k] for k in ("attachments",) if params.get(k)}
        if metadata is not None:
            extra["metadata"] = copy.deepcopy(metadata)
        result = ok_result(
            channel=channel.id,
            ts=message.ts,
            message=self._message_json(message, extra),
        )
        if warnings:
            result.body["warning"] = ",".join(warnings)
            result.body["response_metadata"] = {"warnings": warnings}
        return result

    def _files_get_upload_url(self, params: Mapping[str, Any]) -> ApiResult:
        denied = self._missing_scope("files:write")
        if denied:
            return denied
        filename = text_param(params, "filename")
        length_text = text_param(params, "length")
        if not filename or length_text is None:
            missing = "filename" if not filename else "length"
            return error_result(
                "invalid_arguments",
                response_metadata={
                    "messages": [f"[ERROR] missing required field: {missing}"]
                },
            )
        try:
            length = int(length_text)
        except ValueError:
            return error_result("invalid_arguments")
        if length < 1:
            return error_result("invalid_arguments")
        self._file_counter += 1
        file_id = f"F{self._file_counter:07d}"
        self._pending[file_id] = PendingUpload(file_id, filename, length)
        return ok_result(
            upload_url=f"{self._root}/upload/v1/{file_id}", file_id=file_id
        )

    def _parse_file_items(self, raw: Any) -> list[dict[str, Any]] | None:
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            return None
        if not isinstance(items, list) or not items:
            return None
        if not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
            return None
        return items

    def _files_complete(self, params: Mapping[str, Any]) -> ApiResult:
        denied = self._missing_scope("files:write")
        if denied:
            return denied
        items = self._parse_file_items(params.get("files"))
        if items is None:
            return error_result("invalid_arguments")
        targets: list[str] = []
        if text_param(params, "channel_id"):
            targets.append(text_param(params, "channel_id") or "")
        if text_param(params, "channels"):
            targets.extend(
                c.strip() for c in (text_param(params, "channels") or "").split(",")
            )
        targets = list(dict.fromkeys(t for t in targets if t))
        thread_ts = text_param(params, "thread_ts") or None
        if thread_ts and len(targets) != 1:
            return error_result("invalid_arguments")
        channels: list[Channel] = []
        for target in targets:
            channel = self._visible(self._lookup(target, allow_names=False))
            if channel is None:
                return error_result("channel_not_found")
            if not channel.member:
                return error_result("not_in_channel")
            channels.append(channel)
        if thread_ts:
            resolved = self._resolve_thread(channels[0].id, thread_ts)
            if resolved is None:
                return error_result("thread_not_found")
            thread_ts = resolved
        for item in items:
            pending = self._pending.get(item["id"])
            if pending is None or pending.content is None:
                return error_result("file_not_found")
        comment = text_param(params, "initial_comment")
        completed: list[EmulatedFile] = []
        for item in items:
            pending = self._pending.pop(item["id"])
            title = item.get("title")
            completed.append(
                EmulatedFile(
                    id=pending.file_id,
                    name=pending.filename,
                    title=str(title) if title else pending.filename,
                    content=pending.content or b"",
                    channel=channels[0].id if channels else None,
                    thread_ts=thread_ts,
                    initial_comment=comment,
                )
            )
        for file in completed:
            self._files[file.id] = file
            self._file_order.append(file.id)
        for channel in channels:
            # Sharing is asynchronous in Slack: the answer's files are not
            # shared yet, their message comes ``share_delay`` seconds later
            # (bolt-js #2115, python-slack-sdk #1590 and #1521).
            self._shares.append(
                PendingShare(
                    due=time.monotonic() + self.share_delay,
                    files=tuple(completed),
                    channel=channel.id,
                    thread_ts=thread_ts,
                    comment=comment,
                )
            )
        answer = [self._file_json(f) for f in completed]
        if self.share_delay <= 0:
            self.share_due_files()
        return ok_result(files=answer)

    def _files_info(self, params: Mapping[str, Any]) -> ApiResult:
        file = self._named_file(params, "files:read")
        if isinstance(file, ApiResult):
            return file
        return ok_result(
            file=self._file_json(file),
            comments=[],
            response_metadata={"next_cursor": ""},
        )

    def _files_upload_retired(self, params: Mapping[str, Any]) -> ApiResult:
        # files.upload was sunset on 2025-11-12; use files_upload_v2 instead.
        return error_result("method_deprecated")

    def _conversations_list(self, params: Mapping[str, Any]) -> ApiResult:
        types = {
            t.strip()
            for t in (text_param(params, "types") or "public_channel").split(",")
            if t.strip()
        }
        denied = self._missing_scope("channels:read")
        if denied is None and "private_channel" in types:
            denied = self._missing_scope("groups:read")
        if denied:
            return denied
        try:
            limit = int(text_param(params, "limit") or "100")
        except ValueError:
            return error_result("invalid_limit")
        limit = min(max(limit, 1), 1000)
        listed = [
            c
            for c in self._channels.values()
            if ("private_channel" if c.private else "public_channel") in types
            and self._visible(c) is not None
            and not (c.archived and flag_param(params, "exclude_archived"))
        ]
        start = 0
        cursor = text_param(params, "cursor")
        if cursor:
            try:
                after = base64.b64decode(cursor, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return error_result("invalid_cursor")
            ids = [c.id for c in listed]
            if not after.startswith("channel:") or after[8:] not in ids:
                return error_result("invalid_cursor")
            start = ids.index(after[8:])
        page = listed[start : start + limit]
        next_cursor = ""
        if start + limit < len(listed):
            next_id = listed[start + limit].id
            next_cursor = base64.b64encode(f"channel:{next_id}".encode()).decode()
        return ok_result(
            channels=[self._channel_json(c) for c in page],
            response_metadata={"next_cursor": next_cursor},
        )

    def _conversations_info(self, params: Mapping[str, Any]) -> ApiResult:
        channel = self._named_channel(params, "channels:read", allow_names=False)
        if isinstance(channel, ApiResult):
            return channel
        return ok_result(channel=self._channel_json(channel))

    def _conversations_join(self, params: Mapping[str, Any]) -> ApiResult:
        denied = self._missing_scope("channels:join")
        if denied:
            return denied
        channel = self._lookup(text_param(params, "channel") or "", allow_names=False)
        if channel is None:
            return error_result("channel_not_found")
        if channel.private:
            return error_result("method_not_supported_for_channel_type")
        if channel.archived:
            return error_result("is_archived")
        if channel.member:
            return ok_result(
                channel=self._channel_json(channel),
                warning="already_in_channel",
                response_metadata={"warnings": ["already_in_channel"]},
            )
        channel.member = True
        return ok_result(channel=self._channel_json(channel))
