"""Training-loop overhead per Slack event: ppe, the logging floor, ppe_slacklog.

Run: ``python benchmarks/bench_overhead.py`` (``--quick`` for a smoke run).

A tiny MLP trains with a real ``ExtensionsManager``; the Slack extension is
triggered every iteration (``msg="it {manager.iteration} loss {loss:.3f}"``)
against the Slack emulator answering after 100 ms. Overhead per event is
(loop time with the extension - the same loop without it) / events, where the
events are the start message and one trigger per iteration. ``finalize`` (end
message, final flush) is timed apart and reported on its own row.

The floor is what any logging-based design pays at least: an extension whose
call does one ``logger.info`` through a stdlib ``QueueHandler`` (a
``QueueListener`` thread drains it), since every event must at least become
a record. The background row shows what the threads other than the training
thread (ppe_slacklog's sender, the floor's listener) used in CPU per event:
with the GIL, that is time the training loop may wait for.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from _common import (
    RemoteEmulator,
    Row,
    Run,
    background_cpu_s,
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
FLOOR = "floor"
CARD_OFF = "card=False"
CARD_ON = "ppe_slacklog"
#: Per-event cost with the card on may be at most this × the cost with it off.
CARD_TARGET = 1.10


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
    in_call_cpu_ns: float
    background_ns: float
    #: The extension's ``initialize`` (start event, handler set-up), median.
    initialize_ns: float
    #: Like ``mean_ns``, with ``initialize`` left out: per trigger call.
    mean_after_start_ns: float


class EmptyExtension(Extension):
    """Does nothing: what ppe's manager costs for any extension on the trigger."""

    def __call__(self, manager: object) -> None:
        pass


class FloorExtension(Extension):
    """One ``logger.info`` per call through a ``QueueHandler``: the floor."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._log = logging.getLogger("bench.floor")
        self._log.propagate = False
        self._log.setLevel(logging.INFO)
        self._log.handlers[:] = [logging.handlers.QueueHandler(self._queue)]
        self._listener = logging.handlers.QueueListener(
            self._queue, logging.NullHandler()
        )

    def initialize(self, manager: object) -> None:
        self._listener.start()
        self._log.info("training started")

    def __call__(self, manager: object) -> None:
        self._log.info(
            "it %d loss %.3f",
            manager.iteration,  # type: ignore[attr-defined]
            manager.observation["loss"],  # type: ignore[attr-defined]
        )

    def finalize(self, manager: object) -> None:
        self._log.info("training finished")
        self._listener.stop()


class TimedCalls(Extension):
    """Forwards to ``inner``, timing each trigger call and the background CPU."""

    def __init__(self, inner: Extension) -> None:
        self.inner = inner
        self.priority = inner.priority
        self.call_ns: list[int] = []
        self.call_cpu_ns: list[int] = []
        self.background_s = 0.0
        self.initialize_ns = 0

    def initialize(self, manager: object) -> None:
        t0 = time.perf_counter_ns()
        self.inner.initialize(manager)  # type: ignore[arg-type]
        self.initialize_ns = time.perf_counter_ns() - t0
        self.background_s = -background_cpu_s()

    def finalize(self, manager: object) -> None:
        # Sampled before finalize ends the background threads.
        self.background_s += background_cpu_s()
        self.inner.finalize(manager)  # type: ignore[arg-type]

    def __call__(self, manager: object) -> None:
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        c0 = cpu()
        t0 = clock()
        self.inner(manager)  # type: ignore[arg-type]
        t1 = clock()
        self.call_cpu_ns.append(cpu() - c0)
        self.call_ns.append(t1 - t0)


def expected_lines(run: Run) -> list[str]:
    """The trigger texts of ``run``, as ``MSG`` renders them."""
    return [f"it {i + 1} loss {loss:.3f}" for i, loss in enumerate(run.losses)]


@dataclass
class _Figures:
    """One run's figures of one implementation, gathered over the repeats."""

    means: list[float] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)
    finalizes: list[float] = field(default_factory=list)
    vs_empty: list[float] = field(default_factory=list)
    in_call: list[float] = field(default_factory=list)
    in_call_cpu: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    initialize: list[float] = field(default_factory=list)
    after_start: list[float] = field(default_factory=list)
    delivered: str = ""

    def side(self, events: int) -> Side:
        return Side(
            median(self.means),
            median(self.medians),
            median(self.finalizes),
            events,
            self.delivered,
            median(self.vs_empty),
            median(self.in_call),
            median(self.in_call_cpu),
            median(self.background),
            median(self.initialize),
            median(self.after_start),
        )


