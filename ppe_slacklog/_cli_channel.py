"""The channel part of ``ppe-slacklog check``: found, and can the bot post?"""

from __future__ import annotations

import re
from typing import Any, Final

from ._cli_check import TRY_AGAIN, Checklist, _slack_error, post_test, slack_trouble

__all__ = ["check_channel"]

_CHANNEL_ID: Final = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_READ_FIX: Final = "add `channels:read` under OAuth & Permissions and reinstall the app"


def _where(name: str) -> str:
    """``#name``, or "that channel (ID C…)" for an ID (``#C…`` is no name)."""
    if _CHANNEL_ID.match(name):
        return f"that channel (ID {name})"
    return f"#{name}"


def _invite(bot: str, name: str) -> str:
    return f"type `/invite @{bot}` in {_where(name)}"


def _find_id(client: Any, name: str, types: str) -> str | None:
    """The ID of channel ``name`` among ``types``, archived ones included.

    The check's own lookup (not ``SlackApi.channel_id``, which skips
    archived channels): an archived channel is "archived", not "not found".
    Raises ``slack_sdk.errors.SlackApiError`` when Slack refuses.
    """
    cursor: str | None = None
    while True:
        response = client.conversations_list(
            types=types, exclude_archived=False, limit=200, cursor=cursor
        )
        for conv in response.get("channels") or []:
            if conv.get("name") == name:
                return str(conv["id"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None


def _lookup(client: Any, name: str) -> tuple[str | None, bool]:
    """(channel ID or ``None``, whether private channels were looked at)."""
    if _CHANNEL_ID.match(name):
        return name, True
    try:
        return _find_id(client, name, "public_channel,private_channel"), True
    except Exception as exc:
        # Listing private channels needs groups:read, which a bot that
        # posts to public channels rarely has: look at the public ones.
        if _slack_error(exc) != "missing_scope":
            raise
    return _find_id(client, name, "public_channel"), False


def check_channel(
    checks: Checklist,
    client: Any,
    channel: str,
    bot: str,
    granted: set[str] | None,
    *,
    post: bool,
) -> None:
    """Checks that ``channel`` resolves and that the bot can post there.

    Needs ``channels:read`` to look (``conversations.list`` / ``.info``);
    without it only ``--post`` can tell. A name that is not a public channel
    may be a private one the bot is in, which only ``groups:read`` shows:
    that is reported as unverified (a training would post), not as a
    failure; ``--post`` tells for sure.
    """
    name = channel.lstrip("#")
    where = _where(name)
    info: dict[str, Any] | None = None
    try:
        channel_id, saw_private = _lookup(client, name)
        if channel_id is not None:
            info = dict(client.conversations_info(channel=channel_id)["channel"])
    except Exception as exc:
        code = _slack_error(exc)
        trouble = slack_trouble(exc)
        if trouble is not None:
            checks.bad(f"{trouble}: channel {where} could not be checked", TRY_AGAIN)
            return
        if code == "channel_not_found":
            checks.bad(
                f"channel {where} not found (or private, without the bot in it)",
                f"check the ID; for a private channel, {_invite(bot, name)}",
            )
            return
        if code != "missing_scope":
            checks.bad(
                f"cannot look up channel {where} ({code})",
                "see Slack's error code in docs/troubleshooting.md",
            )
            return
        checks.unsure(
            f"cannot look up channel {where} without channels:read: a training "
            "posts there if it exists and the bot is in it (or can join)",
            f"{_READ_FIX}, or run again with --post to try a real message",
        )
    else:
        if channel_id is None and not saw_private:
            checks.unsure(
                f"{where} is not a public channel: it may be a private channel "
                "the bot is in, which cannot be seen without groups:read",
                "run again with --post to try a real message (or give the "
                f"channel's ID, C...); if it is private, {_invite(bot, name)}; "
                "else check the name",
            )
        elif channel_id is None:
            checks.bad(
                f"channel {where} not found (or private, without the bot in it)",
                f"check the name; for a private channel, {_invite(bot, name)}",
            )
            return
        elif info is not None and not _can_post(checks, info, bot, granted):
            return
    if post:
        post_test(checks, client, channel)


def _can_post(
    checks: Checklist, info: dict[str, Any], bot: str, granted: set[str] | None
) -> bool:
    name = str(info.get("name") or info.get("id"))
    kind = "private" if info.get("is_private") else "public"
    where = f"#{name} ({info.get('id')}, {kind})"
    checks.ok(f"channel {where} found")
    if info.get("is_archived"):
        checks.bad(f"#{name} is archived", "unarchive it or choose another channel")
        return False
    if info.get("is_member"):
        checks.ok(f"bot @{bot} is a member of #{name}: it can post there")
        return True
    if info.get("is_private"):
        checks.bad(f"bot @{bot} is not a member of #{name}", _invite(bot, name))
        return False
    if granted is not None and "channels:join" in granted:
        checks.ok(
            f"bot @{bot} is not a member of #{name} yet; it joins by itself "
            "(channels:join) at its first post"
        )
        return True
    checks.bad(
        f"bot @{bot} is not a member of #{name} and cannot join by itself",
        f"{_invite(bot, name)}, or add `channels:join` under OAuth & Permissions "
        "and reinstall the app",
    )
    return False
