"""Cost of ``SlackHandler`` per plain log record vs a StringIO StreamHandler.

Run: ``python benchmarks/bench_emit.py`` (``--quick`` for a smoke run).

``handler.handle(record)`` is timed with ``time.perf_counter_ns`` over N
distinct pre-built INFO records (distinct texts, so no collapsing of repeats),
best of k rounds, the two handlers alternating. The floor is
``logging.StreamHandler(io.StringIO())`` with the default ``%(message)s``.
So that the sender thread does not compete for the GIL, one record is sent
first while the emulator holds every call for a long time: the sender then
waits in that one HTTP call (no GIL held) for the whole measurement, and the
queue bound is raised to hold every record of every round.
"""

from __future__ import annotations

import io
import logging
import time
import warnings

from _common import (
    CHANNEL,
    RemoteEmulator,
    Row,
    parser,
    print_setup,
    print_table,
    supported_kwargs,
    verdict,
)

from ppe_slacklog import SlackHandler

TARGET_RATIO = 3.0


def make_records(count: int) -> list[logging.LogRecord]:
    """``count`` INFO records of a plain logger with distinct texts."""
    return [
        logging.LogRecord(
            "myproject.train",
            logging.INFO,
            __file__,
            42,
            "step %d: loss %.4f, lr %s",
            (i, 1.0 / (i + 1), "1e-3"),
            None,
        )
        for i in range(count)
    ]


def time_handle(handler: logging.Handler, records: list[logging.LogRecord]) -> float:
    """Nanoseconds per ``handler.handle(record)`` over ``records``."""
    handle = handler.handle
    clock = time.perf_counter_ns
    start = clock()
    for record in records:
        handle(record)
    return (clock() - start) / len(records)


def wait_until_sending(handler: SlackHandler, timeout: float = 10.0) -> bool:
    """Emits one record and waits until the sender has made its API call."""
    handler.handle(make_records(1)[0])
    deadline = time.monotonic() + timeout
    while handler.stats.api_calls < 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    time.sleep(0.3)  # let it reach the blocking read of the answer
    return True


def main() -> None:
    """Measures both handlers, alternating rounds, and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("-n", "--records", type=int, default=50_000)
    args_parser.add_argument("-k", "--rounds", type=int, default=5)
    args = args_parser.parse_args()
    if args.quick:
        args.records, args.rounds = 5_000, 3
    n, k = args.records, args.rounds
    options = supported_kwargs(
        SlackHandler,
        {
            "max_queue_records": n * k + 10,
            "max_queue_bytes": 2**40,
            "request_timeout": 900.0,
        },
    )
    # The emulator holds the first call longer than the whole measurement
    # but shorter than the client's timeout, so the sender is never woken.
    hold = 600.0 if "request_timeout" in options else 25.0
    print_setup(
        "SlackHandler.handle per plain INFO record vs the StreamHandler floor",
        {
            "records": f"{n:,} distinct records per round, {k} rounds, best round",
            "floor": "logging.StreamHandler(io.StringIO()), default formatter",
            "SlackHandler": f"channel {CHANNEL}, options {options or 'none'}",
            "sender": f"parked in its first API call (emulator latency {hold:g} s)",
            "gc": "enabled (the cost of allocating queued posts counts)",
        },
    )
    records = make_records(n)
    with RemoteEmulator() as emu:
        emu.set_latency(hold)
        slack = SlackHandler(
            CHANNEL,
            emu.token,
            base_url=emu.base_url,
            flush_timeout=0.5,
            **options,
        )
        parked = wait_until_sending(slack)
        calls_before = slack.stats.api_calls
        stream = io.StringIO()
        floor = logging.StreamHandler(stream)
        floor_ns: list[float] = []
        slack_ns: list[float] = []
        started = time.monotonic()
        for round_ in range(k):
            stream.seek(0)
            stream.truncate()
            pair = [(floor, floor_ns), (slack, slack_ns)]
            for handler, results in pair if round_ % 2 == 0 else pair[::-1]:
                results.append(time_handle(handler, records))
        elapsed = time.monotonic() - started
        calls_during = slack.stats.api_calls - calls_before
        stats = slack.stats
        queued, dropped = stats.queued, stats.dropped
        with warnings.catch_warnings():
            # Closing drops what the parked sender never sent: expected here.
            warnings.simplefilter("ignore")
            slack.close()
    best_floor, best_slack = min(floor_ns), min(slack_ns)
    ratio = best_slack / best_floor
    fair = parked and calls_during == 0 and elapsed < hold
    print_table(
        "Results (ratio = SlackHandler / floor; times per record)",
        [
            Row(
                "handle(), best of k",
                f"{best_floor:,.0f} ns",
                f"{best_slack:,.0f} ns",
                f"{ratio:.2f}×",
                f"≤ {TARGET_RATIO:g}×",
                verdict(ratio <= TARGET_RATIO),
            ),
            Row(
                "handle(), every round",
                " ".join(f"{v:,.0f}" for v in floor_ns),
                " ".join(f"{v:,.0f}" for v in slack_ns),
            ),
            Row("records queued / dropped", "-", f"{queued:,} / {dropped:,}"),
            Row(
                "sender API calls while timed",
                "-",
                f"{calls_during} (parked: {'yes' if parked else 'NO'})",
            ),
        ],
        base_name="StreamHandler floor",
        ours_name="SlackHandler",
    )
    if not fair:
        print("NOTE: the sender was not parked for the whole measurement.")
    if dropped:
        print(
            f"NOTE: {dropped:,} records were dropped by the queue bound while "
            "timed (a drop costs differently from a queued record)."
        )


if __name__ == "__main__":
    main()
