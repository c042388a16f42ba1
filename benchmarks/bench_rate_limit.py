"""Delivery under Slack's rate limit: ppe vs ppe_slacklog, 20 triggers a second.

Run: ``python benchmarks/bench_rate_limit.py`` (``--quick`` or ``--seconds S``
for a shorter run; the full run takes about two minutes per side).

The emulator limits ``chat.postMessage`` to 1 message/s per channel with a
burst of 3 (HTTP 429 + ``Retry-After`` beyond). A training paced at 20
iterations a second triggers the Slack extension every iteration
(``msg="it {manager.iteration} loss {loss:.3f}"``) for 60 s. Counted: how many
of the trigger texts reached the channel (each looked for as a line, so
records batched into one Slack message count one by one), whether in order,
and how many calls Slack answered with 429.
"""

from __future__ import annotations

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

MSG = "it {manager.iteration} loss {loss:.3f}"
MAX_429 = 5


def run_side(name: str, iterations: int, rate: float) -> tuple[Run, Delivery, int]:
    """One paced training against a fresh rate-limited emulator."""
    with RemoteEmulator() as emu, progress(f"{name}: {iterations} iterations"):
        emu.rate_limit("chat.postMessage", per_second=1.0, burst=3)
        make = ppe_slack if name == "ppe" else slacklog_slack
        ext = make(emu, msg=MSG)
        run = train(iterations, [(ext, (1, "iteration"))], period=1.0 / rate)
        settle(emu, quiet_s=0.5)
        expected = [f"it {i + 1} loss {v:.3f}" for i, v in enumerate(run.losses)]
        return run, check_delivery(emu.texts(), expected), emu.count_status(429)


def main() -> None:
    """Runs both sides one after the other and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--seconds", type=float, default=60.0)
    args_parser.add_argument("--rate", type=float, default=20.0, help="triggers/s")
    args = args_parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    iterations = round(args.seconds * args.rate)
    limit_torch_threads()
    print_setup(
        "Delivery under a rate limit",
        {
            "emulator": "chat.postMessage limited to 1/s per channel, burst 3 "
            "(429 + Retry-After), no latency, in a child process",
            "training": f"{iterations} iterations paced at {args.rate:g}/s "
            f"({args.seconds:g} s), trigger (1, 'iteration')",
            "msg": MSG,
            "ppe_slacklog": "drop-in (its own SlackHandler, default options)",
            "delivered": "trigger texts found as lines in the channel, after "
            "finalize and a quiet second",
        },
    )
    ppe_run, ppe_delivery, ppe_429 = run_side("ppe", iterations, args.rate)
    our_run, our_delivery, our_429 = run_side("ppe_slacklog", iterations, args.rate)
    complete = our_delivery.complete
    print_table(
        "Results",
        [
            Row(
                "trigger texts delivered",
                ppe_delivery.describe(),
                our_delivery.describe(),
                "",
                "100 %, in order",
                verdict(complete),
            ),
            Row(
                "HTTP 429 answers",
                str(ppe_429),
                str(our_429),
                "",
                f"≤ {MAX_429}",
                verdict(our_429 <= MAX_429),
            ),
            Row(
                "Slack messages", str(ppe_delivery.messages), str(our_delivery.messages)
            ),
            Row(
                "training wall time",
                seconds(ppe_run.wall_s),
                seconds(our_run.wall_s),
                f"{our_run.wall_s / ppe_run.wall_s:.2f}×",
            ),
            Row(
                "  of which finalize",
                seconds(ppe_run.finalize_ns / 1e9),
                seconds(our_run.finalize_ns / 1e9),
            ),
            Row("warnings raised", str(ppe_run.warnings), str(our_run.warnings)),
        ],
    )
    if our_delivery.missing:
        shown = ", ".join(our_delivery.missing[:5])
        print(f"ppe_slacklog missed {len(our_delivery.missing)}, first: {shown}")


if __name__ == "__main__":
    main()
