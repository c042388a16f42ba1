"""Time to draw the run chart (``ppe_slacklog.chart.draw_chart``) per size.

Run: ``python benchmarks/bench_chart.py`` (``--quick`` for a smoke run).

The chart is drawn on the handler's sender thread, so each draw delays the
posts waiting behind it by that long. A run's history of S series of N
points each (a falling loss with noise, a rising accuracy, for ``main/`` and
``val/``, then further families) is drawn at the default 1200 x 700 pixels,
5 times per size (2 with ``--quick``). Printed are medians of the drawing
thread's CPU time, which other processes' load does not inflate, and of the
wall time, which is what delays the posts; the preparation (skipping
non-finite points, downsampling to at most 2,000 points per series:
``select_series``) is also timed on its own. The base is 8 series x 2,000
points, the most drawn without downsampling: longer histories add only
their preparation (linear in the points), since downsampling bounds what is
drawn. The first draw of the process (font loading) has a row of its own.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from _common import Row, median, parser, print_setup, print_table, verdict

from ppe_slacklog.chart import MAX_POINTS, available, draw_chart, select_series

_FAMILIES = ("loss", "accuracy", "lr", "grad_norm")
# Target: a draw of 8 x 30,000 points costs at most this many times one of
# 8 x 2,000 (downsampling keeps the drawn points bounded).
_TARGET_RATIO = 1.5


def history(
    series: int, points: int, seed: int = 0
) -> dict[str, list[tuple[float, float]]]:
    """``series`` metrics of ``points`` points each over 20 epochs."""
    rng = random.Random(seed)
    result: dict[str, list[tuple[float, float]]] = {}
    for index in range(series):
        prefix = ("main", "val")[index % 2]
        family = _FAMILIES[(index // 2) % len(_FAMILIES)]
        key = f"{prefix}/{family}" if index < 8 else f"{prefix}{index}/{family}"
        rows = []
        for step in range(points):
            x = 20.0 * (step + 1) / points
            trend = math.exp(-x / 3)
            y = 2.2 * trend + 0.06 if index % 4 < 2 else 0.98 - 0.88 * trend
            rows.append((x, y * math.exp(rng.gauss(0.0, 0.1))))
        result[key] = rows
    return result


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds (this thread's) of ``repeat`` calls of ``fn()``.

    The CPU time does not grow with other processes' load; the wall time is
    what delays the posts behind a draw.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return median(walls), median(cpus)


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    """Prints the draw time per size."""
    args = parser(__doc__.splitlines()[0]).parse_args()
    if not available():
        print("matplotlib is not installed: pip install 'ppe_slacklog[chart]'")
        return
    repeat = 2 if args.quick else 5
    base_size = (8, 2_000)
    target_size = (8, 30_000)
    sizes = [(8, 200), (4, 2_000), target_size, (8, 100_000)]
    if args.quick:
        sizes = [target_size]
    print_setup(
        "Run chart: time per draw at 1200 x 700 px (median; ratio of CPU times)",
        {"repeat": repeat, "points drawn per series at most": MAX_POINTS},
    )
    start = time.perf_counter()
    draw_chart(history(2, 20), title="first draw")
    first = time.perf_counter() - start

    rows = [Row("first draw in the process (fonts)", "", ms(first))]
    base = 0.0
    for series, points in [base_size, *sizes]:
        data = history(series, points)
        _, prepare = timed(lambda data=data: select_series(data), repeat)  # type: ignore[misc]
        wall, cpu = timed(lambda data=data: draw_chart(data, title="run"), repeat)  # type: ignore[misc]
        base = base or cpu
        targeted = (series, points) == target_size
        rows.append(
            Row(
                f"draw {series} x {points:,} points (prepare {ms(prepare)} CPU)",
                f"{ms(base)} CPU",
                f"{ms(cpu)} CPU, {ms(wall)} wall",
                f"{cpu / base:.2f}x",
                f"<= {_TARGET_RATIO:g}x" if targeted else "",
                verdict(cpu / base <= _TARGET_RATIO) if targeted else "",
            )
        )
    print_table(
        "Draw time per size (base: 8 x 2,000 points, the most drawn as given)",
        rows,
        base_name="8 x 2,000",
        ours_name="this size",
    )


if __name__ == "__main__":
    main()
