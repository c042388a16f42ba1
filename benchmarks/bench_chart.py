"""Time to draw the run chart (``ppe_slacklog.chart.draw_chart``) per size.

Run: ``python benchmarks/bench_chart.py`` (``--quick`` for a smoke run).

The chart is drawn on the handler's sender thread, so each draw delays the
posts waiting behind it by that long. A run's history of S series of N
points each (a falling loss with noise, a rising accuracy, for ``main/`` and
``val/``, then further families) is drawn at the default 1200 x 700 pixels;
each size is drawn ``--repeat`` times and the median is printed, split into
the preparation (skipping non-finite points, downsampling to at most 2,000
points per series: ``select_series``) and the whole draw. The base is 8
series x 2,000 points, the most that is drawn without downsampling; longer
histories add only their preparation (linear in the points, a fraction of
the draw), since downsampling bounds what is drawn. The first draw of the
process (font loading) is reported on its own row.
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


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn()``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


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
        "Run chart: draw time at 1200 x 700 px, median of each size's draws",
        {"repeat": repeat, "points drawn per series at most": MAX_POINTS},
    )
    start = time.perf_counter()
    draw_chart(history(2, 20), title="first draw")
    first = time.perf_counter() - start

    rows = [Row("first draw in the process (fonts)", "", ms(first))]
    base = 0.0
    for series, points in [base_size, *sizes]:
        data = history(series, points)
        prepare = timed(lambda data=data: select_series(data), repeat)  # type: ignore[misc]
        draw = timed(lambda data=data: draw_chart(data, title="run"), repeat)  # type: ignore[misc]
        base = base or draw
        targeted = (series, points) == target_size
        rows.append(
            Row(
                f"draw {series} x {points:,} points (prepare {ms(prepare)})",
                ms(base),
                ms(draw),
                f"{draw / base:.2f}x",
                f"<= {_TARGET_RATIO:g}x" if targeted else "",
                verdict(draw / base <= _TARGET_RATIO) if targeted else "",
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
