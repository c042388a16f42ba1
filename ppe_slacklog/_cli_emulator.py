"""``ppe-slacklog emulator``: the bundled Slack emulator as a standalone server.

The emulator's token is a fixed test value, not a secret, so the command
prints it: the two ``export`` lines point any training (or ``ppe-slacklog
check``) at the emulator.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any, Final

__all__ = ["PARSER", "add_arguments", "run"]


#: The subcommand's name, help and description (``cli.build_parser``).
PARSER: Final[dict[str, Any]] = {
    "name": "emulator",
    "help": "run the bundled Slack emulator until Ctrl-C",
    "description": (
        "Run ppe_slacklog's Slack Web API emulator on 127.0.0.1 until "
        "Ctrl-C or SIGTERM. Prints the two export lines that point a "
        "training at it, and the URL of its thread viewer."
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``emulator`` to its parser."""
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to listen on (default: a free one)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME",
        help=(
            "a public channel to create besides general, experiment-progress "
            "and alerts (repeatable)"
        ),
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="no rate limits and no delay in sharing files (Slack has both)",
    )


def run(args: argparse.Namespace) -> int:
    """Serves until SIGINT/SIGTERM; returns 0 after a clean stop."""
    from .testing import SlackEmulator
    from .testing._emulator import DEFAULT_CHANNELS

    if not 0 <= args.port <= 65535:
        print(f"ppe-slacklog emulator: invalid port {args.port}", file=sys.stderr)
        return 2
    channels = list(
        dict.fromkeys([*DEFAULT_CHANNELS, *(c.lstrip("#") for c in args.channel)])
    )
    fast: dict[str, Any] = {"rate_limits": False, "share_delay": 0} if args.fast else {}
    emulator = SlackEmulator(channels=channels, port=args.port, **fast)
    try:
        emulator.start()
    except OSError as exc:
        print(
            f"ppe-slacklog emulator: cannot listen on port {args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        root = emulator.base_url[: -len("api/")]
        print(f"Slack emulator listening on {root} (Ctrl-C to stop)")
        print("Point a training (or `ppe-slacklog check`) at it:")
        print(f"export SLACK_BOT_TOKEN={emulator.token}")
        print(f"export SLACK_API_URL={emulator.base_url}")
        print(f"Thread viewer: {root}viewer")
        print(f"Channels: {', '.join('#' + c for c in channels)}", flush=True)
        # A timed wait keeps the main thread responsive to signals everywhere.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Slack emulator stopped.", flush=True)
    return 0
