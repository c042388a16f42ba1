"""``ppe-slacklog check``: will a training's messages reach Slack?

A short checklist, one line per fact, each problem with its fix. The exit
status is 0 when a training would post (required scopes granted, channel
found and writable), 1 otherwise, so a job script can run it first.
The token is never printed, not even in part.

What cannot be verified (the channel without ``channels:read``; a name that
is no public channel without ``groups:read``, which may be a private
channel the bot is in) is a ⚠ that does not fail the check, since a
training posts if it holds, but the check then ends with "Not all
verified" instead of "All set"; ``--post`` settles it. When Slack itself
fails (5xx, 429 after two waits) the check fails with "try again".
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Final, NamedTuple, TextIO

__all__ = ["PARSER", "SCOPES", "Scope", "add_arguments", "run"]


class Scope(NamedTuple):
    """An OAuth scope the library uses, and what for."""

    name: str
    required: bool
    purpose: str


#: The scopes of README's "Drop-in use": chat:write and files:write are
#: needed, the others make delivery more robust or convenient.
SCOPES: Final = (
    Scope("chat:write", True, "post the run's messages"),
    Scope("files:write", True, "upload files (plots) into the run's thread"),
    Scope("channels:read", False, "upload into a channel given by name"),
    Scope(
        "channels:history",
        False,
        "after a lost answer, check Slack instead of posting twice; "
        "check a resumed run's thread",
    ),
    Scope("files:read", False, "find an upload whose answer was lost"),
    Scope("channels:join", False, "join a public channel by itself"),
)

_SCOPE_FIX: Final = (
    "add `{name}` under OAuth & Permissions of your Slack app and reinstall the app"
)
_TEST_TEXT: Final = (
    "✅ ppe-slacklog check: this is a test message; training runs will "
    "post here in threads like this one."
)
_TEST_REPLY: Final = "↳ ppe-slacklog check: a reply in the thread works too."


class Checklist:
    """Collects ✓ / ⚠ / ✗ lines; any ✗ makes the check fail.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> c = Checklist(out)
        >>> c.ok("token valid")
        >>> c.bad("channel #x not found", "check the name")
        >>> print(out.getvalue(), end=""); c.problems
        ✓ token valid
        ✗ channel #x not found
            fix: check the name
        1
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.problems = 0
        #: Facts a training needs that could not be verified (see ``unsure``).
        self.unverified = 0

    def ok(self, text: str) -> None:
        """A fact that is fine."""
        print(f"✓ {text}", file=self._out)

    def warn(self, text: str, fix: str = "") -> None:
        """Works, but less well (an optional scope); does not fail the check."""
        print(f"⚠ {text}", file=self._out)
        if fix:
            print(f"    fix: {fix}", file=self._out)

    def unsure(self, text: str, fix: str) -> None:
        """A fact a training needs that cannot be verified (⚠, exit status 0).

        A training would post if it holds (say, a private channel the bot
        is in, which only ``groups:read`` could show), so the check does not
        fail, but it does not end in "All set" either.
        """
        self.unverified += 1
        self.warn(text, fix)

    def bad(self, text: str, fix: str) -> None:
        """A problem that keeps a training from posting."""
        self.problems += 1
        print(f"✗ {text}", file=self._out)
        print(f"    fix: {fix}", file=self._out)


