"""The channel part of ``ppe-slacklog check``: found, and can the bot post?"""

from __future__ import annotations

from typing import Any

from ._cli_check import Checklist, post_test
from .slackapi import SlackApi, SlackDeliveryError

__all__ = ["check_channel"]


def _invite(bot: str, name: str) -> str:
    return f"type `/invite @{bot}` in #{name}"


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
    without it only ``--post`` can tell.
    """
    name = channel.lstrip("#")
    api = SlackApi(client)
    info: dict[str, Any] | None = None
    try:
        channel_id = api.channel_id(channel)
        info = dict(client.conversations_info(channel=channel_id)["channel"])
    except SlackDeliveryError as exc:
        if exc.code == "channel_not_found":
            private = (
                "; a private channel needs the bot in it, and is found by name only "
                "with the groups:read scope (else give its ID, C...)"
                if granted is None or "groups:read" not in granted
                else ""
            )
            checks.bad(
                f"channel #{name} not found (or private, without the bot in it)",
                f"check the name; for a private channel, {_invite(bot, name)}"
                + private,
            )
            return
        if exc.code != "missing_scope":
            checks.bad(f"cannot look up channel #{name} ({exc.code})", exc.fix)
            return
    except Exception as exc:
        from ._cli_check import _slack_error

        code = _slack_error(exc)
        if code == "channel_not_found":
            checks.bad(
                f"channel {channel} not found (or private, without the bot in it)",
                f"check the ID; for a private channel, {_invite(bot, name)}",
            )
            return
        if code != "missing_scope":
            checks.bad(
                f"cannot look up channel {channel} ({code})", "see Slack's error"
            )
            return
    if info is None:
        checks.warn(
            f"cannot look up channel #{name} without channels:read: only "
            "--post can tell whether the bot can post there",
            "add `channels:read` under OAuth & Permissions and reinstall the app",
        )
    elif not _can_post(checks, info, bot, granted):
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