def _extension(name: str, emu: RemoteEmulator) -> Extension:
    if name == FLOOR:
        return FloorExtension()
    if name == "ppe":
        return ppe_slack(emu, msg=MSG)
    if name == CARD_OFF:
        return slacklog_slack(emu, msg=MSG, card=False)
    return slacklog_slack(emu, msg=MSG)  # the default: card on


def _one_run(
    name: str, iterations: int, latency: float, figures: _Figures, label: str
) -> None:
    """Times one loop with the extension between two bare loops (and two empty)."""
    events = iterations + 1  # the start message, then one per iteration
    with RemoteEmulator() as emu, progress(label):
        emu.set_latency(latency)
        before = train(iterations)
        empty_before = train(iterations, [(EmptyExtension(), (1, "iteration"))])
        timed = TimedCalls(_extension(name, emu))
        run = train(iterations, [(timed, (1, "iteration"))])
        empty_after = train(iterations, [(EmptyExtension(), (1, "iteration"))])
        after = train(iterations)
        bare_ns = (before.loop_ns + after.loop_ns) / 2
        figures.means.append((run.loop_ns - bare_ns) / events)
        figures.initialize.append(timed.initialize_ns)
        figures.after_start.append(
            (run.loop_ns - timed.initialize_ns - bare_ns) / iterations
        )
        empty_ns = (empty_before.loop_ns + empty_after.loop_ns) / 2
        figures.vs_empty.append((run.loop_ns - empty_ns) / events)
        figures.in_call.append(median(timed.call_ns))
        figures.in_call_cpu.append(median(timed.call_cpu_ns))
        bare_median = median(before.iteration_ns + after.iteration_ns)
        figures.medians.append(median(run.iteration_ns) - bare_median)
        figures.finalizes.append(run.finalize_ns)
        figures.background.append(timed.background_s * 1e9 / events)
        if name != FLOOR:
            texts = emu.texts()
            delivery = check_delivery(texts, expected_lines(run))
            finished = any("Training finished" in text for text in texts)
            figures.delivered = delivery.describe() + (
                ", end message there" if finished else ", NO end message"
            )
            if run.warnings:
                figures.delivered += f", {run.warnings} warning(s)"


def measure(
    names: Sequence[str], iterations: int, repeats: int, latency: float
) -> dict[str, Side]:
    """Times ``repeats`` runs of each of ``names``, interleaved.

    With several names, the runs alternate (A B, then B A, ...), so that a
    change of the machine's load over the minutes weighs on both alike.
    """
    figures = {name: _Figures() for name in names}
    for r in range(repeats):
        order = list(names) if r % 2 == 0 else list(reversed(names))
        for name in order:
            label = f"{name}: run {r + 1}/{repeats}"
            _one_run(name, iterations, latency, figures[name], label)
    return {name: f.side(iterations + 1) for name, f in figures.items()}


