"""``ppe-slacklog replay``: post a JSON-lines event file to Slack afterwards.

For clusters whose nodes cannot reach Slack: log the training events to a
file with ``ppe_slacklog.JsonFormatter`` there, then replay the file from a
machine that can. Each run gets one thread, posted by a ``SlackHandler``
(same pacing, same retries, trigger events with the same templates).

What is posted, and what not:

- training events (lines with ``ppe_event``), one Slack message each, in
  the file's order, one thread per ``run_id``; start, end, error,
  interrupted and stopped events get the default headline without the
  user/host/PID of the replaying machine (see ``_replay_records``);
- not: other records (library logs, warnings) in the file, which are
  counted and skipped; training events without a ``run_id``; files named
  by events (they live where the training ran).

Running it again posts nothing twice: the run's thread is found by the run
id in its messages' metadata, and the events it already holds (counted as
the distinct posts of the run there: replay posts one event per message)
are skipped, so an interrupted replay continues where it stopped. This
needs the ``channels:history`` scope, and assumes the thread was written by
replay from files that hold a run's events from its start (a live run
batches several events into one message; a second file with the rest of a
resumed run would be taken for events already posted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["PARSER", "add_arguments", "run"]

_EPILOG = """\
what is posted:
  training events (lines with ppe_event), one message each, one thread per
  run_id; other records, events without a run_id and files are skipped.
running it again:
  the run's thread is found by the run id in its messages' metadata and the
  events it holds are skipped (needs channels:history); an interrupted
  replay continues where it stopped. One run's events must come from one
  file (a resumed run appending to the same file is fine).
"""


#: The subcommand's name, help, description and epilog (``cli.build_parser``).
PARSER: Final[dict[str, Any]] = {
    "name": "replay",
    "help": "post the training events of a JSON-lines file to Slack",
    "description": (
        "Post the training events of a file written by "
        "ppe_slacklog.JsonFormatter to a Slack channel, one thread per run, "
        "as the live handler would have. Running it again posts only what "
        "is not in the run's thread yet. Uses SLACK_BOT_TOKEN and "
        "SLACK_API_URL."
    ),
    "epilog": _EPILOG,
    "formatter_class": argparse.RawDescriptionHelpFormatter,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``replay`` to its parser."""
    from ._cli_check import channel_arg

    parser.add_argument("file", metavar="FILE.jsonl", help="the JSON-lines file")
    parser.add_argument(
        "--channel",
        required=True,
        metavar="C",
        type=channel_arg,
        help="channel name or ID",
    )
    parser.add_argument(
        "--msg",
        metavar="TEMPLATE",
        help=(
            "template of trigger events, e.g. 'Epoch #{manager.epoch}: "
            "loss = {val/loss}' (default: ppe's 'Epoch #<epoch>')"
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Replays ``args.file`` to ``args.channel``; 0 when everything is there."""
    from ._replay_records import read_events

    path = Path(args.file)
    try:
        with path.open("rb") as lines:
            found = read_events(lines, path.name)
    except OSError as exc:
        print(
            f"ppe-slacklog replay: cannot read {path}: {exc.strerror}", file=sys.stderr
        )
        return 1
    print(
        f"{path.name}: {found.events} training events in {len(found.runs)} "
        f"run(s); {found.other} other records skipped"
    )
    if found.bad_lines:
        shown = ", ".join(map(str, found.bad_lines[:10]))
        print(
            f"  {len(found.bad_lines)} lines are not UTF-8 JSON objects (lines {shown})"
        )
    if found.no_run_id:
        print(f"  {found.no_run_id} training events without a run_id skipped")
    if found.files:
        print(f"  {found.files} files named by events are not uploaded")
    if not found.runs:
        return 0
    from ._replay_post import Replayer, ReplayError

    try:
        replayer = Replayer(args.channel, msg=args.msg)
    except ReplayError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    try:
        for run_id, records in found.runs.items():
            replayer.replay(run_id, records)
    except ReplayError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    finally:
        replayer.close()
    print(
        f"Done: {replayer.posted} events posted to {args.channel}, "
        f"{replayer.skipped} already there."
    )
    return 0