#: The subcommand's name, help and description (``cli.build_parser``).
PARSER: Final[dict[str, Any]] = {
    "name": "check",
    "help": "check the Slack token, its scopes and a channel before a run",
    "description": (
        "Check SLACK_BOT_TOKEN (against SLACK_API_URL when set): is the token "
        "valid, which scopes the library uses are granted, does the channel "
        "exist and can the bot post there. Exit status 0 when a training "
        "would post, 1 otherwise. With --webhook, check an Incoming Webhook "
        "instead."
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``check`` to its parser."""
    parser.add_argument(
        "--channel",
        metavar="C",
        type=channel_arg,
        help="channel name (#name or name) or ID to check (ignored with --webhook)",
    )
    parser.add_argument(
        "--post",
        action="store_true",
        help="also post one test message and a reply in its thread (deletes nothing)",
    )
    parser.add_argument(
        "--webhook",
        metavar="URL",
        help="check this Incoming Webhook URL instead of the token",
    )


def run(args: argparse.Namespace) -> int:
    """Runs the checklist; 0 when everything a training needs works."""
    checks = Checklist(sys.stdout)
    if args.webhook:
        from ._cli_webhook import check_webhook

        if args.channel:
            # A webhook posts where it was created for; it cannot be told.
            checks.warn(
                f"--channel {args.channel} is ignored with --webhook: an Incoming "
                "Webhook always posts to the channel it was created for"
            )
        check_webhook(checks, args.webhook, post=args.post)
    else:
        _check_token(checks, args.channel, post=args.post)
    if checks.problems:
        noun = "problem" if checks.problems == 1 else "problems"
        print(f"\n{checks.problems} {noun}: a training would not post as it should.")
        return 1
    if checks.unverified:
        print(
            "\nNot all verified (⚠ above): a training posts if what could not be "
            "checked holds; run again with --post to be sure."
        )
        return 0
    print("\nAll set: a training can post to Slack.")
    return 0


def channel_arg(text: str) -> str:
    """The ``--channel`` option's type: a non-empty name or ID.

    Example:
        >>> channel_arg("#alerts")
        '#alerts'
    """
    if not text.strip().lstrip("#"):
        raise argparse.ArgumentTypeError("the channel must not be empty")
    return text


def printable_url(url: str) -> str:
    """``url`` without credentials (``user:password@``) or query, for printing.

    Example:
        >>> printable_url("https://user:s3cret@proxy.example/api/?key=x")
        'https://proxy.example/api/'
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "(SLACK_API_URL is not a valid URL)"


#: Slack errors that say Slack (not the token or the channel) is in trouble.
_SLACK_TROUBLE: Final = frozenset(
    {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


def slack_trouble(exc: Exception) -> str | None:
    """What is wrong when Slack fails or limits (5xx, 429), else ``None``.

    Such an answer says nothing about the token or the channel: the fix is
    to try again later, never to change the setup.

    Example:
        >>> slack_trouble(ValueError("x")) is None
        True
    """
    from slack_sdk.errors import SlackApiError

    if not isinstance(exc, SlackApiError):
        return None
    status = int(getattr(exc.response, "status_code", 0) or 0)
    code = _slack_error(exc)
    if status == 429 or code == "ratelimited":
        return "Slack is rate limiting this app (HTTP 429)"
    if status >= 500 or code in _SLACK_TROUBLE:
        detail = "" if code.startswith("http_") else f", {code}"
        return f"Slack is failing (HTTP {status}{detail})"
    return None


#: The fix for :func:`slack_trouble`'s answers.
TRY_AGAIN: Final = (
    "this is on Slack's side, not in your setup: try again in a few minutes "
    "(https://slack-status.com)"
)


def _slack_error(exc: Exception) -> str:
    """Slack's error code, or a short description; never the request itself."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error") or "")
        # Slack's codes are snake_case words; anything else is a body that
        # was not Slack's JSON (an HTML error page): never print it.
        if not re.fullmatch(r"[a-z0-9_.:]{1,80}", code):
            code = f"http_{exc.response.status_code}"
        return code
    return type(exc).__name__


def _check_token(checks: Checklist, channel: str | None, *, post: bool) -> None:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    from .slackapi import _FIXES, resolve_base_url, resolve_token, silent_logger

    token = resolve_token(None)
    base_url = resolve_base_url(None)
    print(f"Slack API: {printable_url(base_url)}")
    if not token:
        checks.bad(
            "SLACK_BOT_TOKEN is not set",
            "export SLACK_BOT_TOKEN=<the Bot User OAuth Token of your app, xoxb-...>",
        )
        return
    client = WebClient(
        token=token,
        base_url=base_url,
        timeout=15,
        # A 429 is waited out (Retry-After), twice at most: check stays short.
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
        logger=silent_logger(),
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        trouble = slack_trouble(exc)
        if trouble is not None:
            checks.bad(f"{trouble}: the token could not be checked", TRY_AGAIN)
            return
        code = _slack_error(exc)
        fix = _FIXES.get(code) or f"Slack answered '{code}' to auth.test"
        checks.bad(f"token not accepted ({code})", fix)
        return
    except Exception as exc:  # no answer: the type only (never the request)
        checks.bad(
            f"Slack cannot be reached ({type(exc).__name__})",
            f"check that {printable_url(base_url)} is reachable from here "
            "(SLACK_API_URL, proxies)",
        )
        return
    bot = str(auth.get("user") or "your-bot")
    checks.ok(f"token valid: workspace {auth.get('team')!s}, bot @{bot}")
    granted = _granted_scopes(auth.headers)
    _check_scopes(checks, granted)
    if channel:
        from ._cli_channel import check_channel

        check_channel(checks, client, channel, bot, granted, post=post)
    elif post:
        checks.bad("--post needs a channel", "add --channel <name>")


def _granted_scopes(headers: Any) -> set[str] | None:
    """The token's scopes from Slack's ``x-oauth-scopes`` answer header."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "x-oauth-scopes":
            text = value[0] if isinstance(value, list) else value
            return {s.strip() for s in str(text).split(",") if s.strip()}
    return None


def _check_scopes(checks: Checklist, granted: set[str] | None) -> None:
    if granted is None:
        checks.warn(
            "Slack did not say which scopes the token has (no x-oauth-scopes "
            "header): they cannot be checked",
        )
        return
    width = max(len(s.name) for s in SCOPES)
    for scope in SCOPES:
        kind = "required" if scope.required else "optional"
        text = f"{scope.name:<{width}}  {scope.purpose} ({kind})"
        if scope.name in granted:
            checks.ok(text)
        elif scope.required:
            checks.bad(f"{text}: missing", _SCOPE_FIX.format(name=scope.name))
        else:
            checks.warn(f"{text}: missing", _SCOPE_FIX.format(name=scope.name))


def post_test(checks: Checklist, client: Any, channel: str) -> None:
    """Posts the test message and a reply in its thread (``--post``)."""
    from .slackapi import SlackApi, SlackDeliveryError

    api = SlackApi(client)
    try:
        posted = api.post(channel, _TEST_TEXT)
        api.post(channel, _TEST_REPLY, thread_ts=posted.ts)
    except SlackDeliveryError as exc:
        checks.bad(f"test post to {channel} failed ({exc.code})", exc.fix)
        return
    checks.ok(f"posted a test message (ts {posted.ts}) and a reply in its thread")
    # The post proves what the channel checks could not verify.
    checks.unverified = 0
