"""The live card in a long run: chat.update count and 429s at Slack's limits.

Run: ``python benchmarks/bench_card.py`` (10 minutes of training, then the
same with ``card=False``; ``--quick`` for 1 minute each, ``--minutes M`` to
choose, ``--baseline-minutes 0`` to skip the card-off run).

A training paced at 50 iterations a second triggers the drop-in
``ppe_slacklog.Slack`` every iteration (``msg="it {manager.iteration} loss
{loss:.3f}"``), with the live card on and the default ``card_interval``
(15 s). The Slack emulator (a child process) keeps Slack's own rate limits,
its default: ``chat.update`` Tier 3, 50 a minute for the whole workspace
(burst 20), ``chat.postMessage`` about 1 a second per channel. The step is a
tiny MLP: the point is the event rate, not the model.

Counted from the emulator's call log and from ``SlackHandler.card_updates``:
``chat.update`` calls and their 429 answers, how many edits any
``card_interval`` saw while the run went on (the card may be edited at most
once per interval; the final state goes at once), whether the card's last
version reads "✅ Finished", the trigger texts delivered (each looked for as
a line, so texts batched into one message count one by one) and the wall
time of the run's end (the last iteration's ``run_iteration`` exit, where the
manager finalizes: end message, final card, chart, flush). The baseline is
the same run with ``card=False`` (ppe's messages only: no ``chat.update``).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _common import (
    RemoteEmulator,
    Row,
    limit_torch_threads,
    parser,
    print_setup,
    print_table,
    progress,
    seconds,
    settle,
    slacklog_slack,
    train_step,
    verdict,
)

MSG = "it {manager.iteration} loss {loss:.3f}"
RATE = 50.0
EPOCHS = 10
CARD_INTERVAL = 15.0  # the library's default; passed to no one, only counted
UPDATE = "chat.update"
POST = "chat.postMessage"
FINISHED = "✅ Finished"
_TRIGGER = re.compile(r"(?<![\w.])it (\d+) loss (-?\d+\.\d{3})(?![\w.])")


@dataclass
class CardRun:
    """What one run did, as Slack (the emulator) and the handler saw it."""

    card: bool
    iterations: int
    loop_s: float
    end_s: float
    update_times: list[float]
    updates_429: int
    other_calls: Counter[str]
    handler_updates: tuple[int, int]
    loop_end: float
    headers: list[str]
    card_render: str
    delivered: int
    in_order: bool
    duplicates: int
    messages: int
    dropped_records: int
    warnings: list[str]
    load: tuple[float, float]

    @property
    def rate(self) -> float:
        """Iterations per second achieved (pacing sleeps included)."""
        return self.iterations / self.loop_s if self.loop_s > 0 else 0.0

    @property
    def during(self) -> list[float]:
        """Times of the edits made while the training loop ran."""
        return [t for t in self.update_times if t <= self.loop_end]

    def max_per_interval(self, interval: float) -> int:
        """The most edits that any ``interval``-long window of the loop saw."""
        times = self.during
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] >= interval:
                first += 1
            most = max(most, last - first + 1)
        return most

    def min_gap(self) -> float | None:
        """The shortest time between two edits while the loop ran."""
        times = self.during
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return min(gaps) if gaps else None

    @property
    def final_header(self) -> str:
        """The header of the channel's last card, as Slack shows it now."""
        return self.headers[-1] if self.headers else "(no card)"


def _card_lines(rendered: str) -> str:
    """The top-level messages of a rendered channel (the card), not its thread."""
    lines: list[str] = []
    for line in rendered.splitlines():
        if line.startswith("  >"):  # the first reply: the thread begins
            break
        lines.append(line)
    return "\n".join(lines)


def _delivery(texts: Sequence[str], losses: Sequence[float]) -> tuple[int, bool, int]:
    """Trigger texts found as lines: (distinct found, in order, duplicates).

    The lines are ``it <n> loss <x>``: matched by shape, then checked against
    the loss of iteration ``n`` (a regex of 30,000 alternatives is too slow).
    """
    seen: set[int] = set()
    last, in_order, duplicates = 0, True, 0
    for text in texts:
        for match in _TRIGGER.finditer(text):
            n = int(match.group(1))
            if not 1 <= n <= len(losses) or match.group(2) != f"{losses[n - 1]:.3f}":
                continue
            if n in seen:
                duplicates += 1
                continue
            seen.add(n)
            in_order = in_order and n > last
            last = n
    return len(seen), in_order, duplicates


