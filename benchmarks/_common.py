"""Shared helpers of the benchmarks: emulator, tiny training, timing, tables.

Not a benchmark itself. The benchmarks import it (``python benchmarks/<name>.py``
puts this folder on ``sys.path``); run directly with ``--serve-emulator`` it is
the child process that hosts the Slack emulator (see :class:`RemoteEmulator`).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytorch_pfn_extras.training.extension import Extension

#: The channel every benchmark posts to (one of the emulator's channels).
CHANNEL = "experiment-progress"


# ----------------------------------------------------------------- emulator


class RemoteEmulator:
    """``ppe_slacklog.testing.SlackEmulator`` served from a child process.

    In the benchmark's own process the emulator's HTTP server threads would
    compete for the GIL (and count towards RSS) only when ppe_slacklog sends
    from its background thread, which would bias every comparison against it;
    Slack is another machine, so the emulator runs in another process. The
    faults it injects (latency, rate limits, outages) are the emulator's own,
    set through a line-based JSON pipe.

    Example:
        >>> with RemoteEmulator() as emu:  # doctest: +SKIP
        ...     emu.set_latency(0.1)
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-emulator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        hello = self._read()
        self.token: str = hello["token"]
        self.base_url: str = hello["base_url"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the Slack emulator process ended unexpectedly")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"Slack emulator: {reply['error']}")
        return reply

    def _call(self, op: str, *args: Any) -> Any:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self._proc.stdin.flush()
            return self._read()["result"]

    def set_latency(self, seconds: float) -> None:
        """Delays every following API call by ``seconds`` (server side)."""
        self._call("set_latency", seconds)

    def rate_limit(self, method: str, per_second: float, burst: int) -> None:
        """Token-bucket limit per (method, channel): HTTP 429 + Retry-After."""
        self._call("rate_limit", method, per_second, burst)

    def set_outage(self, on: bool) -> None:
        """While on, every call answers HTTP 503."""
        self._call("set_outage", on)

    def texts(self, channel: str = CHANNEL) -> list[str]:
        """Texts of the channel's messages (top level and replies), in post order."""
        result: list[str] = self._call("texts", channel)
        return result

    def statuses(self) -> list[tuple[str, int]]:
        """``(method, HTTP status)`` of every call the emulator answered."""
        return [(str(m), int(s)) for m, s in self._call("calls")]

    def call_log(self) -> list[tuple[str, int, float]]:
        """``(method, HTTP status, arrival time.time())`` of every call answered."""
        return [(str(m), int(s), float(t)) for m, s, t in self._call("call_log")]

    def card_headers(self, channel: str = CHANNEL) -> list[str]:
        """Header texts of the channel's Block Kit messages (live cards), in order.

        Read from the messages as Slack stores them now, i.e. after the last
        ``chat.update``.
        """
        result: list[str] = self._call("card_headers", channel)
        return result

    def render(self, channel: str = CHANNEL) -> str:
        """The channel as a person reads it (``SlackEmulator.render``)."""
        result: str = self._call("render", channel)
        return result

    def count_status(self, status: int) -> int:
        """How many calls were answered with ``status``."""
        return sum(1 for _, s in self.statuses() if s == status)

    def close(self) -> None:
        """Stops the child process."""
        if self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self._call("quit")
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _serve_emulator() -> None:
    """Child side of :class:`RemoteEmulator`: one JSON command per stdin line."""
    from ppe_slacklog.testing import SlackEmulator

    out = sys.stdout
    with SlackEmulator() as emu:
        out.write(json.dumps({"token": emu.token, "base_url": emu.base_url}) + "\n")
        out.flush()
        for line in sys.stdin:
            request = json.loads(line)
            op, args = request["op"], request["args"]
            result: Any = None
            try:
                if op == "quit":
                    out.write(json.dumps({"result": None}) + "\n")
                    out.flush()
                    return
                if op == "set_latency":
                    emu.set_latency(*args)
                elif op == "rate_limit":
                    emu.rate_limit(args[0], per_second=args[1], burst=args[2])
                elif op == "set_outage":
                    emu.set_outage(*args)
                elif op == "texts":
                    result = [m.text for m in emu.messages(args[0])]
                elif op == "calls":
                    result = [[c.method, c.status] for c in emu.calls]
                elif op == "call_log":
                    result = [[c.method, c.status, c.time] for c in emu.calls]
                elif op == "card_headers":
                    result = [
                        str(b["text"]["text"])
                        for m in emu.messages(args[0])
                        for b in (m.blocks or ())
                        if b.get("type") == "header"
                    ]
                elif op == "render":
                    result = emu.render(args[0])
                else:
                    raise ValueError(f"unknown op {op!r}")
                reply: dict[str, Any] = {"result": result}
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()


# ------------------------------------------------------------------ training


def ppe_slack(emu: RemoteEmulator, **kwargs: Any) -> Extension:
    """pytorch-pfn-extras' own ``Slack`` extension, pointed at the emulator.

    Its ``WebClient`` is built in ``__init__`` for Slack's URL; setting
    ``base_url`` on it afterwards is configuration, not patching.
    """
    from pytorch_pfn_extras.training.extensions.slack import Slack

    ext = Slack(CHANNEL, token=emu.token, **kwargs)
    ext._client.base_url = emu.base_url
    return ext


def slacklog_slack(emu: RemoteEmulator, **kwargs: Any) -> Extension:
    """``ppe_slacklog.Slack`` as a drop-in: it attaches its own SlackHandler."""
    import ppe_slacklog

    ext: Extension = ppe_slacklog.Slack(
        CHANNEL, token=emu.token, base_url=emu.base_url, **kwargs
    )
    return ext


def train_step(model: Any, optimizer: Any, x: Any, y: Any) -> float:
    """One SGD step of the benchmarks' MLP; reports and returns its loss."""
    import torch
    from pytorch_pfn_extras.reporting import report

    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    value = float(loss.item())
    report({"loss": value})
    return value


@dataclass
class Run:
    """What one training loop did.

    Attributes:
        iteration_ns: Duration of each ``run_iteration`` block (the step and
            the extensions it triggers), pacing sleeps excluded.
        finalize_ns: Duration of ``manager.finalize()`` (end events, flushes).
        wall_s: From before the first iteration to after ``finalize``,
            pacing sleeps included.
        losses: The loss reported at each iteration.
        warnings: Warnings raised while the loop ran (any thread).
    """

    iteration_ns: list[int]
    finalize_ns: int
    wall_s: float
    losses: list[float]
    warnings: int

    @property
    def loop_ns(self) -> int:
        """Total time of the iterations, finalize excluded."""
        return sum(self.iteration_ns)


def train(
    iterations: int,
    extensions: Sequence[tuple[Extension, tuple[int, str]]] = (),
    *,
    period: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> Run:
    """Trains a tiny MLP with a real ``ExtensionsManager`` for ``iterations``.

    The manager's stop trigger lies beyond ``iterations``, so the loop never
    finalizes by itself: ``finalize()`` is called and timed separately.

    Args:
        iterations: Iterations to run.
        extensions: ``(extension, trigger)`` pairs to register.
        period: When given, iteration ``i`` starts ``i * period`` seconds after
            the first (sleeping in between), like a training of that pace.
        on_start: Called just before the first iteration (timers, faults).
    """
    import torch
    from pytorch_pfn_extras.training.manager import ExtensionsManager

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    losses: list[float] = []
    times: list[int] = []
    with (
        tempfile.TemporaryDirectory() as out_dir,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        manager = ExtensionsManager(
            model, optimizer, 2, iters_per_epoch=iterations, out_dir=out_dir
        )
        for ext, trigger in extensions:
            manager.extend(ext, trigger=trigger)
        if on_start is not None:
            on_start()
        clock = time.perf_counter_ns
        start = time.perf_counter()
        for i in range(iterations):
            if period is not None:
                delay = start + i * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            t0 = clock()
            with manager.run_iteration():
                value = train_step(model, optimizer, x, y)
            times.append(clock() - t0)
            losses.append(value)
        t0 = clock()
        manager.finalize()
        finalize_ns = clock() - t0
        wall = time.perf_counter() - start
    return Run(times, finalize_ns, wall, losses, len(caught))


def background_cpu_s() -> float:
    """CPU seconds used so far by this process's threads other than the main one.

    What the background threads (a sender, a queue listener) take from the
    training: with the GIL, their Python work is time the loop cannot run.
    Read from the scheduler's per-thread counters (nanoseconds), so short
    bursts count. Linux only (``/proc``); 0.0 elsewhere.
    """
    main = threading.main_thread().native_id
    total_ns = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tids:
        if int(tid) == main:
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh:
                total_ns += int(fh.read().split()[0])  # time spent on a CPU
        except (OSError, ValueError, IndexError):  # the thread ended meanwhile
            continue
    return total_ns / 1e9


def limit_torch_threads() -> None:
    """One intra-op thread: the benchmarks share a small machine."""
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------- delivery


@dataclass
class Delivery:
    """Which expected lines reached Slack, and whether in order.

    Attributes:
        expected: Lines that should have arrived.
        delivered: Distinct expected lines found.
        in_order: First occurrences appear in the expected order.
        duplicates: Extra occurrences of lines already found.
        messages: Slack messages in the channel.
    """

    expected: int
    delivered: int
    in_order: bool
    duplicates: int
    messages: int
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything arrived, in order."""
        return self.delivered == self.expected and self.in_order

    def describe(self) -> str:
        """``"1200/1200 (100.0 %), in order"``."""
        pct = 100.0 * self.delivered / self.expected if self.expected else 100.0
        order = "in order" if self.in_order else "OUT OF ORDER"
        dup = f", {self.duplicates} dup" if self.duplicates else ""
        return f"{self.delivered}/{self.expected} ({pct:.1f} %), {order}{dup}"


def check_delivery(texts: Sequence[str], expected: Sequence[str]) -> Delivery:
    """Looks for each expected line in the messages, batched or not.

    A line counts wherever it appears as a whole (not as part of a longer
    number or word), so several records sharing one Slack message count
    one by one.
    """
    index = {line: i for i, line in enumerate(expected)}
    alternatives = "|".join(re.escape(s) for s in sorted(index, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w.])")
    seen: list[int] = []
    found: set[int] = set()
    duplicates = 0
    for text in texts:
        for match in pattern.finditer(text):
            i = index[match.group(0)]
            if i in found:
                duplicates += 1
            else:
                found.add(i)
                seen.append(i)
    in_order = all(a < b for a, b in itertools.pairwise(seen))
    missing = [line for line, i in index.items() if i not in found]
    return Delivery(
        len(expected), len(found), in_order, duplicates, len(texts), missing
    )


def settle(emu: RemoteEmulator, quiet_s: float = 1.0, timeout_s: float = 30.0) -> None:
    """Waits until the emulator has seen no new call for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        count = len(emu.statuses())
        if count == last:
            return
        last = count
        time.sleep(quiet_s)


# --------------------------------------------------------------- handler


def supported_kwargs(cls: type, wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``wanted`` that ``cls.__init__`` accepts by name.

    The library's options are still being added; a benchmark asks for the
    ones that help it measure fairly and says which were available.
    """
    params = inspect.signature(cls).parameters
    return {k: v for k, v in wanted.items() if k in params}


# ------------------------------------------------------------------ output


def ns_to_us(ns: float) -> str:
    """``12.3 µs``."""
    return f"{ns / 1000:,.1f} µs"


def seconds(value: float) -> str:
    """``1.234 s``."""
    return f"{value:,.3f} s"


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


@dataclass
class Row:
    """One line of a result table; an empty ``result`` marks an informative row."""

    measure: str
    base: str
    ours: str
    ratio: str = ""
    target: str = ""
    result: str = ""
    #: A third implementation's value (see ``print_table``'s ``middle_name``).
    middle: str = ""


def print_table(
    title: str,
    rows: Sequence[Row],
    *,
    base_name: str = "ppe",
    ours_name: str = "ppe_slacklog",
    middle_name: str | None = None,
) -> None:
    """Prints ``rows`` as an aligned text table under ``title``.

    With ``middle_name``, each row's ``middle`` value gets a column of its
    own between ``base_name`` and ``ours_name`` (a floor, say).
    """
    middle = () if middle_name is None else (middle_name,)
    header = ("measure", base_name, *middle, ours_name, "ratio", "target", "result")
    cells = [header] + [
        (
            r.measure,
            r.base,
            *(() if middle_name is None else (r.middle,)),
            r.ours,
            r.ratio,
            r.target,
            r.result,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))

    print()
    print(title)
    print(line(header).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row).rstrip())
    print()


def print_setup(title: str, items: dict[str, object]) -> None:
    """Prints what is measured and under which conditions."""
    print(title)
    width = max(len(k) for k in items)
    for key, value in items.items():
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` switch every benchmark has."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--quick", action="store_true", help="short smoke run (numbers are rough)"
    )
    return result


@contextlib.contextmanager
def progress(what: str) -> Iterator[None]:
    """Prints ``what ...`` then the seconds it took (stdout, flushed)."""
    print(f"  {what} ...", end="", flush=True)
    start = time.perf_counter()
    yield
    print(f" {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-emulator"]:
        _serve_emulator()
    else:
        sys.exit(__doc__)
