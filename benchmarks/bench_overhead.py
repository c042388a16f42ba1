"""Training-loop overhead per Slack event, ppe vs ppe_slacklog, at 100 ms latency.

Run: ``python benchmarks/bench_overhead.py`` (``--quick`` for a smoke run).

A tiny MLP trains with a real ``ExtensionsManager``; the Slack extension is
triggered every iteration (``msg="it {manager.iteration} loss {loss:.3f}"``)
against the Slack emulator answering after 100 ms. Overhead per event is
(loop time with the extension - the same loop without it) / events, where the
events are the start message and one trigger per iteration. ``finalize`` (end
message, final flush) is timed apart and reported on its own row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from _common import (
    RemoteEmulator,
    Row,
    Run,
    check_delivery,
    limit_torch_threads,
    median,
    ns_to_us,
    parser,
    ppe_slack,
    print_setup,
    print_table,
    progress,
    seconds,
    slacklog_slack,
    train,
    verdict,
)
from pytorch_pfn_extras.training.extension import Extension

MSG = "it {manager.iteration} loss {loss:.3f}"
TARGET_US = 50.0
TARGET_RATIO = 1000.0


@dataclass
class Side:
    """Overhead figures of one implementation (medians over repeats)."""

    mean_ns: float
    median_ns: float
    finalize_ns: float
    events: int
    delivered: str
    vs_empty_ns: float
    in_call_ns: float


class EmptyExtension(Extension):
    """Does nothing: what ppe's manager costs for any extension on the trigger."""

    def __call__(self, manager: object) -> None:
        pass


class TimedCalls(Extension):
    """Forwards to ``inner`` and times each trigger call (the training thread)."""

    def __init__(self, inner: Extension) -> None:
        self.inner = inner
        self.priority = inner.priority
        self.call_ns: list[int] = []

    def initialize(self, manager: object) -> None:
        self.inner.initialize(manager)  # type: ignore[arg-type]

    def finalize(self, manager: object) -> None:
        self.inner.finalize(manager)  # type: ignore[arg-type]

    def __call__(self, manager: object) -> None:
        clock = time.perf_counter_ns
        t0 = clock()
        self.inner(manager)  # type: ignore[arg-type]
        self.call_ns.append(clock() - t0)


def expected_lines(run: Run) -> list[str]:
    """The trigger texts of ``run``, as ``MSG`` renders them."""
    return [f"it {i + 1} loss {loss:.3f}" for i, loss in enumerate(run.losses)]


def measure(name: str, iterations: int, repeats: int, latency: float) -> Side:
    """Times ``repeats`` loops with the extension, each between two bare loops."""
    means: list[float] = []
    medians: list[float] = []
    finalizes: list[float] = []
    vs_empty: list[float] = []
    in_call: list[float] = []
    delivered = ""
    events = iterations + 1  # the start message, then one per iteration
    for r in range(repeats):
        with RemoteEmulator() as emu, progress(f"{name}: run {r + 1}/{repeats}"):
            emu.set_latency(latency)
            make = ppe_slack if name == "ppe" else slacklog_slack
            before = train(iterations)
            empty_before = train(iterations, [(EmptyExtension(), (1, "iteration"))])
            timed = TimedCalls(make(emu, msg=MSG))
            run = train(iterations, [(timed, (1, "iteration"))])
            empty_after = train(iterations, [(EmptyExtension(), (1, "iteration"))])
            after = train(iterations)
            bare_ns = (before.loop_ns + after.loop_ns) / 2
            means.append((run.loop_ns - bare_ns) / events)
            empty_ns = (empty_before.loop_ns + empty_after.loop_ns) / 2
            vs_empty.append((run.loop_ns - empty_ns) / events)
            in_call.append(median(timed.call_ns))
            bare_median = median(before.iteration_ns + after.iteration_ns)
            medians.append(median(run.iteration_ns) - bare_median)
            finalizes.append(run.finalize_ns)
            delivery = check_delivery(emu.texts(), expected_lines(run))
            delivered = delivery.describe()
    return Side(
        median(means),
        median(medians),
        median(finalizes),
        events,
        delivered,
        median(vs_empty),
        median(in_call),
    )


def main() -> None:
    """Measures both extensions side by side and prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--ppe-events", type=int, default=30)
    args_parser.add_argument("--events", type=int, default=2000)
    args_parser.add_argument("--repeats", type=int, default=3)
    args_parser.add_argument("--latency", type=float, default=0.1)
    args = args_parser.parse_args()
    if args.quick:
        args.ppe_events, args.events, args.repeats = 10, 300, 1
    limit_torch_threads()
    print_setup(
        "Training-loop overhead per Slack event",
        {
            "model": "MLP 8-16-1, batch 32, SGD, 1 torch thread",
            "trigger": f'(1, "iteration"), msg="{MSG}"',
            "emulator": f"{args.latency * 1000:g} ms latency per API call, "
            "in a child process",
            "ppe": f"{args.ppe_events} iterations (+ start event), 1 run",
            "ppe_slacklog": f"{args.events} iterations (+ start event), "
            f"{args.repeats} run(s), drop-in (its own SlackHandler)",
            "overhead": "(loop with extension - bare loop) / events; the bare "
            "loop runs before and after",
            "median row": "median iteration with extension - median bare iteration",
            "empty row": "like the mean row, against a loop with an extension "
            "that does nothing on the same trigger",
            "inside row": "wall time of the extension's __call__ itself",
        },
    )
    train(100)  # warm-up: first torch calls, allocator
    ppe = measure("ppe", args.ppe_events, 1, args.latency)
    ours = measure("ppe_slacklog", args.events, args.repeats, args.latency)
    ratio = ppe.mean_ns / ours.mean_ns if ours.mean_ns > 0 else float("inf")
    ok_abs = ours.mean_ns <= TARGET_US * 1000
    ok_ratio = ratio >= TARGET_RATIO
    print_table(
        "Results (ratio = ppe / ppe_slacklog)",
        [
            Row(
                "overhead per event, mean",
                ns_to_us(ppe.mean_ns),
                ns_to_us(ours.mean_ns),
                f"{ratio:,.0f}×",
                f"≤ {TARGET_US:g} µs, ≥ {TARGET_RATIO:g}×",
                verdict(ok_abs and ok_ratio),
            ),
            Row(
                "overhead per event, median",
                ns_to_us(ppe.median_ns),
                ns_to_us(ours.median_ns),
            ),
            Row(
                "mean vs an empty extension (ppe's own cost per extension excluded)",
                ns_to_us(ppe.vs_empty_ns),
                ns_to_us(ours.vs_empty_ns),
            ),
            Row(
                "time inside the trigger call, median",
                ns_to_us(ppe.in_call_ns),
                ns_to_us(ours.in_call_ns),
            ),
            Row("events per run", str(ppe.events), str(ours.events)),
            Row(
                "finalize (end + flush), apart",
                seconds(ppe.finalize_ns / 1e9),
                seconds(ours.finalize_ns / 1e9),
            ),
            Row("trigger texts in Slack after", ppe.delivered, ours.delivered),
        ],
    )


if __name__ == "__main__":
    main()
