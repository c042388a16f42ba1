"""Memory of a SlackHandler while Slack is down and records keep coming.

Run: ``python benchmarks/bench_memory.py`` (``--quick`` for a smoke run;
``--records N`` to change the 1,000,000 records; ``--tracemalloc`` to also
report Python's allocation peak, which makes the run several times slower).

With the emulator in an outage (every call answers HTTP 503), a plain logger
emits N distinct INFO records into a ``SlackHandler`` with its default
options. The process's resident memory (``VmRSS`` of ``/proc/self/status``)
is read after a warm-up and again after the last record; the growth is what
the handler keeps while it cannot deliver. The emulator runs in a child
process, so its memory is not counted.
"""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc
import warnings

from _common import (
    CHANNEL,
    RemoteEmulator,
    Row,
    parser,
    print_setup,
    print_table,
    verdict,
)

from ppe_slacklog import SlackHandler

TARGET_MB = 50.0
MB = 1024 * 1024


def rss_mb() -> float:
    """Resident set size of this process (``VmRSS``), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def mb(value: float) -> str:
    """``12.3 MB``."""
    return f"{value:,.1f} MB"


def main() -> None:
    """Floods the handler during an outage and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--records", type=int, default=1_000_000)
    args_parser.add_argument("--tracemalloc", action="store_true")
    args = args_parser.parse_args()
    if args.quick:
        args.records = 100_000
    n = args.records
    print_setup(
        "SlackHandler memory during a Slack outage",
        {
            "records": f"{n:,} distinct INFO records on a plain logger",
            "handler": f"SlackHandler({CHANNEL!r}), default options",
            "emulator": "outage on (every call answers 503), in a child process",
            "measured": "VmRSS after a warm-up vs after the last record"
            + (", tracemalloc peak" if args.tracemalloc else ""),
        },
    )
    logger = logging.getLogger("bench.memory")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with RemoteEmulator() as emu, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emu.set_outage(True)
        handler = SlackHandler(
            CHANNEL, emu.token, base_url=emu.base_url, flush_timeout=1.0
        )
        logger.addHandler(handler)
        for i in range(1000):  # warm-up: sender running, code paths loaded
            logger.info("warm-up record %d", i)
        time.sleep(0.5)
        gc.collect()
        before = rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        start = time.perf_counter()
        for i in range(n):
            logger.info("record %d of %d: loss %.4f", i, n, i * 1e-6)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / MB if args.tracemalloc else None
        tracemalloc.stop()
        after = rss_mb()
        gc.collect()
        after_gc = rss_mb()
        stats = handler.stats
        queued, dropped, pending = stats.queued, stats.dropped, handler.pending
        api_calls, failed = stats.api_calls, stats.failed
        logger.removeHandler(handler)
        handler.close()
    growth = after - before
    rows = [
        Row(
            "RSS growth",
            mb(before),
            mb(after),
            mb(growth),
            f"< {TARGET_MB:g} MB",
            verdict(growth < TARGET_MB),
        ),
        Row("RSS after gc.collect()", mb(before), mb(after_gc), mb(after_gc - before)),
        Row("records emitted", "", f"{n:,}"),
        Row("queued / dropped", "", f"{queued:,} / {dropped:,}"),
        Row("pending at the end", "", f"{pending:,}"),
        Row("API calls / failed posts", "", f"{api_calls:,} / {failed:,}"),
        Row("logger.info() per record", "", f"{elapsed / n * 1e6:,.1f} µs"),
        Row("warnings raised", "", str(len(caught))),
    ]
    if peak is not None:
        rows.insert(1, Row("tracemalloc peak", "", mb(peak)))
    print_table(
        "Results (ratio column: growth)",
        rows,
        base_name="before",
        ours_name="after",
    )


if __name__ == "__main__":
    main()
