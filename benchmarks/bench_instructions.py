"""Instructions per trigger call on the training thread: logging floor vs ours.

Run: ``python benchmarks/bench_instructions.py`` (needs ``valgrind``; about
1-2 min). ``--quick`` calls each 300 times instead of 2,000.

Wall-clock times on a shared 2-core VM move by 2-3× with the load; the
number of instructions executed does not. Each side runs in a process under
callgrind with instrumentation off until the warm-up is done, then counts
exactly the calls measured:

* floor: one ``logger.info("it %d loss %.3f", ...)`` through a stdlib
  ``QueueHandler`` (what any logging-based design pays at least);
* ppe_slacklog: ``ppe_slacklog.Slack(msg="it {manager.iteration} loss
  {loss:.3f}")`` called with a real ``ExtensionsManager``, as a drop-in
  (its own SlackHandler), once with ``card=False`` and once with the live
  card (the default). Its sender is parked in one HTTP call (the emulator,
  in a child process that callgrind does not follow, answers after an
  hour), so it does no work while the calls are counted.

Callgrind counts each thread apart (``--separate-threads=yes``): the rows
compare the training thread's instructions; the card thread, which folds
the events into the card's state about once a second, shows in the
"all threads" row (the counting window ends 2.5 s after the last call, so
that it holds the folding of every measured call).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import RemoteEmulator, Row, parser, print_setup, print_table, verdict

MSG = "it {manager.iteration} loss {loss:.3f}"
WARM_UP = 100
#: Seconds for the card thread to fold the events in (it ticks every second).
FOLD_WAIT = 2.5
SIDES = ("floor", "card-off", "card-on")
#: Instructions per call with the card on may be at most this × card off.
CARD_TARGET = 1.10


def _target(side: str, calls: int) -> None:
    """The measured process: waits for ``go``, makes ``calls`` calls, says ``done``."""
    import logging
    import logging.handlers
    import queue

    import pytorch_pfn_extras as ppe
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(model, optimizer, 100, iters_per_epoch=10)
    with manager.run_iteration():
        ppe.reporting.report({"loss": 0.5})
    emulator = None
    if side == "floor":
        logger = logging.getLogger("bench.floor")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(logging.handlers.QueueHandler(queue.SimpleQueue()))

        def call() -> None:
            logger.info(
                "it %d loss %.3f", manager.iteration, manager.observation["loss"]
            )

    else:
        import ppe_slacklog

        emulator = RemoteEmulator()
        emulator.set_latency(3600.0)
        ext: Any = ppe_slacklog.Slack(
            "experiment-progress",
            msg=MSG,
            token=emulator.token,
            base_url=emulator.base_url,
            card=side == "card-on",
        )
        ext.initialize(manager)
        time.sleep(2.0)  # the start message parks the sender in its HTTP call
        handler = ext._own_handler
        # Room for every call: the drop policy is not what is measured.
        handler._outbox._queue.max_records = 10**7
        handler._outbox._queue.max_bytes = 10**12

        def call() -> None:
            ext(manager)

    for _ in range(WARM_UP):
        call()
    # The card thread folds the events it was given about once a second:
    # the warm-up's before counting starts, the measured calls' before it
    # ends, so the "all threads" row holds the work of exactly these calls.
    time.sleep(FOLD_WAIT)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(calls):
        call()
    time.sleep(FOLD_WAIT)
    print("done", flush=True)
    sys.stdin.readline()
    if emulator is not None:
        emulator.close()
    os._exit(0)  # no exit flush: the parked sender would wait for it


def _total(path: str) -> int:
    """The instructions one callgrind output file counted (0: none).

    Read from the file's ``summary:`` (or ``totals:``) line; a thread that
    ran no instrumented code has a file without one.
    """
    found = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            match = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if match is not None:
                found = max(found, int(match.group(1)))
    return found


def _measure(side: str, calls: int, workdir: str) -> tuple[int, int]:
    """Instructions executed by ``calls`` calls of ``side``: (main thread, all)."""
    out = os.path.join(workdir, f"{side}.callgrind")
    for name in os.listdir(workdir):  # a kept directory's earlier run
        if name.startswith(f"{side}.callgrind"):
            os.remove(os.path.join(workdir, name))
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            os.path.abspath(__file__),
            "--target",
            side,
            str(calls),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    assert proc.stdin is not None and proc.stdout is not None

    def expect(word: str) -> None:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != word:
            proc.kill()
            raise RuntimeError(f"{side}: expected {word!r}, got {line!r}")

    def control(switch: str) -> None:
        subprocess.run(
            ["callgrind_control", "-i", switch, str(proc.pid)],
            check=True,
            capture_output=True,
        )

    expect("ready")
    control("on")
    proc.stdin.write("go\n")
    proc.stdin.flush()
    expect("done")
    control("off")
    proc.stdin.write("end\n")
    proc.stdin.flush()
    proc.wait(timeout=120)
    # One file per thread: "<out>-01" is the main (training) thread.
    parts = sorted(
        os.path.join(workdir, name)
        for name in os.listdir(workdir)
        if name.startswith(f"{side}.callgrind-")
    )
    totals = {path: _total(path) for path in parts if os.path.getsize(path) > 0}
    main_thread = totals.get(f"{out}-01")
    if main_thread is None:
        raise RuntimeError(f"{side}: callgrind wrote no file for the main thread")
    return main_thread, sum(totals.values())


def main() -> None:
    """Counts both sides' instructions per call and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--calls", type=int, default=2000)
    args_parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep callgrind's files in DIR (for callgrind_annotate)",
    )
    args = args_parser.parse_args()
    if args.quick:
        args.calls = 300
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing measured")
        return
    print_setup(
        "Instructions per trigger call on the training thread (callgrind)",
        {
            "floor": "logger.info through a QueueHandler (stdlib)",
            "ppe_slacklog": f'Slack(msg="{MSG}"), its own SlackHandler, sender '
            "parked in an HTTP call; card=False, then the live card (default)",
            "threads": "counted apart; the training thread is compared",
            "calls": f"{args.calls} measured after {WARM_UP} warm-up calls",
        },
    )
    counts: dict[str, tuple[float, float]] = {}
    with contextlib.ExitStack() as stack:
        workdir = args.keep or stack.enter_context(tempfile.TemporaryDirectory())
        os.makedirs(workdir, exist_ok=True)
        for side in SIDES:
            main_thread, everything = _measure(side, args.calls, workdir)
            counts[side] = (main_thread / args.calls, everything / args.calls)
    floor, off, on = (counts[side][0] for side in SIDES)
    ratio = on / floor
    card_ratio = on / off

    def count(value: float) -> str:
        return f"{value:,.0f}"

    print_table(
        "Results (ratio = card on / floor, or card on / card off where said)",
        [
            Row(
                "instructions per trigger call, training thread",
                count(floor),
                count(on),
                f"{ratio:.2f}× floor",
                "≤ 1× floor",
                verdict(ratio <= 1.0),
                middle=count(off),
            ),
            Row(
                "  card on vs card off",
                "",
                "",
                f"{card_ratio:.2f}× card off",
                f"≤ {CARD_TARGET:.2f}× card off",
                verdict(card_ratio <= CARD_TARGET),
            ),
            Row(
                "instructions per trigger call, all threads (card thread too)",
                count(counts["floor"][1]),
                count(counts["card-on"][1]),
                f"{counts['card-on'][1] / counts['card-off'][1]:.2f}× card off",
                middle=count(counts["card-off"][1]),
            ),
        ],
        base_name="floor",
        middle_name="card=False",
        ours_name="ppe_slacklog (card on)",
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--target":
        _target(sys.argv[2], int(sys.argv[3]))
    else:
        main()
