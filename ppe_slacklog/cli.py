"""The ``ppe-slacklog`` command: ``check``, ``emulator`` and ``replay``.

Installed as the ``ppe-slacklog`` script and runnable as
``python -m ppe_slacklog``. Each subcommand lives in its own module
(``_cli_check``, ``_cli_emulator``, ``_cli_replay``), which names it
(``PARSER``), adds its options (``add_arguments``) and runs it (``run``);
this one only parses.

Example:
    >>> main(["--help"])  # doctest: +SKIP
    usage: ppe-slacklog [-h] {check,emulator,replay} ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _cli_check, _cli_emulator, _cli_replay

__all__ = ["build_parser", "main"]

_DESCRIPTION = (
    "Tools for ppe_slacklog: check a Slack token and channel before a long run, "
    "run the bundled Slack emulator, replay a JSON-lines event file to Slack."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ppe-slacklog`` and its subcommands.

    Example:
        >>> build_parser().parse_args(["check", "--channel", "alerts"]).channel
        'alerts'
    """
    parser = argparse.ArgumentParser(
        prog="ppe-slacklog",
        description=_DESCRIPTION,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in (_cli_check, _cli_emulator, _cli_replay):
        command = commands.add_parser(**module.PARSER)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``ppe-slacklog`` with ``argv`` (default: the command line).

    Returns:
        The exit status: 0 when the subcommand succeeded, 1 when it found a
        problem, 2 for a usage error (from argparse).

    Example:
        >>> main(["emulator", "--help"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status
