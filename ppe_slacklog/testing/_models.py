"""Read-back records produced by :class:`~ppe_slacklog.testing.SlackEmulator`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiCall", "EmulatedFile", "EmulatedMessage", "MessageEdit"]

#: User ID of the emulated bot (the author of everything posted with the token).
BOT_USER_ID = "U0000001"


@dataclass(frozen=True)
class EmulatedFile:
    """A file whose upload was completed with ``files.completeUploadExternal``.

    Attributes:
        id: Slack file ID, e.g. ``"F0000001"``.
        name: File name given to ``files.getUploadURLExternal``.
        title: Title given to ``files.completeUploadExternal`` (defaults to
            the name, like Slack).
        content: The exact bytes POSTed to the upload URL.
        channel: ID of the channel the file was shared into, or ``None`` when
            the upload was completed without a channel (a private file).
        thread_ts: ``ts`` of the thread parent the file was shared into.
        initial_comment: The ``initial_comment`` sent with the completion.
        user: User ID of the uploader (the bot, unless a test uploaded the
            file as a person with ``SlackEmulator.upload_as_user``).
        deleted: The file was deleted (``files.delete``): messages that
            shared it show Slack's tombstone, "This file was deleted."

    Example:
        >>> f = EmulatedFile("F1", "a.txt", "A", b"hi", "C0000001", None, None)
        >>> f.content
        b'hi'
    """

    id: str
    name: str
    title: str
    content: bytes = field(repr=False)
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    user: str = BOT_USER_ID
    deleted: bool = False


@dataclass(frozen=True)
class MessageEdit:
    """A previous version of a message, replaced by one ``chat.update``.

    Attributes:
        at: ``time.time()`` of the edit that replaced this version.
        text: The text of the replaced version (as sent).
        blocks: The Block Kit blocks of the replaced version, ``None`` when
            it had none.

    Example:
        >>> MessageEdit(1700000000.5, "🏃 running", None).text
        '🏃 running'
    """

    at: float
    text: str
    blocks: list[dict[str, Any]] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class EmulatedMessage:
    """A message stored by the emulator.

    Attributes:
        ts: Message timestamp (its ID), e.g. ``"1700000000.000100"``.
        channel: Channel ID the message lives in.
        text: Message text (``""`` for a file share without comment or a
            blocks-only message).
        thread_ts: ``ts`` of the thread parent, ``None`` for top-level messages.
        reply_broadcast: Whether a thread reply was also sent to the channel.
        files: Files attached to the message (file shares).
        user: User ID of the author (the emulated bot user).
        metadata: Message metadata posted with ``chat.postMessage``
            (``{"event_type": ..., "event_payload": {...}}``), else ``None``.
        api_text: The text as the Web API returns it (``None``: same as
            ``text``). Slack rewrites what it stores: bare links come back as
            ``<https://...>``, emoji such as ✅ as ``:white_check_mark:``.
            :attr:`text` keeps what was sent, which is what people read.
        deleted: A deleted thread parent kept as Slack's tombstone ("This
            message was deleted.") because the thread has replies.
        blocks: The Block Kit blocks of the current version (as sent, after
            validation), ``None`` for a plain text message.
        edits: The previous versions replaced by ``chat.update``, oldest
            first (empty when never edited).

    Example:
        >>> m = EmulatedMessage("1.000001", "C0000001", "hi", None, False, (), "U1")
        >>> m.is_reply
        False
    """

    ts: str
    channel: str
    text: str
    thread_ts: str | None
    reply_broadcast: bool
    files: tuple[EmulatedFile, ...]
    user: str
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    api_text: str | None = None
    deleted: bool = False
    blocks: list[dict[str, Any]] | None = field(default=None, hash=False)
    edits: list[MessageEdit] = field(default_factory=list, hash=False)

    @property
    def is_reply(self) -> bool:
        """Whether this message is a thread reply."""
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request answered (or dropped) by the emulator.

    The token is never recorded: neither the ``Authorization`` header nor a
    ``token`` parameter ends up in :attr:`params`.

    Attributes:
        method: Web API method name (``"chat.postMessage"``), or ``"upload"``
            for the raw POST of file bytes to an upload URL.
        params: Request parameters (form, JSON or query), without ``token``.
            For ``"upload"``: ``{"file_id": ..., "size": ...}``.
        status: HTTP status sent back; ``0`` when the connection was dropped.
        error: The ``error`` field of the response body, ``None`` when ok.
        time: ``time.time()`` when the request arrived.

    Example:
        >>> ApiCall("auth.test", {}, 200, None, 0.0).ok
        True
    """

    method: str
    params: dict[str, Any]
    status: int
    error: str | None
    time: float

    @property
    def ok(self) -> bool:
        """Whether the call was answered with HTTP 200 and no error."""
        return self.status == 200 and self.error is None
