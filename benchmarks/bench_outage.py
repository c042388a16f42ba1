"""A Slack outage in the middle of a training: delivery and wall time, ppe vs ours.

Run: ``python benchmarks/bench_outage.py`` (``--quick`` for a smoke run;
``--seconds`` and ``--outage`` to change the 60 s training and the 30 s outage).

A training paced at 10 iterations a second for 60 s triggers the Slack
extension every 5 iterations (every 0.5 s). In one run the emulator answers
every call with HTTP 503 for 30 s in the middle; in the other it never fails.
Counted: which of the start, trigger and end texts reached the channel once
Slack was back (after finalize and a quiet second), and the training's wall
time (finalize included) with the outage ÷ without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from _common import (
    Delivery,
    RemoteEmulator,
    Row,
    Run,
    check_delivery,
    limit_torch_threads,
    parser,
    ppe_slack,
    print_setup,
    print_table,
    progress,
    seconds,
    settle,
    slacklog_slack,
    train,
    verdict,
)

PERIOD = 0.1  # seconds per iteration
EVERY = 5  # iterations per trigger
START, END = "bench start", "bench end"
MAX_TIME_RATIO = 1.05


def outage_timers(
    emu: RemoteEmulator, begin: float, length: float
) -> tuple[Callable[[], None], list[threading.Timer]]:
    """Timers switching the outage on at ``begin`` and off ``length`` later."""
    timers = [
        threading.Timer(begin, emu.set_outage, (True,)),
        threading.Timer(begin + length, emu.set_outage, (False,)),
    ]

    def start() -> None:
        for timer in timers:
            timer.start()

    return start, timers


def run_once(name: str, iterations: int, outage: float) -> tuple[Run, Delivery, int]:
    """One training against a fresh emulator, with an outage when ``outage``."""
    label = f"{name}: {'with' if outage else 'without'} outage"
    with RemoteEmulator() as emu, progress(label):
        make = ppe_slack if name == "ppe" else slacklog_slack
        ext = make(emu, msg="tick {manager.iteration}", start_msg=START, end_msg=END)
        length = iterations * PERIOD
        start, timers = outage_timers(emu, (length - outage) / 2, outage)
        try:
            run = train(
                iterations,
                [(ext, (EVERY, "iteration"))],
                period=PERIOD,
                on_start=start if outage else None,
            )
        finally:
            for timer in timers:
                timer.cancel()
        emu.set_outage(False)
        settle(emu, quiet_s=1.0)
        ticks = [f"tick {i}" for i in range(EVERY, iterations + 1, EVERY)]
        delivery = check_delivery(emu.texts(), [START, *ticks, END])
        return run, delivery, emu.count_status(503)


def main() -> None:
    """Runs both sides with and without the outage and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--seconds", type=float, default=60.0)
    args_parser.add_argument("--outage", type=float, default=30.0)
    args = args_parser.parse_args()
    if args.quick:
        args.seconds, args.outage = 12.0, 6.0
    iterations = round(args.seconds / PERIOD)
    begin = (args.seconds - args.outage) / 2
    limit_torch_threads()
    print_setup(
        "Slack outage in the middle of a training",
        {
            "training": f"{iterations} iterations paced at {1 / PERIOD:g}/s "
            f"({args.seconds:g} s), trigger every {EVERY} iterations "
            f"({EVERY * PERIOD:g} s)",
            "texts": f"'{START}', 'tick <iteration>', '{END}'",
            "outage": f"every call answers 503 from t={begin:g} s to "
            f"t={begin + args.outage:g} s; emulator in a child process",
            "ppe_slacklog": "drop-in (its own SlackHandler, default options)",
            "wall time": "first iteration to the end of finalize (flush included)",
        },
    )
    results: dict[str, dict[bool, tuple[Run, Delivery, int]]] = {}
    for name in ("ppe", "ppe_slacklog"):
        results[name] = {
            down: run_once(name, iterations, args.outage if down else 0.0)
            for down in (False, True)
        }
    ppe, ours = results["ppe"], results["ppe_slacklog"]
    ppe_ratio = ppe[True][0].wall_s / ppe[False][0].wall_s
    our_ratio = ours[True][0].wall_s / ours[False][0].wall_s
    print_table(
        "Results",
        [
            Row(
                "delivered, with outage",
                ppe[True][1].describe(),
                ours[True][1].describe(),
                "",
                "100 %, in order",
                verdict(ours[True][1].complete),
            ),
            Row(
                "delivered, without outage",
                ppe[False][1].describe(),
                ours[False][1].describe(),
            ),
            Row(
                "wall time with ÷ without",
                f"{ppe_ratio:.3f}",
                f"{our_ratio:.3f}",
                "",
                f"≤ {MAX_TIME_RATIO:g}",
                verdict(our_ratio <= MAX_TIME_RATIO),
            ),
            Row(
                "wall time with / without",
                f"{ppe[True][0].wall_s:.1f} / {ppe[False][0].wall_s:.1f} s",
                f"{ours[True][0].wall_s:.1f} / {ours[False][0].wall_s:.1f} s",
            ),
            Row(
                "finalize, with outage",
                seconds(ppe[True][0].finalize_ns / 1e9),
                seconds(ours[True][0].finalize_ns / 1e9),
            ),
            Row("503 answers", str(ppe[True][2]), str(ours[True][2])),
            Row(
                "warnings raised",
                str(ppe[True][0].warnings),
                str(ours[True][0].warnings),
            ),
        ],
    )
    missing = ours[True][1].missing
    if missing:
        print(f"ppe_slacklog missed {len(missing)}, first: {', '.join(missing[:5])}")


if __name__ == "__main__":
    main()
