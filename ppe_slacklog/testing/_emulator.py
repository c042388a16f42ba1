"""Local Slack Web API emulator that the real ``slack_sdk.WebClient`` talks to."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._engine import Engine
from ._faults import FaultPlan
from ._methods import Workspace
from ._models import ApiCall, EmulatedFile, EmulatedMessage
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


class SlackEmulator:
    """A real HTTP server on 127.0.0.1 that answers like the Slack Web API.

    Point the real ``slack_sdk.WebClient`` at :attr:`base_url` (or use
    :meth:`client`); no patching involved. Implemented methods:
    ``auth.test``, ``chat.postMessage``, ``files.getUploadURLExternal`` (+ the
    raw upload), ``files.completeUploadExternal``, ``files.info``,
    ``conversations.list`` / ``.info`` / ``.join`` / ``.history`` /
    ``.replies``; the retired ``files.upload`` answers ``method_deprecated``.
    ``chat.postMessage`` stores message ``metadata``, which the history
    methods return with ``include_all_metadata=True``. Incoming Webhooks
    (:meth:`webhook_url`) post into their channel like ``slack_sdk``'s
    ``WebhookClient`` expects. Faults (latency, 429 rate limits, 5xx, dropped
    connections, late answers, outages) can be injected at any time; for
    webhook posts they apply under the method name ``"webhook"``.

    Args:
        token: The only bot token accepted.
        channels: Public channels that exist, IDs ``C0000001``, ``C0000002``...
        member_of: Channel names the bot is a member of (``None``: all).
        scopes: OAuth scopes granted to the token.
        latency: Seconds added to every call (restored by :meth:`reset`).

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
    ) -> None:
        """Create a stopped emulator; see the class docstring for arguments."""
        self._token = token
        self._workspace = Workspace(
            channels, None if member_of is None else tuple(member_of), scopes
        )
        self._faults = FaultPlan(latency)
        self._engine = Engine(self._workspace, self._faults, token)
        self._server = EmulatorServer(self._engine)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> SlackEmulator:
        """Start serving on a free localhost port (idempotent).

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

    @property
    def files(self) -> list[EmulatedFile]:
        """Files whose upload was completed, in completion order."""
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
        files appear as ``[file: name]``.

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
            self._workspace.channel_name(channel_id), self.messages(channel_id)
        )

    def reset(self) -> None:
        """Clear messages, files, pending uploads, the call log and all faults.

        Faults include queued ``delay_after_accept`` answers.

        Channels (and the bot's memberships) are kept.

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
    ) -> None:
        """Rate-limit ``method`` with a token bucket per (method, channel).

        Over the limit the call is not executed and answered with HTTP 429,
        ``Retry-After: <whole seconds, >= 1>`` and
        ``{"ok": false, "error": "ratelimited"}``, like Slack.

        Args:
            method: API method name.
            per_second: Refill rate; ``None`` removes the limit.
            burst: Bucket size (calls allowed back to back).

        Example:
            >>> SlackEmulator().rate_limit("chat.postMessage", per_second=1, burst=2)
        """
        self._faults.rate_limit(method, per_second, burst)

    def fail_next(
        self, count: int, *, status: int = 500, method: str | None = None
    ) -> None:
        """Answer the next ``count`` matching calls with ``status``, no effect.

        Example:
            >>> SlackEmulator().fail_next(2, status=503, method="chat.postMessage")
        """
        self._faults.fail_next(count, status=status, method=method)

    def fail_after_accept(
        self, count: int, *, status: int = 500, method: str | None = "chat.postMessage"
    ) -> None:
        """Execute the next ``count`` matching calls but answer ``status``.

        The message (or file) is stored although the client sees an error,
        which is how duplicate posts after retries happen in real life.

        Example:
            >>> SlackEmulator().fail_after_accept(1)
        """
        self._faults.fail_after_accept(count, status=status, method=method)

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
