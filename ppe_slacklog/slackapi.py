"""The only module that talks to slack_sdk: post, upload (v2), channel IDs, errors.

Everything above this module deals in :class:`Posted` results and
:class:`SlackDeliveryError` exceptions, never in slack_sdk types.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, ClassVar, Final

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from ._diagnostics import Once
from .stats import DeliveryCounters

__all__ = [
    "DEFAULT_BASE_URL",
    "FileData",
    "Posted",
    "SlackApi",
    "SlackDeliveryError",
    "resolve_base_url",
    "resolve_token",
    "silent_logger",
]

DEFAULT_BASE_URL: Final = WebClient.BASE_URL

# How far back (in pages of 200) to look for an unanswered post.
_MAX_HISTORY_PAGES: Final = 10
# The metadata event type that marks this library's posts.
_METADATA_EVENT: Final = "ppe_slacklog_post"
# After a lost completion answer: how long to wait for Slack to share the
# upload (shares are asynchronous, python-slack-sdk #1521 and #1590), and
# how often to ask meanwhile.
_SHARE_WAIT: Final = 10.0
_SHARE_POLL: Final = 1.0
# History (without files:read) is read every this many seconds, the first
# time after Slack usually shared the file (about a second).
_HISTORY_POLL: Final = 2.5
# Answer warnings that say nothing about delivery (Slack's Web API basics).
_QUIET_WARNINGS: Final = frozenset(
    {"missing_charset", "superfluous_charset", "already_in_channel"}
)

# Slack IDs of conversations; names are lowercase, so they never match.
_CHANNEL_ID: Final = re.compile(r"^[CGD][A-Z0-9]{6,}$")

# What to tell the user for each error Slack may answer that retrying cannot
# fix. "{channel}" and "{needed}" are filled in when known.
_FIXES: Final[dict[str, str]] = {
    "not_authed": "no token reached Slack: set SLACK_BOT_TOKEN or pass token=",
    "invalid_auth": (
        "Slack rejected the token: check SLACK_BOT_TOKEN or the token= argument "
        "(a bot token starts with 'xoxb-') and that the app is installed"
    ),
    "account_inactive": "the token's app or user was deactivated: reinstall the app",
    "token_revoked": "the token was revoked: reinstall the app and use its new token",
    "token_expired": "the token expired: refresh it or reinstall the app",
    "channel_not_found": (
        "no channel {channel} is visible to the bot: check the name or ID; a "
        "private channel needs the bot invited first (/invite @your-bot)"
    ),
    "not_in_channel": (
        "the bot is not a member of {channel}: invite it with "
        "'/invite @your-bot' in that channel"
    ),
    "cannot_join": (
        "the bot is not a member of {channel} and cannot join it by itself "
        "({why}): invite it with '/invite @your-bot' in that channel"
    ),
    "is_archived": "{channel} is archived: unarchive it or choose another channel",
    "missing_scope": (
        "the token lacks the scope '{needed}': add it under OAuth & Permissions "
        "of your Slack app and reinstall the app"
    ),
    "msg_too_long": "the message is longer than Slack accepts",
    "no_text": "the message was empty",
    "thread_not_found": "the thread to reply to no longer exists in {channel}",
    "restricted_action": "the workspace does not allow the bot to post in {channel}",
    "method_deprecated": "this Slack API method was retired",
    "invalid_blocks": "Slack refused the message's Block Kit blocks",
    "msg_blocks_too_long": "the message's blocks are longer than Slack accepts",
    "message_not_found": "the message to edit no longer exists in {channel}",
    "cant_update_message": "the bot cannot edit that message in {channel}",
    "edit_window_closed": "the workspace no longer allows editing that message",
}


class SlackDeliveryError(Exception):
    """Slack did not accept a request.

    Attributes:
        code: Slack's error code (``invalid_auth``, ``not_in_channel``, ...),
            or ``connection_error`` / ``http_<status>`` when Slack never
            answered with one.
        permanent: ``True`` when sending the same request again cannot help.
        ambiguous: ``True`` when Slack may have acted on the request anyway
            (a 5xx answer, HTTP 200 ``fatal_error`` / ``internal_error``, a
            connection lost after sending, a timeout).
        fix: What the user can do about it.
        retry_after: Seconds Slack asked to wait (a 429's ``Retry-After``);
            ``None`` when Slack did not rate-limit the request.
    """

    def __init__(
        self,
        code: str,
        *,
        channel: str,
        permanent: bool,
        fix: str,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.channel = channel
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.fix = fix
        self.retry_after = retry_after
        super().__init__(f"Slack error '{code}' for {channel}: {fix}")


@dataclass(frozen=True)
class Posted:
    """Where Slack put a message."""

    channel_id: str
    ts: str


@dataclass(frozen=True)
class FileData:
    """A file's name and its bytes, read when the event was logged."""

    name: str
    content: bytes


def resolve_token(token: str | None) -> str | None:
    """The explicit token, else ``SLACK_BOT_TOKEN``, else ``None``."""
    return token if token else os.environ.get("SLACK_BOT_TOKEN") or None


def resolve_base_url(base_url: str | None) -> str:
    """The explicit API URL, else ``SLACK_API_URL``, else Slack's own.

    Example:
        >>> resolve_base_url("http://127.0.0.1:8080/api")
        'http://127.0.0.1:8080/api/'
    """
    url = base_url or os.environ.get("SLACK_API_URL") or DEFAULT_BASE_URL
    # WebClient joins method names onto the URL, so it must end with "/".
    return url if url.endswith("/") else url + "/"


# Server trouble that Slack may answer with HTTP 200; its docs say part of
# the operation may have succeeded (python-slack-sdk #1333), like a 5xx.
_SERVER_TROUBLE_CODES: Final = frozenset({"fatal_error", "internal_error"})

# Slack's names for a failure on its side, whatever the HTTP status.
_TRANSIENT_CODES: Final = frozenset(
    {
        "ratelimited",
        "fatal_error",
        "internal_error",
        "service_unavailable",
        "request_timeout",
    }
)

# What slack_sdk's clients raise when no HTTP answer came back: urllib's
# URLError and timeouts are OSErrors, a closed socket an HTTPException.
_CONNECTION_ERRORS: Final = (SlackClientError, HTTPException, OSError)


def _is_transient(status: int, code: str) -> bool:
    """Whether an error answer may pass if the request is sent again later.

    Rate limits and server errors outlived slack_sdk's retries: worth trying
    again later. Everything Slack refused by name is permanent.

    Example:
        >>> _is_transient(503, "http_503"), _is_transient(200, "not_in_channel")
        (True, False)
    """
    return status == 429 or status >= 500 or code in _TRANSIENT_CODES


def _connection_error(
    exc: BaseException, where: str, *, redact: Callable[[str], str] = str
) -> SlackDeliveryError:
    """The transient error for a request that Slack never answered.

    A refused connection never reached Slack; anything else (a reset, a
    timeout) may have come after Slack acted, so it is ambiguous.

    Args:
        exc: What the HTTP client raised (one of ``_CONNECTION_ERRORS``).
        where: Channel (or label) the request was for.
        redact: Cleans the exception text of secrets before it is shown.

    Example:
        >>> _connection_error(ConnectionRefusedError("refused"), "#a").ambiguous
        False
    """
    return SlackDeliveryError(
        "connection_error",
        channel=where,
        permanent=False,
        ambiguous=not isinstance(exc, ConnectionRefusedError)
        and "refused" not in str(exc),
        fix=redact(f"Slack could not be reached ({type(exc).__name__}: {exc})"),
    )


def _without_retries(client: WebClient) -> WebClient:
    """``client``, or a copy of it that retries nothing and logs nothing.

    A client passed in by the user may carry slack_sdk's retry handlers: its
    429 handler would sleep a ``Retry-After`` (a minute, for history) on the
    sender thread outside the channel's pacing, and its connection-error
    handler would resend posts that Slack may have stored. The outbox does
    both itself, paced and checked. The user's client is left as it is.
    """
    if not client.retry_handlers and getattr(client, "_logger", None) is _SILENT:
        return client
    ours = copy.copy(client)
    ours.retry_handlers = []
    ours._logger = _SILENT
    return ours


def silent_logger() -> logging.Logger:
    """A logger for slack_sdk's clients that records nothing and takes no lock.

    slack_sdk logs one line per failed request (an ERROR on every connection
    failure) and its debug lines quote URLs: with the user's logging
    configured, an outage would print a line per retry. The outbox reports
    each problem once instead. The logger is disabled and not registered
    with :mod:`logging`, so no configuration turns it back on, and it never
    asks for the logging module's lock (held while ``dictConfig`` runs).

    Example:
        >>> silent_logger().isEnabledFor(logging.CRITICAL)
        False
    """
    return _SILENT


_SILENT: Final = logging.Logger("ppe_slacklog.transport")
_SILENT.disabled = True


class SlackApi:
    """Posts messages and uploads files through a ``slack_sdk.WebClient``.

    Args:
        client: A ready client. :meth:`create` builds one without slack_sdk's
            retry handlers: a 429 is answered by the outbox's pacer (which
            waits ``Retry-After`` for every post to the channel, not just
            this one), and 5xx answers and connection errors are retried by
            the outbox after checking for an already stored post.
        stats: Counters shared with the outbox.

    Example:
        >>> api = SlackApi.create(token="xoxb-...", base_url=None)  # doctest: +SKIP
        >>> api.post("experiment-progress", "hello").ts  # doctest: +SKIP
        '1700000000.000100'
    """

    # What this transport can do; a webhook transport (which posts only,
    # top-level, without reading back) has these False.
    can_thread: ClassVar[bool] = True
    """Replies can go into a thread (``thread_ts``)."""
    can_upload: ClassVar[bool] = True
    """Files can be shared (:meth:`upload`)."""
    can_look_back: ClassVar[bool] = True
    """Earlier posts can be found (:meth:`find_posted`, :meth:`find_upload`)."""

    def __init__(
        self, client: WebClient, stats: DeliveryCounters | None = None
    ) -> None:
        self._client = _without_retries(client)
        self._channel_ids: dict[str, str] = {}
        # Why the bot could not join a channel: it asks Slack once, then only
        # posts (which work again as soon as someone invites the bot).
        self._cannot_join: dict[str, SlackDeliveryError] = {}
        self.stats = stats if stats is not None else DeliveryCounters()
        self._once = Once()

    @classmethod
    def create(
        cls, *, token: str, base_url: str | None, timeout: float = 15.0
    ) -> SlackApi:
        """Builds a client that retries nothing itself and logs nothing."""
        client = WebClient(
            token=token,
            base_url=resolve_base_url(base_url),
            timeout=max(1, round(timeout)),
            # Retries belong to the outbox, which paces them (see the class).
            retry_handlers=[],
            logger=silent_logger(),
        )
        return cls(client)

    def __repr__(self) -> str:
        # WebClient's own repr is the default one, but keep the token out
        # of anything this object prints on principle.
        return f"<SlackApi base_url={self._client.base_url!r}>"

    @property
    def base_url(self) -> str:
        """The API URL the client talks to."""
        return str(self._client.base_url)

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
        """Posts ``text`` (``chat.postMessage``), in a thread when ``thread_ts``.

        ``message_id`` travels as message metadata so that :meth:`find_posted`
        can tell later whether Slack stored a post whose answer was lost;
        ``run_id`` (the run whose thread the post belongs to) travels with it,
        so that a run's thread can be found in Slack (``ppe-slacklog replay``).
        With ``blocks`` (Block Kit, a live card), ``text`` is the fallback
        that notifications show.
        """
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = list(blocks)
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
            if reply_broadcast:
                kwargs["reply_broadcast"] = True
        if message_id is not None:
            kwargs["metadata"] = {
                "event_type": _METADATA_EVENT,
                "event_payload": {"id": message_id},
            }
            if run_id:
                kwargs["metadata"]["event_payload"]["run_id"] = run_id
        response = self._joining(channel, self._client.chat_postMessage, **kwargs)
        channel_id = str(response.get("channel") or channel)
        if _CHANNEL_ID.match(channel_id):
            self._channel_ids[channel] = channel_id
        return Posted(channel_id=channel_id, ts=str(response.get("ts")))

    def update(
        self,
        channel: str,
        ts: str,
        text: str,
        *,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> Posted:
        """Replaces message ``ts`` with ``text`` and ``blocks`` (``chat.update``).

        Slack wants the channel's ID here; a name is looked up once.
        """
        kwargs: dict[str, Any] = {
            "channel": self.channel_id(channel),
            "ts": ts,
            "text": text,
        }
        if blocks is not None:
            kwargs["blocks"] = list(blocks)
        response = self._call(channel, self._client.chat_update, **kwargs)
        return Posted(
            channel_id=str(response.get("channel") or kwargs["channel"]),
            ts=str(response.get("ts") or ts),
        )

    def delete_file(self, channel: str, file_id: str) -> None:
        """Deletes an uploaded file (``files.delete``): a chart that was replaced."""
        self._call(channel, self._client.files_delete, file=file_id)

    def sibling(self) -> SlackApi:
        """Another transport on the same client, with counters of its own.

        For a second thread (the live cards'): the counters have one writer each.
        """
        return SlackApi(self._client)

    def find_posted(
        self, channel: str, message_id: str, *, thread_ts: str | None, oldest: float
    ) -> Posted | None:
        """The message posted with ``message_id`` since ``oldest``, if Slack has it.

        Reads ``conversations.replies`` (in a thread) or
        ``conversations.history``; needs the ``channels:history`` scope (or
        ``groups:history`` for private channels).
        """
        for channel_id, message in self._recent(channel, thread_ts, oldest):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == _METADATA_EVENT
                and payload.get("id") == message_id
            ):
                return Posted(channel_id=channel_id, ts=str(message.get("ts")))
        return None

    def find_upload(
        self,
        channel: str,
        file_ids: Sequence[str],
        *,
        thread_ts: str | None,
        oldest: float,
    ) -> bool:
        """Whether Slack shared the upload of ``file_ids`` into ``channel``.

        Used before sending an upload again whose completion went unanswered.
        Sharing is asynchronous in Slack (the completion's answer often has
        no shares yet, and the file message may come after later replies),
        so the files are looked up by ID, waiting up to ``_SHARE_WAIT``
        seconds for the share: ``files.info`` (needs ``files:read``), else
        the thread or channel history (``channels:history``) since
        ``oldest`` (the attempt; a file message is never older), read a few
        times only, the first time after the share usually happened: some
        apps may read history once a minute.
        """
        if not file_ids:
            return False
        channel_id = self.channel_id(channel)
        deadline = time.monotonic() + _SHARE_WAIT
        use_info = True
        while True:
            if use_info:
                try:
                    state = self._file_state(channel, file_ids[0], channel_id)
                except SlackDeliveryError as exc:
                    if not exc.permanent or exc.code == "rate_limited_look_up":
                        raise
                    use_info = False  # no files:read: read the history instead
                    continue
                if state != "pending":
                    return state == "shared"
            else:
                time.sleep(_HISTORY_POLL)
                if self._in_history(channel, file_ids, thread_ts, oldest):
                    return True
                if time.monotonic() + _HISTORY_POLL > deadline:
                    return False
                continue
            if time.monotonic() + _SHARE_POLL > deadline:
                return False
            time.sleep(_SHARE_POLL)

    def _file_state(self, channel: str, file_id: str, channel_id: str) -> str:
        """``"shared"`` into ``channel_id``, ``"pending"`` or ``"missing"``."""
        try:
            response = self._look_up(channel, self._client.files_info, file=file_id)
        except SlackDeliveryError as exc:
            if exc.code == "file_not_found":
                return "missing"  # the completion never took effect
            raise
        info = response.get("file") or {}
        shared = set(info.get("channels") or []) | set(info.get("groups") or [])
        for scope in (info.get("shares") or {}).values():
            shared.update(scope or {})
        return "shared" if channel_id in shared else "pending"

    def _in_history(
        self,
        channel: str,
        file_ids: Sequence[str],
        thread_ts: str | None,
        oldest: float,
    ) -> bool:
        wanted = set(file_ids)
        # The file message comes after the attempt, but perhaps after later
        # replies too: everything since the attempt is read.
        for _, message in self._recent(channel, thread_ts, oldest):
            if wanted & {str(f.get("id")) for f in message.get("files") or []}:
                return True
        return False

    def thread_exists(self, channel: str, ts: str) -> bool | None:
        """Whether the message ``ts`` of ``channel`` (a thread's parent) exists.

        Slack accepts a reply to a parent that is gone (deleted, or of
        another channel) and shows it nowhere (python-slack-sdk #840), so a
        thread this process did not start is checked before posting into it.

        Returns:
            ``None`` when the token cannot read the history (no
            ``channels:history`` scope): the caller trusts the thread.

        Raises:
            SlackDeliveryError: Slack is unreachable or failing (transient),
                or limits reading history (``rate_limited_look_up``: ask
                again later).
        """
        try:
            return self._head(channel, ts) is not None
        except SlackDeliveryError as exc:
            if exc.code == "thread_not_found":
                return False
            if exc.permanent and exc.code != "rate_limited_look_up":
                return None
            raise

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message ``ts`` of ``channel`` as Slack stores it (text, blocks).

        ``None`` when it is not there or the token cannot read the history.

        Raises:
            SlackDeliveryError: Slack is unreachable or failing (transient).
        """
        try:
            return self._head(channel, ts)
        except SlackDeliveryError as exc:
            if exc.permanent:
                return None
            raise

    def _head(self, channel: str, ts: str) -> dict[str, Any] | None:
        """Message ``ts`` read as the head of its thread (``None``: not there)."""
        response = self._look_up(
            channel,
            self._client.conversations_replies,
            channel=self.channel_id(channel),
            ts=ts,
            limit=1,
        )
        messages = response.get("messages") or []
        if not messages or str(messages[0].get("ts")) != ts:
            return None
        found: dict[str, Any] = messages[0]
        return found

    def _look_up(self, where: str, method: Any, **kwargs: Any) -> Any:
        try:
            return self._call(where, method, **kwargs)
        except SlackDeliveryError as exc:
            if exc.code != "ratelimited":
                raise
            raise SlackDeliveryError(
                "rate_limited_look_up",
                channel=where,
                permanent=True,
                fix=(
                    "Slack rate-limits reading the channel for this app "
                    "(commercially distributed apps outside the Slack "
                    "Marketplace may read history once a minute)"
                ),
            ) from None

    def _recent(
        self, channel: str, thread_ts: str | None, oldest: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Messages of ``channel`` (or of a thread) since ``oldest``, page by page."""
        channel_id = self.channel_id(channel)
        kwargs: dict[str, Any] = {
            "channel": channel_id,
            "oldest": f"{oldest:.6f}",
            "include_all_metadata": True,
            "limit": 200,
        }
        if thread_ts is not None:
            method = self._client.conversations_replies
            kwargs["ts"] = thread_ts
        else:
            method = self._client.conversations_history
        for _ in range(_MAX_HISTORY_PAGES):
            response = self._look_up(channel, method, **kwargs)
            for message in response.get("messages") or []:
                yield channel_id, message
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
            kwargs["cursor"] = cursor

    def upload(
        self,
        channel: str,
        files: Sequence[FileData],
        *,
        comment: str | None,
        thread_ts: str | None,
        on_staged: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        """Shares ``files`` into ``channel`` (a thread when ``thread_ts``).

        Drives Slack's current flow step by step (``files.getUploadURLExternal``
        and the upload of the bytes per file, then one
        ``files.completeUploadExternal``), as slack_sdk's ``files_upload_v2``
        does, so that the file IDs are known before the completion:
        ``on_staged`` gets them, and :meth:`find_upload` can tell later
        whether a completion whose answer was lost took effect. The retired
        ``files.upload`` is never called.
        """
        channel_id = self.channel_id(channel)
        file_ids = tuple(self._stage(channel, f) for f in files)
        if on_staged is not None:
            on_staged(file_ids)
        kwargs: dict[str, Any] = {
            "files": [
                {"id": i, "title": f.name} for i, f in zip(file_ids, files, strict=True)
            ],
            "channel_id": channel_id,
        }
        if comment:
            kwargs["initial_comment"] = comment
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        self._joining(channel, self._client.files_completeUploadExternal, **kwargs)

    def _stage(self, channel: str, file: FileData) -> str:
        """Gets an upload URL for ``file`` and sends its bytes; returns its ID."""
        client = self._client
        response = self._call(
            channel,
            client.files_getUploadURLExternal,
            filename=file.name,
            length=len(file.content),
        )
        self.stats.api_calls += 1
        try:
            result = client._upload_file(
                url=str(response["upload_url"]),
                data=file.content,
                logger=client.logger,
                timeout=client.timeout,
                proxy=client.proxy,
                ssl=client.ssl,
            )
        except _CONNECTION_ERRORS as exc:
            # Bytes without a completion are never shared: not ambiguous.
            error = _connection_error(exc, channel)
            error.ambiguous = False
            raise error from None
        if result.status != 200:
            raise SlackDeliveryError(
                f"http_{result.status}",
                channel=channel,
                permanent=False,
                fix=f"Slack did not take the file's bytes (HTTP {result.status})",
            )
        return str(response["file_id"])

    def _joining(self, where: str, method: Any, **kwargs: Any) -> Any:
        """Calls ``method``; on ``not_in_channel`` joins the channel and retries.

        A bot needs to be a member of a channel to post there; with the
        ``channels:join`` scope it can become one of a public channel by
        itself, which saves the user a trip to Slack.
        """
        try:
            return self._call(where, method, **kwargs)
        except SlackDeliveryError as exc:
            if exc.code != "not_in_channel":
                raise
            if where in self._cannot_join:
                raise self._cannot_join[where] from None
            self._join(where)
        return self._call(where, method, **kwargs)

    def _join(self, channel: str) -> None:
        try:
            self._call(
                channel,
                self._client.conversations_join,
                channel=self.channel_id(channel),
            )
        except SlackDeliveryError as exc:
            if not exc.permanent:
                raise
            why = {
                "missing_scope": "its token lacks the channels:join scope",
                "method_not_supported_for_channel_type": "it is a private channel",
            }.get(exc.code, f"Slack answered '{exc.code}'")
            error = SlackDeliveryError(
                "not_in_channel",
                channel=channel,
                permanent=True,
                fix=_FIXES["cannot_join"].format(channel=channel, why=why),
            )
            self._cannot_join[channel] = error
            raise error from None

    def channel_id(self, channel: str) -> str:
        """The ID of ``channel`` (a name, ``#name`` or an ID), looked up once.

        Uploads need IDs; posts answer with one, so a channel already posted
        to costs no lookup.
        """
        if _CHANNEL_ID.match(channel):
            return channel
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        try:
            found = self._find_channel(channel, "public_channel,private_channel")
        except SlackDeliveryError as exc:
            # Listing private channels needs groups:read, which a bot that
            # only posts to public channels rarely has.
            if exc.code != "missing_scope":
                raise
            found = self._find_channel(channel, "public_channel")
        if found is None:
            raise SlackDeliveryError(
                "channel_not_found",
                channel=channel,
                permanent=True,
                fix=_FIXES["channel_not_found"].format(channel=channel),
            )
        self._channel_ids[channel] = found
        return found

    def _find_channel(self, channel: str, types: str) -> str | None:
        name = channel.lstrip("#")
        cursor: str | None = None
        while True:
            response = self._call(
                channel,
                self._client.conversations_list,
                types=types,
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
            for conv in response.get("channels") or []:
                if conv.get("name") == name:
                    return str(conv["id"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def _call(self, where: str, method: Any, **kwargs: Any) -> Any:
        self.stats.api_calls += 1
        try:
            return self._warned(where, method(**kwargs))
        except SlackApiError as exc:
            if getattr(exc.response, "status_code", 200) == 429:
                self.stats.rate_limited += 1
            raise _api_error(exc, where) from None
        except _CONNECTION_ERRORS as exc:
            raise _connection_error(exc, where) from None

    def _warned(self, where: str, response: Any) -> Any:
        """Reports the ``warning`` of an ok answer, once per kind.

        Slack says some things only there: a text over 40,000 characters is
        truncated with ``ok: true`` and ``warning: message_truncated``.
        """
        data = getattr(response, "data", None)
        if not isinstance(data, dict):
            return response
        kinds = set(str(data.get("warning") or "").split(","))
        kinds.update((data.get("response_metadata") or {}).get("warnings") or [])
        for kind in sorted(kinds - _QUIET_WARNINGS - {""}):
            self._once.warn(
                ("slack-warning", kind),
                f"ppe_slacklog: Slack accepted a request for {where} with the "
                f"warning '{kind}'"
                + (
                    " (the text was cut at 40,000 characters)"
                    if kind == "message_truncated"
                    else ""
                )
                + ".",
            )
        return response


def _api_error(exc: SlackApiError, channel: str) -> SlackDeliveryError:
    response = exc.response
    # Nothing is stored before the upload's first step answers.
    first_step = str(getattr(response, "api_url", "")).endswith(
        "files.getUploadURLExternal"
    )
    status = int(getattr(response, "status_code", 200) or 200)
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if not re.fullmatch(r"[a-z0-9_]+", code):
        # slack_sdk's text for a body that is not JSON (Slack's 5xx pages
        # are HTML): name the status instead.
        code = f"http_{status}"
    transient = _is_transient(status, code)
    template = _FIXES.get(code, "Slack answered '{code}'")
    fix = template.format(channel=channel, needed=data.get("needed", "?"), code=code)
    return SlackDeliveryError(
        code,
        channel=channel,
        permanent=not transient,
        fix=fix,
        ambiguous=(status >= 500 or code in _SERVER_TROUBLE_CODES) and not first_step,
        retry_after=retry_after_seconds(status, getattr(response, "headers", None)),
    )


def retry_after_seconds(status: int, headers: Any) -> float | None:
    """Seconds a 429 answer asks to wait (``Retry-After``); ``None`` for others.

    Example:
        >>> retry_after_seconds(429, {"Retry-After": "5"}), retry_after_seconds(503, {})
        (5.0, None)
        >>> retry_after_seconds(429, {})  # Slack always sends one; a second if not
        1.0
    """
    if status != 429:
        return None
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0