def run(card: bool, minutes: float, rate: float, latency: float) -> CardRun:
    """One paced training against a fresh emulator with Slack's rate limits."""
    import torch
    from pytorch_pfn_extras.training.manager import ExtensionsManager

    iterations = max(EPOCHS, round(minutes * 60 * rate / EPOCHS) * EPOCHS)
    period = 1.0 / rate
    label = f"card {'on' if card else 'off'}: {iterations} iterations at {rate:g}/s"
    with (
        RemoteEmulator() as emu,
        progress(label),
        tempfile.TemporaryDirectory() as out_dir,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        emu.set_latency(latency)
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        # The stop trigger ends the run at the last iteration: the manager
        # finalizes inside that iteration's run_iteration, as in a real run.
        manager = ExtensionsManager(
            model,
            optimizer,
            EPOCHS,
            iters_per_epoch=iterations // EPOCHS,
            out_dir=out_dir,
        )
        kwargs: dict[str, Any] = {} if card else {"card": False}
        ext = slacklog_slack(emu, msg=MSG, **kwargs)
        manager.extend(ext, trigger=(1, "iteration"))
        losses: list[float] = []
        handler: Any = None
        load_before = os.getloadavg()[0]
        clock = time.perf_counter
        start = clock()
        body_end = loop_end = 0.0
        for i in range(iterations):
            delay = start + i * period - clock()
            if delay > 0:
                time.sleep(delay)
            with manager.run_iteration():
                losses.append(train_step(model, optimizer, x, y))
                body_end, loop_end = clock(), time.time()
            if handler is None:
                handler = ext._own_handler
        # The last exit ran the last trigger and the manager's finalize.
        end_s = clock() - body_end
        loop_s = body_end - start
        load_after = os.getloadavg()[0]
        settle(emu, quiet_s=1.0)
        log = emu.call_log()
        texts = emu.texts()
        headers = emu.card_headers()
        rendered = _card_lines(emu.render())
        delivered, in_order, duplicates = _delivery(texts, losses)
        stats = handler.stats if handler is not None else None
    return CardRun(
        card=card,
        iterations=iterations,
        loop_s=loop_s,
        end_s=end_s,
        update_times=[t for m, s, t in log if m == UPDATE and s == 200],
        updates_429=sum(1 for m, s, _ in log if m == UPDATE and s == 429),
        other_calls=Counter(f"{m} {s}" for m, s, _ in log if m != UPDATE),
        handler_updates=handler.card_updates if handler is not None else (0, 0),
        loop_end=loop_end,
        headers=headers,
        card_render=rendered,
        delivered=delivered,
        in_order=in_order,
        duplicates=duplicates,
        messages=len(texts),
        dropped_records=0 if stats is None else stats.records_dropped,
        warnings=[str(w.message) for w in caught],
        load=(load_before, load_after),
    )


def _describe_delivery(r: CardRun) -> str:
    pct = 100.0 * r.delivered / r.iterations
    order = "in order" if r.in_order else "OUT OF ORDER"
    dup = f", {r.duplicates} dup" if r.duplicates else ""
    return f"{r.delivered}/{r.iterations} ({pct:.1f} %), {order}{dup}"


def _rows(on: CardRun, off: CardRun | None, interval: float) -> list[Row]:
    def base(value: Any) -> str:
        return "-" if off is None else str(value(off))

    windows = on.loop_s / interval
    during = len(on.during)
    per_interval = during / windows if windows else 0.0
    most = on.max_per_interval(interval)
    gap = on.min_gap()
    finished = on.final_header.startswith(FINISHED)
    delivered_ok = on.delivered == on.iterations and on.in_order
    return [
        Row(
            "chat.update calls (emulator: answered 200)",
            base(lambda r: len(r.update_times)),
            str(len(on.update_times)),
        ),
        Row(
            "  of which while the loop ran / at the end",
            base(lambda r: f"{len(r.during)} / {len(r.update_times) - len(r.during)}"),
            f"{during} / {len(on.update_times) - during}",
        ),
        Row(
            "chat.update answered 429 (emulator)",
            base(lambda r: r.updates_429),
            str(on.updates_429),
            target="0",
            result=verdict(on.updates_429 == 0),
        ),
        Row(
            "handler.card_updates (done, 429)",
            base(lambda r: r.handler_updates),
            str(on.handler_updates),
        ),
        Row(
            f"edits per card_interval ({interval:g} s) while the loop ran, mean",
            "-",
            f"{per_interval:.2f}",
            target="≤ 1",
            result=verdict(per_interval <= 1.0),
        ),
        Row(
            f"  most edits in any {interval:g} s window of the loop",
            "-",
            str(most),
            target="≤ 1",
            result=verdict(most <= 1),
        ),
        Row(
            "  shortest gap between two edits while the loop ran",
            "-",
            "-" if gap is None else seconds(gap),
        ),
        Row(
            "final card delivered (header)",
            base(lambda r: r.final_header),
            f"{'yes' if finished else 'NO'}: {on.final_header}",
            target=f"yes: {FINISHED}",
            result=verdict(finished),
        ),
        Row(
            "trigger texts delivered",
            base(_describe_delivery),
            _describe_delivery(on),
            target="100 %, in order",
            result=verdict(delivered_ok),
        ),
        Row(
            "records dropped (handler.stats)",
            base(lambda r: r.dropped_records),
            str(on.dropped_records),
        ),
        Row(
            "Slack messages in the channel",
            base(lambda r: r.messages),
            str(on.messages),
        ),
        Row(
            "chat.postMessage answered 429",
            base(lambda r: r.other_calls[f"{POST} 429"]),
            str(on.other_calls[f"{POST} 429"]),
        ),
        Row(
            "end of the run (last run_iteration exit: finalize, flush)",
            base(lambda r: seconds(r.end_s)),
            seconds(on.end_s),
        ),
        Row(
            "training loop wall time / iterations per s achieved",
            base(lambda r: f"{seconds(r.loop_s)} / {r.rate:.1f}"),
            f"{seconds(on.loop_s)} / {on.rate:.1f}",
        ),
        Row(
            "warnings raised",
            base(lambda r: len(r.warnings)),
            str(len(on.warnings)),
        ),
        Row(
            "load average (1 min) before / after",
            base(lambda r: f"{r.load[0]:.1f} / {r.load[1]:.1f}"),
            f"{on.load[0]:.1f} / {on.load[1]:.1f}",
        ),
    ]


def main() -> None:
    """Runs the card on, then the baseline with card=False; prints the table."""
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--minutes", type=float, default=10.0)
    args_parser.add_argument(
        "--baseline-minutes",
        type=float,
        default=None,
        help="length of the card=False run (default: --minutes; 0: none)",
    )
    args_parser.add_argument("--rate", type=float, default=RATE, help="triggers/s")
    args_parser.add_argument(
        "--latency", type=float, default=0.1, help="seconds per API call"
    )
    args = args_parser.parse_args()
    if args.quick:
        args.minutes = 1.0
    baseline = args.minutes if args.baseline_minutes is None else args.baseline_minutes
    limit_torch_threads()
    print_setup(
        "Live card under a per-iteration trigger",
        {
            "training": f"MLP 8-16-1, 1 torch thread, paced at {args.rate:g} "
            f"iterations/s for {args.minutes:g} min, {EPOCHS} epochs, "
            "trigger (1, 'iteration')",
            "msg": MSG,
            "ppe_slacklog": "drop-in (its own SlackHandler), card on, "
            f"card_interval default ({CARD_INTERVAL:g} s), chart_interval "
            "default (10 min; the final chart is drawn if matplotlib is there)",
            "baseline": f"the same with card=False, {baseline:g} min"
            if baseline
            else "none",
            "emulator": "Slack's rate limits (chat.update 50/min per "
            "workspace, burst 20; chat.postMessage ~1/s per channel), "
            f"{args.latency * 1000:g} ms per call, in a child process",
            "load": f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}",
        },
    )
    on = run(True, args.minutes, args.rate, args.latency)
    off = run(False, baseline, args.rate, args.latency) if baseline > 0 else None
    print_table(
        "Results (card=False run as the baseline)" if off else "Results",
        _rows(on, off, CARD_INTERVAL),
        base_name="card=False",
        ours_name="card on (default)",
    )
    print("The card as Slack shows it after the run (emulator rendering):")
    print(on.card_render)
    others = ", ".join(f"{k}: {v}" for k, v in sorted(on.other_calls.items()))
    print(f"\nOther API calls of the card-on run: {others}")
    for text in sorted(set(on.warnings))[:5]:
        print(f"warning: {text}")


if __name__ == "__main__":
    main()
