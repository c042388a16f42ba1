"""Changing what was posted: ``chat.update``, ``files.delete``, Block Kit checks.

Also the test-side actions of people in the workspace that a bot cannot do
through the API: posting and uploading as a person, closing the edit window.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ._blocks import BlockChecker, parse_blocks
from ._metadata import parse_metadata
from ._models import EmulatedFile, EmulatedMessage, MessageEdit
from ._state import (
    BOT_USER_ID,
    MAX_TEXT_CHARS,
    ApiResult,
    Channel,
    PendingShare,
    error_result,
    ok_result,
    text_param,
)
from ._text import stored_text
from ._webhooks import WebhookMethods

__all__ = ["PERSON_USER_ID", "EditMethods"]

#: The person who posts and uploads with ``post_as_user``/``upload_as_user``.
PERSON_USER_ID = "U0000002"

_NOT_GIVEN = object()


class EditMethods(WebhookMethods):
    """Edits and deletions over the stored workspace (mixed into ``Workspace``).

    Example:
        >>> ws = EditMethods(("general",), None, ("chat:write",))
        >>> ts = ws.post_as_user("C0000001", "hi", None)
        >>> ws._chat_update({"channel": "C0000001", "ts": ts, "text": "x"}).error
        'cant_update_message'
    """

    # ------------------------------------------------------------ look-ups

    def _find_message(self, channel_id: str, ts: str) -> int | None:
        for number, message in enumerate(self._messages):
            if message.channel == channel_id and message.ts == ts:
                return number
        return None

    def message(self, channel_id: str, ts: str) -> EmulatedMessage | None:
        """The stored message ``ts`` of ``channel_id`` (current version)."""
        with self._lock:
            self.share_due_files()
            number = self._find_message(channel_id, ts)
            return None if number is None else self._messages[number]

    def file_usable(self, ref: Mapping[str, Any]) -> bool:
        """Whether a ``slack_file`` object names a file messages may show.

        The file must exist, not be deleted, and be shared already (Slack
        refuses private files and files whose share is still under way).
        """
        with self._lock:
            file = self._file_of(ref)
            return file is not None and not file.deleted and file.id in self._shared

    def _file_of(self, ref: Mapping[str, Any]) -> EmulatedFile | None:
        file_id = ref.get("id")
        if isinstance(file_id, str):
            return self._files.get(file_id)
        url = ref.get("url")
        for file in self._files.values():
            shown = self._file_json(file)
            if url in (shown.get("permalink"), shown.get("url_private")):
                return file
        return None

    def _named_file(
        self, params: Mapping[str, Any], scope: str
    ) -> EmulatedFile | ApiResult:
        """The file a ``files.*`` call names, or Slack's refusal.

        The checks ``files.info`` and ``files.delete`` share: the ``scope``,
        ``file_not_found``, ``file_deleted``.
        """
        denied = self._missing_scope(scope)
        if denied:
            return denied
        file = self._files.get(text_param(params, "file") or "")
        if file is None:
            return error_result("file_not_found")
        if file.deleted:
            return error_result("file_deleted")
        return file

    def image_name(self, ref: Mapping[str, Any]) -> str:
        """What an image block's ``slack_file`` shows: the file's name."""
        with self._lock:
            file = self._file_of(ref)
        if file is None:
            return str(ref.get("id") or ref.get("url") or "?")
        return f"{file.name} (deleted)" if file.deleted else file.name

    def checked_blocks(
        self, raw: Any
    ) -> tuple[list[dict[str, Any]] | None, ApiResult | None]:
        """Parse and validate a ``blocks`` argument.

        Returns:
            ``(blocks, None)`` (``None`` when absent), or ``(None, error)``.
        """
        blocks, bad_format = parse_blocks(raw)
        if bad_format:
            return None, error_result(bad_format)
        if blocks:
            refused = BlockChecker(self.file_usable).result(blocks)
            if refused is not None:
                return None, refused
        return blocks, None

    def _named_channel(
        self, params: Mapping[str, Any], scope: str, *, allow_names: bool
    ) -> Channel | ApiResult:
        """The channel a call names, or Slack's refusal.

        The ``scope`` must be granted, and the channel visible to the bot
        (else ``channel_not_found``).
        """
        denied = self._missing_scope(scope)
        if denied:
            return denied
        channel = self._visible(
            self._lookup(text_param(params, "channel") or "", allow_names=allow_names)
        )
        if channel is None:
            return error_result("channel_not_found")
        return channel

    def _writable_channel(
        self, params: Mapping[str, Any], *, allow_names: bool
    ) -> Channel | ApiResult:
        """The channel a message write names, or Slack's refusal.

        The checks ``chat.postMessage`` and ``chat.update`` share, in Slack's
        order: the ``chat:write`` scope, ``channel_not_found``,
        ``not_in_channel`` (unless ``chat:write.public`` covers a public
        channel), ``is_archived``.
        """
        channel = self._named_channel(params, "chat:write", allow_names=allow_names)
        if isinstance(channel, ApiResult):
            return channel
        public_post = not channel.private and "chat:write.public" in self.scopes
        if not channel.member and not public_post:
            return error_result("not_in_channel")
        if channel.archived:
            return error_result("is_archived")
        return channel

    def _checked_content(
        self, params: Mapping[str, Any]
    ) -> tuple[str | None, list[dict[str, Any]] | None, ApiResult | None]:
        """A message write's ``text`` and checked ``blocks``.

        Returns:
            ``(text, blocks, None)``, or ``(None, None, error)`` when the
            blocks are refused or there is nothing to show (``no_text``).
        """
        text = text_param(params, "text")
        blocks, refused = self.checked_blocks(params.get("blocks"))
        if refused is not None:
            return None, None, refused
        if not text and not blocks and not params.get("attachments"):
            return None, None, error_result("no_text")
        return text, blocks, None

    # ------------------------------------------------------------ methods

    def _chat_update(self, params: Mapping[str, Any]) -> ApiResult:
        # Unlike chat.postMessage, chat.update takes conversation IDs only.
        channel = self._writable_channel(params, allow_names=False)
        if isinstance(channel, ApiResult):
            return channel
        ts = text_param(params, "ts") or ""
        number = self._find_message(channel.id, ts)
        if number is None or self._messages[number].deleted:
            return error_result("message_not_found")
        message = self._messages[number]
        if message.user != BOT_USER_ID:
            return error_result("cant_update_message")
        if (channel.id, ts) in self._edit_closed:
            return error_result("edit_window_closed")
        text, blocks, refused = self._checked_content(params)
        if refused is not None:
            return refused
        if text is not None and len(text) > MAX_TEXT_CHARS:
            return error_result("msg_too_long")
        metadata: Any = _NOT_GIVEN
        raw_metadata = params.get("metadata")
        if raw_metadata in ({}, "{}"):
            metadata = None  # an empty object removes the metadata
        elif raw_metadata not in (None, ""):
            metadata, bad_metadata = parse_metadata(raw_metadata)
            if bad_metadata:
                return error_result(bad_metadata)
        if blocks is not None:
            new_blocks = blocks or None  # [] removes the blocks
        elif text is not None:
            # docs.slack.dev chat.update: text without blocks removes them.
            new_blocks = None
        else:
            new_blocks = message.blocks
        edit = MessageEdit(time.time(), message.text, message.blocks)
        updated = replace(
            message,
            text=text or "",
            api_text=stored_text(text or ""),
            blocks=new_blocks,
            edits=[*message.edits, edit],
            metadata=message.metadata if metadata is _NOT_GIVEN else metadata,
        )
        self._messages[number] = updated
        body = self._message_json(updated, {})
        return ok_result(channel=channel.id, ts=ts, text=body["text"], message=body)

    def _files_delete(self, params: Mapping[str, Any]) -> ApiResult:
        file = self._named_file(params, "files:write")
        if isinstance(file, ApiResult):
            return file
        if file.user != BOT_USER_ID:
            return error_result("cant_delete_file")
        self._delete_file(file)
        return ok_result()

    def _delete_file(self, file: EmulatedFile) -> None:
        gone = replace(file, deleted=True, content=b"")
        self._files[file.id] = gone
        self._shared.pop(file.id, None)
        shares: list[PendingShare] = []
        for share in self._shares:
            kept = tuple(f for f in share.files if f.id != file.id)
            if kept or share.comment:
                shares.append(replace(share, files=kept))
        self._shares = shares
        for message in [
            m for m in self._messages if any(f.id == file.id for f in m.files)
        ]:
            files = tuple(gone if f.id == file.id else f for f in message.files)
            number = self._find_message(message.channel, message.ts)
            if number is None:
                continue
            only_files = not message.text and not message.blocks
            if only_files and all(f.deleted for f in files):
                # Nothing left to show: the file message goes away (a
                # thread parent with replies leaves Slack's tombstone).
                self.delete_message(message.channel, message.ts)
            else:
                self._messages[number] = replace(message, files=files)

    # ------------------------------------------------------- test actions

    def close_edit_window(self, channel_id: str, ts: str) -> bool:
        """Make ``chat.update`` of one message answer ``edit_window_closed``."""
        with self._lock:
            if self._find_message(channel_id, ts) is None:
                return False
            self._edit_closed.add((channel_id, ts))
            return True

    def post_as_user(self, channel_id: str, text: str, thread_ts: str | None) -> str:
        """Store a message by a person (not the bot); return its ``ts``."""
        with self._lock:
            if thread_ts is not None:
                resolved = self._resolve_thread(channel_id, thread_ts)
                if resolved is None:
                    raise KeyError(f"no message {thread_ts} in {channel_id}")
                thread_ts = resolved
            message = EmulatedMessage(
                ts=self._next_ts(),
                channel=channel_id,
                text=text,
                thread_ts=thread_ts,
                reply_broadcast=False,
                files=(),
                user=PERSON_USER_ID,
                api_text=stored_text(text),
            )
            self._messages.append(message)
            return message.ts

    def upload_as_user(
        self, channel_id: str, name: str, content: bytes, thread_ts: str | None
    ) -> str:
        """Share a file uploaded by a person at once; return its ID."""
        with self._lock:
            if (
                thread_ts is not None
                and self._find_message(channel_id, thread_ts) is None
            ):
                raise KeyError(f"no message {thread_ts} in {channel_id}")
            self._file_counter += 1
            file = EmulatedFile(
                id=f"F{self._file_counter:07d}",
                name=name,
                title=name,
                content=bytes(content),
                channel=channel_id,
                thread_ts=thread_ts,
                initial_comment=None,
                user=PERSON_USER_ID,
            )
            self._files[file.id] = file
            self._file_order.append(file.id)
            self._post_share(PendingShare(0.0, (file,), channel_id, thread_ts, None))
            return file.id
