"""Posting replayed records through a ``SlackHandler``, one event at a time.

One event per Slack message is what lets a later replay count the events a
thread already holds (see ``_replay_thread``): the handler batches only
what waits in its queue, so each event is drained before the next is
handed over. The handler still paces (about one message a second) and
retries like it does for a live run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._replay_thread import ThreadState

__all__ = ["ReplayError", "Replayer"]

# Errors a later attempt may not meet (no answer, or Slack busy).
_TRANSIENT: Final = frozenset(
    {
        "ConnectionError",
        "URLError",
        "TimeoutError",
        "timeout",
        "socket.timeout",
        "RemoteDisconnected",
        "OSError",
        "ratelimited",
    }
)

# How long one event may take to be delivered (pacing, 429s, retries).
_EVENT_TIMEOUT: Final = 120.0


class ReplayError(Exception):
    """Replay cannot go on; the message says why and what to do."""


def _code(exc: Exception) -> str:
    from ._cli_check import _slack_error

    return _slack_error(exc)


def _archived(client: Any, channel: str) -> bool:
    """Whether ``channel`` (a name) is an archived channel the bot can see."""
    from ._cli_channel import _lookup

    try:
        channel_id, _ = _lookup(client, channel.lstrip("#"))
        if channel_id is None:
            return False
        info = client.conversations_info(channel=channel_id)["channel"]
    except Exception:
        return False  # the lookup's own error is reported
    return bool(info.get("is_archived"))


def _fix(exc: Exception, code: str) -> str:
    """What to do when looking for a run's thread failed with ``code``."""
    from ._cli_check import TRY_AGAIN, slack_trouble
    from .slackapi import _FIXES

    if slack_trouble(exc) is not None or code in _TRANSIENT:
        return TRY_AGAIN
    if code == "missing_scope":
        return (
            "add `channels:history` (`groups:history` for a private channel) "
            "under OAuth & Permissions of your Slack app and reinstall it"
        )
    if code == "not_in_channel":
        return (
            "invite the bot: type `/invite @<your bot>` in the channel (or add "
            "`channels:join` under OAuth & Permissions and reinstall the app)"
        )
    fix = _FIXES.get(code)
    return (
        fix.replace("{channel}", "the channel")
        if fix
        else (f"see Slack's error '{code}' in docs/troubleshooting.md")
    )


class Replayer:
    """Posts the runs of a file to ``channel``, skipping what is there already.

    Args:
        channel: Channel name or ID.
        msg: Template of trigger events (``None``: the handler's default).

    Raises:
        ReplayError: No token, or the channel cannot be resolved.
    """

    def __init__(self, channel: str, *, msg: str | None = None) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        from .handler import SlackHandler
        from .slackapi import (
            SlackApi,
            SlackDeliveryError,
            resolve_base_url,
            resolve_token,
            silent_logger,
        )

        token = resolve_token(None)
        if not token:
            raise ReplayError(
                "SLACK_BOT_TOKEN is not set: export the Bot User OAuth Token "
                "of your Slack app (xoxb-...)"
            )
        base_url = resolve_base_url(None)
        # Reading history is rate-limited (Tier 3): let slack_sdk wait out
        # a 429 for these look-ups; posts are paced by the handler.
        self._client = WebClient(
            token=token,
            base_url=base_url,
            timeout=15,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
            logger=silent_logger(),
        )
        try:
            self._channel_id = SlackApi(self._client).channel_id(channel)
        except SlackDeliveryError as exc:
            fix = exc.fix
            if exc.code == "channel_not_found" and _archived(self._client, channel):
                # SlackApi lists unarchived channels only: say what it is.
                fix = f"{channel} is archived: unarchive it or choose another channel"
            raise ReplayError(f"cannot find channel {channel}: {fix}") from None
        self._channel = channel
        templates: dict[str, Any] = {} if msg is None else {"msg": msg}
        self._handler = SlackHandler(channel, token, base_url=base_url, **templates)
        self.posted = 0
        self.skipped = 0

    def replay(self, run_id: str, records: list[logging.LogRecord]) -> None:
        """Posts the events of ``run_id`` that its thread does not hold yet."""
        short = run_id[:12]
        try:
            state = self._find_thread(run_id)
        except Exception as exc:
            code = _code(exc)
            raise ReplayError(
                f"cannot look for the thread of run {short} in {self._channel} "
                f"({code}), so replay cannot tell what was posted before: "
                f"{_fix(exc, code)}"
            ) from None
        done = min(state.events, len(records)) if state else 0
        self.skipped += done
        if done == len(records):
            print(f"run {short}: all {done} events are in its thread already")
            return
        if state is not None:
            print(
                f"run {short}: thread found, {done} of {len(records)} events "
                "there; posting the rest"
            )
            self._catch_up_card(run_id, records[:done], state.ts)
            self._handler.continue_thread(run_id, state.ts)
        else:
            print(f"run {short}: new thread, posting {len(records)} events")
        for number, record in enumerate(records[done:], start=done + 1):
            failed = self._handler.stats.records_failed
            self._handler.handle(record)
            delivered = self._handler.drain(_EVENT_TIMEOUT)
            if not delivered or self._handler.stats.records_failed > failed:
                raise ReplayError(
                    f"Slack did not take event {number} of run {short} "
                    "(see the warning above); fix it and run replay again: it "
                    "continues from there"
                )
            self.posted += 1

    def _find_thread(self, run_id: str) -> ThreadState | None:
        """``find_thread``, joining a public channel first when the bot is not in it.

        The live handler joins at its first post (``channels:join``); reading
        the history comes first here, and needs the bot in the channel.
        """
        from slack_sdk.errors import SlackApiError

        from ._replay_thread import find_thread

        try:
            return find_thread(self._client, self._channel_id, run_id)
        except SlackApiError as exc:
            if _code(exc) != "not_in_channel":
                raise
        self._client.conversations_join(channel=self._channel_id)
        return find_thread(self._client, self._channel_id, run_id)

    def _catch_up_card(
        self, run_id: str, posted: list[logging.LogRecord], parent: str
    ) -> None:
        """Brings run ``run_id``'s live card (thread ``parent``) to where it was.

        The events posted by an earlier, interrupted replay are fed to the
        card (not posted again), and the card is pointed at the thread's
        parent, so the events still to post go on editing that card and it
        ends as an uninterrupted replay's would.
        """
        from .events import event_of

        # The handler's card API is private (``CardLink``); replay is the
        # one caller that must feed a card events it does not post.
        cards = self._handler._cards
        if cards is None:
            return
        start = ""
        for record in posted:
            event = event_of(record)
            if event is None or not event.run_id:
                continue
            if event.kind == "start" and not start:
                start = record.getMessage()
            self._handler._feed_card(event, record)
        if cards.has_card(run_id):
            # Shown until the card's own identity is read back from Slack.
            cards.introduce(run_id, start, parent)

    def close(self) -> None:
        """Stops the handler's sender (everything was drained already)."""
        self._handler.close()