def main() -> None:
    """Measures ppe, the floor and ppe_slacklog side by side; prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--ppe-events", type=int, default=30)
    args_parser.add_argument("--events", type=int, default=2000)
    args_parser.add_argument("--repeats", type=int, default=3)
    args_parser.add_argument(
        "--card-repeats",
        type=int,
        default=5,
        help="runs of each of card=False and card on (alternating)",
    )
    args_parser.add_argument("--latency", type=float, default=0.1)
    args = args_parser.parse_args()
    if args.quick:
        args.ppe_events, args.events, args.repeats = 10, 300, 1
        args.card_repeats = 2
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
            f"{args.card_repeats} run(s), drop-in (its own SlackHandler), the "
            "live card on (the default)",
            "card on vs off": f"{args.events} iterations, {args.card_repeats} "
            "run(s) each of card=False and card on, alternating, after one "
            "warm-up run with the card (the first card of a process imports "
            "matplotlib, on the training thread: timed on its own row)",
            "overhead": "(loop with extension - bare loop) / events; the bare "
            "loop runs before and after",
            "median row": "median iteration with extension - median bare iteration",
            "empty row": "like the mean row, against a loop with an extension "
            "that does nothing on the same trigger",
            "inside rows": "wall time of the extension's __call__ itself, and "
            "the CPU time of the training thread in it (time.thread_time: "
            "not counting waits for the CPU or the GIL)",
            "floor": f"{args.events} iterations (+ start event), "
            f"{args.repeats} run(s): one logger.info per call through a "
            "QueueHandler (a QueueListener drains it)",
            "background row": "CPU of the threads other than the training "
            "thread (sender, listener) during the loop / events",
        },
    )
    train(100)  # warm-up: first torch calls, allocator
    ppe = measure(["ppe"], args.ppe_events, 1, args.latency)["ppe"]
    floor = measure([FLOOR], args.events, args.repeats, args.latency)[FLOOR]
    first = _Figures()
    _one_run(CARD_ON, 200, args.latency, first, "card on: warm-up, the first card")
    both = measure([CARD_OFF, CARD_ON], args.events, args.card_repeats, args.latency)
    off, ours = both[CARD_OFF], both[CARD_ON]
    ratio = ppe.mean_ns / ours.mean_ns if ours.mean_ns > 0 else float("inf")
    ok_abs = ours.mean_ns <= TARGET_US * 1000
    ok_ratio = ratio >= TARGET_RATIO
    in_call_ratio = ours.in_call_ns / floor.in_call_ns if floor.in_call_ns else 0.0
    cpu_ratio = (
        ours.in_call_cpu_ns / floor.in_call_cpu_ns if floor.in_call_cpu_ns else 0.0
    )

    def row(label: str, value: Callable[[Side], str], **more: str) -> Row:
        return Row(label, value(ppe), value(ours), middle=value(floor), **more)

    print_table(
        "Results (ratio = ppe / ppe_slacklog, or ppe_slacklog / floor where said)",
        [
            row(
                "overhead per event, mean",
                lambda side: ns_to_us(side.mean_ns),
                ratio=f"{ratio:,.0f}×",
                target=f"≤ {TARGET_US:g} µs, ≥ {TARGET_RATIO:g}×",
                result=verdict(ok_abs and ok_ratio),
            ),
            row("overhead per event, median", lambda side: ns_to_us(side.median_ns)),
            row(
                "mean vs an empty extension (ppe's own cost per extension excluded)",
                lambda side: ns_to_us(side.vs_empty_ns),
            ),
            row(
                "time inside the trigger call, median",
                lambda side: ns_to_us(side.in_call_ns),
                ratio=f"{in_call_ratio:.2f}× floor",
                target="≤ 1× floor",
                result=verdict(in_call_ratio <= 1.0),
            ),
            row(
                "training thread's CPU inside the trigger call, median",
                lambda side: ns_to_us(side.in_call_cpu_ns),
                ratio=f"{cpu_ratio:.2f}× floor",
                target="≤ 1× floor",
                result=verdict(cpu_ratio <= 1.0),
            ),
            row(
                "background threads' CPU per event",
                lambda side: ns_to_us(side.background_ns),
            ),
            row("events per run", lambda side: str(side.events)),
            row(
                "finalize (end + flush), apart",
                lambda side: seconds(side.finalize_ns / 1e9),
            ),
            row("trigger texts in Slack after", lambda side: side.delivered or "-"),
        ],
        middle_name=FLOOR,
    )
    print_card_table(off, ours, first.initialize[0])


def print_card_table(off: Side, on: Side, first_initialize_ns: float) -> None:
    """The live card's cost: the same drop-in with ``card=False`` and with the card."""

    def row(label: str, ns: Callable[[Side], float], target: bool = True) -> Row:
        a, b = ns(off), ns(on)
        ratio = b / a if a > 0 else float("inf")
        return Row(
            label,
            ns_to_us(a),
            ns_to_us(b),
            f"{ratio:.2f}×",
            f"≤ {CARD_TARGET:.2f}×" if target else "",
            verdict(ratio <= CARD_TARGET) if target else "",
        )

    print_table(
        "Live card: per-event cost on the training thread, card on vs card off "
        "(ratio = card on / card off)",
        [
            row("overhead per event, mean", lambda side: side.mean_ns),
            row(
                "overhead per trigger, mean (initialize left out)",
                lambda side: side.mean_after_start_ns,
            ),
            row("overhead per event, median", lambda side: side.median_ns),
            row("time inside the trigger call, median", lambda side: side.in_call_ns),
            row(
                "training thread's CPU inside the trigger call, median",
                lambda side: side.in_call_cpu_ns,
            ),
            row(
                "background threads' CPU per event (sender, card thread)",
                lambda side: side.background_ns,
                target=False,
            ),
            Row(
                "initialize (start event, handler set-up), apart",
                seconds(off.initialize_ns / 1e9),
                seconds(on.initialize_ns / 1e9),
            ),
            Row(
                "  the first card of the process (warm-up run)",
                "",
                seconds(first_initialize_ns / 1e9),
            ),
            Row(
                "finalize (end + flush), apart",
                seconds(off.finalize_ns / 1e9),
                seconds(on.finalize_ns / 1e9),
            ),
            Row("trigger texts in Slack after", off.delivered, on.delivered),
        ],
        base_name="card off",
        ours_name="card on (default)",
    )


if __name__ == "__main__":
    main()
