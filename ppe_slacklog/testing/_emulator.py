"""Local Slack Web API emulator that the real ``slack_sdk.WebClient`` talks to."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._engine import Engine
from ._faults import FaultPlan, RateRule
from ._methods import Workspace
from ._models import ApiCall, EmulatedFile, EmulatedMessage, MessageEdit
from ._server import EmulatorServer

if TYPE_CHECKING:
    from slack_sdk import WebClient

__all__ = ["SlackEmulator"]

DEFAULT_TOKEN = "xoxb-emulator-token"
DEFAULT_CHANNELS = ("general", "experiment-progress", "alerts")
DEFAULT_SCOPES = (
    "chat:write",
    "files:write",
    "channels:read",
    "channels:join",
    "channels:history",
)

#: ``chat.postMessage``: about one message per second per channel with short
#: bursts, plus a workspace-wide limit (docs.slack.dev "Rate limits"; Slack
#: publishes no numbers for the burst or the workspace, these are the
#: emulator's). ``conversations.history`` / ``.replies``: Tier 3, "50+ per
#: minute", per app and workspace, sporadic bursts welcome.
#: ``chat.update`` and ``files.delete``: Tier 3 too, one bucket for the whole
#: workspace (every run of the app shares it): 50 per minute sustained, and a
#: burst of 20, so a client cannot spend a minute's budget at once.
SLACK_RATE_LIMITS: dict[str, tuple[RateRule, ...]] = {
    "chat.postMessage": (
        RateRule(per_second=1.0, burst=4),
        RateRule(per_second=5.0, burst=20, per_channel=False),
    ),
    "chat.update": (RateRule(50 / 60, 20, per_channel=False),),
    "conversations.history": (RateRule(50 / 60, 50, per_channel=False),),
    "conversations.replies": (RateRule(50 / 60, 50, per_channel=False),),
    "files.delete": (RateRule(50 / 60, 20, per_channel=False),),
}

#: Commercially distributed apps outside the Slack Marketplace: 1 request per
#: minute for the history methods, at most 15 messages a page (new installs
#: since 2025-05-29; docs.slack.dev "Rate limits").
NON_MARKETPLACE_RATE_LIMITS: dict[str, tuple[RateRule, ...]] = {
    "conversations.history": (RateRule(1 / 60, 1, per_channel=False),),
    "conversations.replies": (RateRule(1 / 60, 1, per_channel=False),),
}
NON_MARKETPLACE_MAX_LIMIT = 15


class SlackEmulator:
    """A real HTTP server on 127.0.0.1 that answers like the Slack Web API.

    Point the real ``slack_sdk.WebClient`` at :attr:`base_url` (or use
    :meth:`client`); no patching involved. Implemented methods:
    ``auth.test``, ``chat.postMessage``, ``chat.update``,
    ``files.getUploadURLExternal`` (+ the raw upload),
    ``files.completeUploadExternal``, ``files.info``, ``files.delete``,
    ``conversations.list`` / ``.info`` / ``.join`` / ``.history`` /
    ``.replies``; the retired ``files.upload`` answers ``method_deprecated``.
    ``chat.postMessage`` stores message ``metadata``, which the history
    methods return with ``include_all_metadata=True``, and Block Kit
    ``blocks``, which ``chat.update`` edits in place (:meth:`message`,
    :meth:`edits`). Incoming Webhooks
    (:meth:`webhook_url`) post into their channel like ``slack_sdk``'s
    ``WebhookClient`` expects. Faults (latency, 429 rate limits, 5xx, dropped
    connections, late answers, outages) can be injected at any time; for
    webhook posts they apply under the method name ``"webhook"``.

    By default the emulator is as harsh as Slack where Slack is harsh:

    - **Rate limits**: ``chat.postMessage`` about 1 message/s per channel
      (burst 4) and 5/s (burst 20) for the workspace; ``conversations.history``
      and ``.replies`` Tier 3 (50 per minute); ``chat.update`` and
      ``files.delete`` Tier 3 for the whole workspace (50 per minute, burst
      20), whatever the channel. Over a limit: HTTP 429 with
      ``Retry-After``. ``non_marketplace=True`` adds the limits of
      commercially distributed non-Marketplace apps: 1 history/replies
      request per minute, pages of at most 15 messages.
    - **Unknown threads**: a reply whose ``thread_ts`` names no message
      (deleted, or of another channel) is answered ``ok: true`` and stored
      where nobody sees it (:meth:`orphans`).
    - **Asynchronous file shares**: ``files.completeUploadExternal`` answers
      with files that are not shared yet; the file message appears
      ``share_delay`` seconds later, so after replies posted meanwhile.
    - **Long texts**: over 40,000 characters the text is truncated and the
      answer is ``ok: true`` with ``warning: message_truncated``
      (``chat.update`` answers ``msg_too_long``).
    - **Block Kit**: ``blocks`` are checked against Slack's limits (50
      blocks; header plain_text up to 150 characters; section text 3,000, 10
      fields of 2,000; context 10 elements; images need ``alt_text`` and an
      ``image_url`` or a ``slack_file`` naming a shared, not deleted file;
      markdown 12,000 in all); a breach answers ``invalid_blocks`` with an
      ``errors`` list like ``"must be less than 151 characters
      [json-pointer:/blocks/0/text/text]"``, blocks over about 13,000
      characters of JSON ``msg_blocks_too_long``.
    - **Edits**: ``chat.update`` takes channel IDs only, edits only the
      bot's own messages (``cant_update_message``; see :meth:`post_as_user`),
      answers ``message_not_found`` for deleted messages and
      ``edit_window_closed`` after :meth:`close_edit_window`. An update with
      ``text`` and without ``blocks`` removes the blocks (docs.slack.dev
      chat.update); left-out ``metadata`` is kept.
    - **Deleted files**: after ``files.delete`` the file is ``file_deleted``
      for ``files.info``; messages that shared it show a tombstone, and a
      file message with nothing else goes away.
    - **Stored text**: the Web API returns text as Slack stores it (bare links
      as ``<https://...>``, ✅ ❌ ⚠️ ℹ️ 📎 as ``:shortcodes:``), while
      :attr:`EmulatedMessage.text` keeps what was sent.
    - **Errors**: 5xx answers have an HTML body; a webhook's 429 a JSON one;
      archived channels (:meth:`archive_channel`) and ``restricted_action``
      (:meth:`restrict_posting`) answer like Slack; HTTP 200 ``fatal_error``
      can be injected (:meth:`fail_after_accept`).

    Tests that need a fast Slack say so: ``rate_limits=False`` and
    ``share_delay=0`` (with the pytest plugin:
    ``@pytest.mark.slack_emulator(rate_limits=False, share_delay=0)``).

    Args:
        token: The only bot token accepted.
        channels: Public channels that exist, IDs ``C0000001``, ``C0000002``...
        member_of: Channel names the bot is a member of (``None``: all).
        scopes: OAuth scopes granted to the token.
        latency: Seconds added to every call (restored by :meth:`reset`).
        rate_limits: Apply Slack's rate limits (restored by :meth:`reset`).
        non_marketplace: Apply the history limits of non-Marketplace apps.
        share_delay: Seconds from an upload's completion to its file message.
        port: The localhost port to serve on (0: a free one, chosen at start).

    Example:
        >>> with SlackEmulator() as emu:
        ...     client = emu.client()
        ...     ts = client.chat_postMessage(channel="#general", text="hi")["ts"]
        ...     _ = client.chat_postMessage(channel="general", text="r", thread_ts=ts)
        ...     [m.text for m in emu.thread("general", ts)]
        ['hi', 'r']
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        channels: Iterable[str] = DEFAULT_CHANNELS,
        member_of: Iterable[str] | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        latency: float = 0.0,
        rate_limits: bool = True,
        non_marketplace: bool = False,
        share_delay: float = 1.0,
        port: int = 0,
    ) -> None:
        """Create a stopped emulator; see the class docstring for arguments."""
        self._token = token
        self._workspace = Workspace(
            channels, None if member_of is None else tuple(member_of), scopes
        )
        rules = dict(SLACK_RATE_LIMITS) if rate_limits else {}
        if non_marketplace:
            rules.update(NON_MARKETPLACE_RATE_LIMITS)
            self._workspace.history_max_limit = NON_MARKETPLACE_MAX_LIMIT
        self._faults = FaultPlan(latency, rules)
        self.share_delay = share_delay
        self._engine = Engine(self._workspace, self._faults, token)
        self._server = EmulatorServer(self._engine, port)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> SlackEmulator:
        """Start serving on localhost (idempotent).

        Returns:
            The emulator itself, for chaining.

        Example:
            >>> emu = SlackEmulator().start(); emu.stop()
        """
        self._server.start()
        self._workspace.set_root(f"http://127.0.0.1:{self._server.port}")
        return self

    def stop(self) -> None:
        """Stop serving and free the port (idempotent; state is kept).

        Example:
            >>> emu = SlackEmulator().start(); emu.stop(); emu.stop()
        """
        self._server.stop()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def share_delay(self) -> float:
        """Seconds between an upload's completion and its file message."""
        return self._workspace.share_delay

    @share_delay.setter
    def share_delay(self, seconds: float) -> None:
        self._workspace.share_delay = FaultPlan.checked_latency(seconds, "share_delay")

    @property
    def running(self) -> bool:
        """Whether the HTTP server is serving."""
        return self._server.running

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/`` for ``WebClient(base_url=...)``."""
        return f"http://127.0.0.1:{self._server.port}/api/"

    @property
    def token(self) -> str:
        """The only valid bot token."""
        return self._token

    @property
    def scopes(self) -> tuple[str, ...]:
        """Scopes granted to the token."""
        return self._workspace.scopes

    def client(self, **kwargs: Any) -> WebClient:
        """Return a real ``slack_sdk.WebClient`` bound to this emulator.

        Args:
            **kwargs: Extra ``WebClient`` arguments (``token``, ``timeout``,
                ``retry_handlers``...); ``base_url`` is always the emulator's.

        Example:
            >>> with SlackEmulator() as emu:
            ...     emu.client().auth_test()["user_id"]
            'U0000001'
        """
        from slack_sdk import WebClient

        kwargs.setdefault("token", self._token)
        kwargs["base_url"] = self.base_url
        return WebClient(**kwargs)

    # ---------------------------------------------------------------- channels

    def channel_id(self, name_or_id: str) -> str:
        """Resolve ``"general"``, ``"#general"`` or ``"C0000001"`` to an ID.

        Raises:
            KeyError: No such channel.

        Example:
            >>> SlackEmulator().channel_id("#general")
            'C0000001'
        """
        found = self._workspace.find_channel(name_or_id)
        if found is None:
            raise KeyError(f"no such channel in the emulator: {name_or_id!r}")
        return found

    def add_channel(
        self, name: str, *, member: bool = True, private: bool = False
    ) -> str:
        """Create a channel (the bot is a member unless ``member=False``).

        Returns:
            The new channel ID.

        Example:
            >>> SlackEmulator().add_channel("secret", private=True)
            'C0000004'
        """
        return self._workspace.add_channel(name, member=member, private=private)

    def invite_bot(self, channel: str) -> None:
        """Make the bot a member of ``channel``, as ``/invite @bot`` there does.

        Raises:
            KeyError: No such channel.

        Example:
            >>> emu = SlackEmulator()
            >>> _ = emu.add_channel("outside", member=False)
            >>> emu.invite_bot("outside")
        """
        self._workspace.set_member(channel, True)

    # ---------------------------------------------------------------- webhooks

    def webhook_url(self, channel: str) -> str:
        """The Incoming Webhook URL of ``channel``, created on first use.

        The URL has Slack's shape, ``http://127.0.0.1:<port>/services/T…/B…/<secret>``.
        POSTing ``{"text": ...}`` (JSON, or a form field ``payload``) stores a
        top-level message by the bot in ``channel`` and answers ``200 ok``
        (``text/plain``); errors are answered like Slack's: ``404
        no_service`` (unknown or revoked hook), ``400 invalid_payload``,
        ``400 no_text``, and ``429 rate_limited`` with ``Retry-After`` under
        ``rate_limit("webhook")`` (counted per hook). Webhooks post into the
        channel whether or not the bot is a member. Calls are logged as
        ``"webhook"`` with the hook's ID in ``params["hook"]``, never its
        secret. Webhooks survive :meth:`reset`, like channels.

        Raises:
            KeyError: No such channel.
            RuntimeError: The emulator is not running (the URL needs its port).

        Example:
            >>> from slack_sdk.webhook import WebhookClient
            >>> with SlackEmulator() as emu:
            ...     url = emu.webhook_url("alerts")
            ...     response = WebhookClient(url).send(text="disk full")
            ...     response.status_code, response.body, emu.top_level("alerts")[0].text
            (200, 'ok', 'disk full')
        """
        channel_id = self.channel_id(channel)
        root = f"http://127.0.0.1:{self._server.port}"
        return root + self._workspace.add_webhook(channel_id).path

    def revoke_webhook(self, url: str) -> None:
        """Revoke a webhook: later posts to ``url`` answer ``404 no_service``.

        :meth:`webhook_url` then creates a new hook (a new URL) for the channel.

        Raises:
            KeyError: ``url`` is not a live webhook of this emulator.

        Example:
            >>> with SlackEmulator() as emu:
            ...     url = emu.webhook_url("alerts")
            ...     emu.revoke_webhook(url)
            ...     emu.webhook_url("alerts") != url
            True
        """
        path = urlsplit(url).path
        prefix = "/services/"
        if not path.startswith(prefix) or not self._workspace.revoke_webhook(
            path[len(prefix) :]
        ):
            raise KeyError("not a live webhook URL of this emulator")

    # --------------------------------------------------------------- read-back

    def messages(self, channel: str | None = None) -> list[EmulatedMessage]:
        """All stored messages in post order (top-level and replies).

        Args:
            channel: Restrict to one channel (name, ``#name`` or ID).

        Example:
            >>> SlackEmulator().messages("general")
            []
        """
        return self._workspace.messages(
            None if channel is None else self.channel_id(channel)
        )

    def top_level(self, channel: str) -> list[EmulatedMessage]:
        """Messages of ``channel`` that are not thread replies.

        Broadcast replies (``reply_broadcast``) are replies, so not included.

        Example:
            >>> SlackEmulator().top_level("general")
            []
        """
        return [m for m in self.messages(channel) if m.thread_ts is None]

    def orphans(self, channel: str | None = None) -> list[EmulatedMessage]:
        """Replies posted under a ``thread_ts`` that named no message.

        Slack answers such a ``chat.postMessage`` with ``ok: true`` and shows
        the reply nowhere: not in the channel, not in any thread, not in
        ``conversations.history`` or ``.replies``. They are kept here only.

        Example:
            >>> with SlackEmulator() as emu:
            ...     _ = emu.client().chat_postMessage(
            ...         channel="general", text="lost", thread_ts="1.000001"
            ...     )
            ...     [m.text for m in emu.orphans("general")], emu.messages()
            (['lost'], [])
        """
        return self._workspace.orphans(
            None if channel is None else self.channel_id(channel)
        )

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message, as its author or an admin would in Slack.

        A thread parent without replies is gone: later replies to it are
        accepted and seen nowhere (:meth:`orphans`). A parent with replies
        stays as a tombstone, "This message was deleted." (``subtype``
        ``tombstone``), and its thread goes on.

        Raises:
            KeyError: No such message in ``channel``.

        Example:
            >>> with SlackEmulator() as emu:
            ...     c = emu.client()
            ...     ts = c.chat_postMessage(channel="general", text="x")["ts"]
            ...     emu.delete_message("general", ts)
            ...     emu.messages("general")
            []
        """
        if not self._workspace.delete_message(self.channel_id(channel), ts):
            raise KeyError(f"no message {ts} in {channel!r}")

    def archive_channel(self, channel: str, archived: bool = True) -> None:
        """Archive (or unarchive) a channel.

        An archived channel has ``is_archived: true``; posting answers
        ``is_archived``, its webhook ``410 channel_is_archived``, joining
        ``is_archived``; ``conversations.list(exclude_archived=True)`` leaves
        it out.

        Example:
            >>> SlackEmulator().archive_channel("alerts")
        """
        self._workspace.set_flag(self.channel_id(channel), archived=archived)

    def restrict_posting(self, channel: str, restricted: bool = True) -> None:
        """Make ``chat.postMessage`` to ``channel`` answer ``restricted_action``.

        Slack answers so when a workspace preference keeps the bot from
        posting there (say, an announcement-only channel).

        Example:
            >>> SlackEmulator().restrict_posting("general")
        """
        self._workspace.set_flag(self.channel_id(channel), restricted=restricted)

    def share_pending_files(self) -> None:
        """Post the file messages of completed uploads now, without waiting.

        Sharing is asynchronous in Slack: an upload's file message appears
        about :attr:`share_delay` seconds after ``files.completeUploadExternal``
        answered, possibly after later replies. Tests that only care about
        the result can call this instead of waiting.

        Example:
            >>> SlackEmulator().share_pending_files()
        """
        self._workspace.share_due_files(all_now=True)

    def thread(self, channel: str, ts: str) -> list[EmulatedMessage]:
        """The thread rooted at ``ts``: the parent first, then its replies.

        Returns an empty list if ``ts`` is not a message of ``channel``.

        Example:
            >>> SlackEmulator().thread("general", "1.000001")
            []
        """
        stored = self.messages(channel)
        parent = [m for m in stored if m.ts == ts and m.thread_ts is None]
        if not parent:
            return []
        return parent + [m for m in stored if m.thread_ts == ts]

    def message(self, channel: str, ts: str) -> EmulatedMessage:
        """The stored message ``ts`` of ``channel``, as it reads now.

        Raises:
            KeyError: No such message (never posted, or deleted).

        Example:
            >>> with SlackEmulator() as emu:
            ...     c = emu.client()
            ...     posted = c.chat_postMessage(channel="general", text="v1")
            ...     ts = posted["ts"]
            ...     _ = c.chat_update(channel=posted["channel"], ts=ts, text="v2")
            ...     emu.message("general", ts).text
            'v2'
        """
        found = self._workspace.message(self.channel_id(channel), ts)
        if found is None:
            raise KeyError(f"no message {ts} in {channel!r}")
        return found

    def edits(self, channel: str, ts: str) -> list[MessageEdit]:
        """The versions of a message that ``chat.update`` replaced, oldest first.

        Each :class:`MessageEdit` holds the text and blocks of a replaced
        version and the time of the edit that replaced it.

        Raises:
            KeyError: No such message.

        Example:
            >>> with SlackEmulator() as emu:
            ...     c = emu.client()
            ...     posted = c.chat_postMessage(channel="general", text="v1")
            ...     channel, ts = posted["channel"], posted["ts"]
            ...     for text in ("v2", "v3"):
            ...         _ = c.chat_update(channel=channel, ts=ts, text=text)
            ...     [e.text for e in emu.edits("general", ts)]
            ['v1', 'v2']
        """
        return list(self.message(channel, ts).edits)

    def close_edit_window(self, channel: str, ts: str) -> None:
        """Make ``chat.update`` of one message answer ``edit_window_closed``.

        Slack answers so when the workspace's message-editing setting no
        longer allows the edit (say, edits allowed only for a few minutes).

        Raises:
            KeyError: No such message.

        Example:
            >>> with SlackEmulator() as emu:
            ...     c = emu.client()
            ...     ts = c.chat_postMessage(channel="general", text="x")["ts"]
            ...     emu.close_edit_window("general", ts)
        """
        if not self._workspace.close_edit_window(self.channel_id(channel), ts):
            raise KeyError(f"no message {ts} in {channel!r}")

    def post_as_user(
        self, channel: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """Post a message as a person of the workspace (not the bot).

        The bot cannot edit it (``chat.update`` answers
        ``cant_update_message``). Membership does not matter.

        Returns:
            The message's ``ts``.

        Raises:
            KeyError: No such channel, or ``thread_ts`` names no message.

        Example:
            >>> with SlackEmulator() as emu:
            ...     ts = emu.post_as_user("general", "is it done yet?")
            ...     emu.message("general", ts).user
            'U0000002'
        """
        return self._workspace.post_as_user(self.channel_id(channel), text, thread_ts)

    def upload_as_user(
        self,
        channel: str,
        name: str,
        content: bytes = b"",
        *,
        thread_ts: str | None = None,
    ) -> str:
        """Upload a file as a person and share it into ``channel`` at once.

        The bot cannot delete it (``files.delete`` answers
        ``cant_delete_file``).

        Returns:
            The file's ID.

        Raises:
            KeyError: No such channel, or ``thread_ts`` names no message.

        Example:
            >>> with SlackEmulator() as emu:
            ...     file_id = emu.upload_as_user("general", "notes.txt", b"hi")
            ...     emu.files[0].user
            'U0000002'
        """
        return self._workspace.upload_as_user(
            self.channel_id(channel), name, bytes(content), thread_ts
        )

    @property
    def files(self) -> list[EmulatedFile]:
        """Files whose upload was completed and that are not deleted, in order."""
        return self._workspace.files()

    @property
    def calls(self) -> list[ApiCall]:
        """Every request the emulator answered (or dropped), in order."""
        return self._engine.calls()

    def wait_for(
        self, predicate: Callable[[SlackEmulator], bool], timeout: float = 5.0
    ) -> bool:
        """Poll ``predicate(self)`` until it is true or ``timeout`` expires.

        Returns:
            Whether the predicate became true in time.

        Example:
            >>> SlackEmulator().wait_for(lambda e: not e.messages(), timeout=0.1)
            True
        """
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._engine.wait_for_change(min(remaining, 0.02))

    def render(self, channel: str) -> str:
        """Text view of a channel as a user would read it.

        Each top-level message is followed by its thread replies, indented;
        files appear as ``[file: name]``. A Block Kit message (a status card)
        reads as its blocks: the header line, section texts and fields (two
        columns), context lines, dividers, ``[image: <file name or url>]``.
        A text edit is marked ``(edited)``; a blocks edit is not, as in Slack.

        Example:
            >>> with SlackEmulator() as emu:
            ...     c = emu.client()
            ...     ts = c.chat_postMessage(channel="general", text="Run started")["ts"]
            ...     _ = c.chat_postMessage(channel="general", text="ep 1", thread_ts=ts)
            ...     print(emu.render("general"))
            #general
            Run started
              > ep 1
        """
        from ._render import render_channel

        channel_id = self.channel_id(channel)
        return render_channel(
            self._workspace.channel_name(channel_id),
            self.messages(channel_id),
            self._workspace.image_name,
        )

    def reset(self) -> None:
        """Clear messages, orphans, files, pending uploads and shares, closed edit
        windows, the call log and all faults.

        Faults include queued ``delay_after_accept`` answers and limits set
        with :meth:`rate_limit`; the constructor's rate limits (Slack's, by
        default) and latency come back.

        Channels (and the bot's memberships, archived and restricted flags)
        are kept.

        Example:
            >>> emu = SlackEmulator(); emu.reset()
        """
        self._workspace.reset()
        self._engine.clear_calls()
        self._faults.reset()

    # ------------------------------------------------------------------ faults

    def set_latency(self, seconds: float) -> None:
        """Delay every following call by ``seconds`` (server-side sleep).

        Example:
            >>> SlackEmulator().set_latency(0.05)
        """
        self._faults.set_latency(seconds)

    def rate_limit(
        self,
        method: str = "chat.postMessage",
        per_second: float | None = 1.0,
        burst: int = 3,
        *,
        per_channel: bool = True,
    ) -> None:
        """Replace the rate limits of ``method`` with one token bucket.

        Over the limit the call is not executed and answered with HTTP 429,
        ``Retry-After: <whole seconds, >= 1>`` and
        ``{"ok": false, "error": "ratelimited"}``, like Slack. This replaces
        Slack's own limits of the method (see the class docstring) until
        :meth:`reset`.

        Args:
            method: API method name.
            per_second: Refill rate; ``None`` removes every limit of the method.
            burst: Bucket size (calls allowed back to back).
            per_channel: One bucket per channel (else one for the workspace).

        Example:
            >>> SlackEmulator().rate_limit("chat.postMessage", per_second=1, burst=2)
        """
        self._faults.rate_limit(method, per_second, burst, per_channel=per_channel)

    def fail_next(
        self,
        count: int,
        *,
        status: int = 500,
        method: str | None = None,
        error: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching calls with ``status``, no effect.

        A 5xx answer of the Web API comes with an HTML body, as Slack's edge
        sends it (``error`` is then ignored). With ``status=200`` (or a 4xx)
        the JSON body names ``error``: ``status=200`` with
        ``error="fatal_error"`` or ``"internal_error"`` is how Slack also
        reports trouble on its side.

        Example:
            >>> SlackEmulator().fail_next(2, status=503, method="chat.postMessage")
            >>> SlackEmulator().fail_next(1, status=200, error="fatal_error")
        """
        self._faults.fail_next(count, status=status, method=method, error=error)

    def fail_after_accept(
        self,
        count: int,
        *,
        status: int = 500,
        method: str | None = "chat.postMessage",
        error: str | None = None,
    ) -> None:
        """Execute the next ``count`` matching calls but answer ``status``.

        The message (or file) is stored although the client sees an error,
        which is how duplicate posts after retries happen in real life.
        ``status=200, error="fatal_error"`` (or ``"internal_error"``) is the
        HTTP 200 form of it: Slack's docs say part of the operation may have
        succeeded (python-slack-sdk #1333).

        Example:
            >>> SlackEmulator().fail_after_accept(1)
            >>> SlackEmulator().fail_after_accept(1, status=200, error="fatal_error")
        """
        self._faults.fail_after_accept(count, status=status, method=method, error=error)

    def delay_after_accept(
        self, count: int, seconds: float, *, method: str | None = "chat.postMessage"
    ) -> None:
        """Execute the next ``count`` matching calls, then answer ``seconds`` late.

        The call takes effect (and is logged) at once; only the HTTP answer is
        held back. A client whose ``timeout`` is shorter gives up although
        Slack accepted the call: the ambiguous timeout behind duplicate posts.
        ``WebClient``'s default retry handlers do not retry read timeouts.

        Args:
            count: How many matching calls to delay.
            seconds: Delay of each answer, in seconds.
            method: API method to match (``None``: any method).

        Example:
            >>> with SlackEmulator() as emu:
            ...     emu.delay_after_accept(1, 0.5)
            ...     try:
            ...         _ = emu.client(timeout=0.1).chat_postMessage(
            ...             channel="general", text="sent?"
            ...         )
            ...     except TimeoutError:
            ...         print("client timed out")
            ...     [m.text for m in emu.messages()]
            client timed out
            ['sent?']
        """
        self._faults.delay_after_accept(count, seconds, method=method)

    def drop_connections(self, count: int, *, method: str | None = None) -> None:
        """Close the socket of the next ``count`` matching calls unanswered.

        Note that ``WebClient``'s default ``ConnectionErrorRetryHandler``
        retries once, so ``count=1`` is usually invisible to callers.

        Example:
            >>> SlackEmulator().drop_connections(2, method="chat.postMessage")
        """
        self._faults.drop_connections(count, method=method)

    def set_outage(self, on: bool) -> None:
        """While on, every call answers HTTP 503 without any effect.

        Example:
            >>> SlackEmulator().set_outage(True)
        """
        self._faults.set_outage(on)
