"""Posting replayed records through a ``SlackHandler``, one event at a time.

One event per Slack message is what lets a later replay count the events a
thread already holds (see ``_replay_thread``): the handler batches only
what waits in its queue, so each event is drained before the next is
handed over. The handler still paces (about one message a second) and
retries like it does for a live run.
"""

from __future__ import annotations

import logging
from typing import Any, Final

__all__ = ["ReplayError", "Replayer"]

# How long one event may take to be delivered (pacing, 429s, retries).
_EVENT_TIMEOUT: Final = 120.0


class ReplayError(Exception):
    """Replay cannot go on; the message says why and what to do."""


def _code(exc: Exception) -> str:
    from ._cli_check import _slack_error

    return _slack_error(exc)


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
            raise ReplayError(f"cannot find channel {channel}: {exc.fix}") from None
        self._channel = channel
        templates: dict[str, Any] = {} if msg is None else {"msg": msg}
        self._handler = SlackHandler(channel, token, base_url=base_url, **templates)
        self.posted = 0
        self.skipped = 0

    def replay(self, run_id: str, records: list[logging.LogRecord]) -> None:
        """Posts the events of ``run_id`` that its thread does not hold yet."""
        from ._replay_thread import find_thread

        short = run_id[:12]
        try:
            state = find_thread(self._client, self._channel_id, run_id)
        except Exception as exc:
            code = _code(exc)
            fix = (
                "add `channels:history` (`groups:history` for a private channel) "
                "under OAuth & Permissions of your Slack app and reinstall it"
                if code == "missing_scope"
                else "try again later"
            )
            raise ReplayError(
                f"cannot look for the thread of run {short} in {self._channel} "
                f"({code}), so replay cannot tell what was posted before: {fix}"
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

    def close(self) -> None:
        """Stops the handler's sender (everything was drained already)."""
        self._handler.close()
