"""A PNG chart of a run's metrics over time, drawn from the trigger events.

The card's metric history (metric key -> ``(epoch_detail, value)`` points)
becomes one image a person can read on a phone: one panel per family of
metrics, the best value of each marked, the latest value in the legend.
matplotlib is an optional extra (``pip install ppe_slacklog[chart]``):
without it :func:`available` is False and :func:`draw_chart` returns None.

How metrics are put on panels (decided here, see :func:`group_keys`): keys
sharing the part after their last ``/`` (``main/loss`` and ``val/loss``;
``main/accuracy`` and ``val/accuracy``) share a panel, so train and
validation of one quantity can be compared on one axis; within such a
family, a metric whose scale (largest absolute value) is more than
``SCALE_RATIO`` times another's gets a panel of its own, since it would
flatten the other to a line. Losses that are positive and span more than
two decades are drawn on a log scale. Colors follow the part before the
last ``/`` (``main`` is the same color on every panel).

The drawing runs on the handler's sender thread, next to the user's own
plots (``PlotReport`` on the training thread, a notebook): it never touches
pyplot (its figure list and current figure are global and not thread-safe)
nor the global ``rcParams`` (``rc_context`` would change them for every
thread while it lasts), and it imports matplotlib only when called. The
user's style still applies to what is not set here (fonts); colors are set
explicitly so that a dark style cannot leave dark text on a white image.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, SupportsFloat

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "MAX_POINTS",
    "MAX_SERIES",
    "SCALE_RATIO",
    "available",
    "downsample",
    "draw_chart",
    "finite_points",
    "group_keys",
    "select_series",
]

#: Series drawn at most; later keys (in the mapping's order) are left out.
MAX_SERIES: Final = 8
#: Points drawn per series at most; longer series are downsampled.
MAX_POINTS: Final = 2_000
#: Scales (largest absolute value) differing by more than this: separate panels.
SCALE_RATIO: Final = 100.0

_DPI: Final = 100
# Sizes outside these would collapse the layout (too small) or cost seconds
# and megabytes (too large) on the sender thread.
_MIN_SIZE: Final = (320, 200)
_MAX_SIZE: Final = (4_000, 4_000)
# Fewer points than this: each is marked, so a run of two evaluations
# still shows two dots instead of a bare segment.
_MARKER_POINTS: Final = 60
_INK: Final = "#1d1c1d"
_MUTED: Final = "#616061"
_GRID: Final = "#dddddd"
_PALETTE: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
)
_REASON_MAX: Final = 300
# Exactly these types (not bool, a subclass of int) need no further checks.
_PLAIN: Final = (float, int)

# matplotlib does not promise thread safety even for separate figures (its
# text and mathtext caches are shared), so draws take turns; the sender is
# one thread per process anyway, so this only orders rare concurrent calls.
_DRAW_LOCK = threading.Lock()

Point = tuple[float, float]


@functools.cache
def available() -> bool:
    """Whether matplotlib can be imported here (the answer is cached).

    The first call imports matplotlib (under a second, more on a cold disk), so call it
    where that does not matter (at setup, or on the sender thread). It never
    raises: a broken matplotlib installation counts as missing.

    Returns:
        True when :func:`draw_chart` can draw.

    Example:
        >>> from ppe_slacklog import chart
        >>> chart.available() in (True, False)
        True
    """
    try:
        for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(module)
    except Exception:
        return False
    return True


def _number(value: object) -> float | None:
    if type(value) in _PLAIN:
        try:
            number = float(value)  # type: ignore[arg-type]  # an int or a float
        except OverflowError:  # an int beyond float's range
            return None
        return number if math.isfinite(number) else None
    # A bool observation is a flag, and a str one is text: neither is a
    # point on a curve, although float() would take both.
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, SupportsFloat):
        return None
    try:
        number = float(value)
    except Exception:  # any __float__ (a tensor of many values) may raise
        return None
    return number if math.isfinite(number) else None


def finite_points(points: object) -> list[Point]:
    """The ``(x, y)`` pairs of ``points`` whose two values are finite numbers.

    Anything else (NaN, inf, a string, a bool, a pair that is not a pair)
    is skipped, one point at a time; an iterable that fails part way keeps
    the points before the failure.

    Args:
        points: An iterable of ``(x, y)`` pairs, as given by the caller.

    Returns:
        The kept points as floats, in the given order.

    Example:
        >>> finite_points([(0, 1.5), (1, float("nan")), (2, "x"), (3, 2)])
        [(0.0, 1.5), (3.0, 2.0)]
    """
    if isinstance(points, (list, tuple)):
        # The common case in one comprehension (a long history has 100,000s
        # of points): every point a pair of finite floats or ints. Anything
        # else (a malformed point, an int too large for a float, a point of
        # another type or a non-finite one) goes point by point below.
        isfinite = math.isfinite
        try:
            plain = [
                (float(x), float(y))
                for x, y in points
                if type(x) in _PLAIN
                and type(y) in _PLAIN
                and isfinite(x)
                and isfinite(y)
            ]
        except Exception:
            plain = []
        if len(plain) == len(points):
            return plain
    kept: list[Point] = []
    if not isinstance(points, Iterable) or isinstance(points, (str, bytes)):
        return kept
    try:
        for point in points:
            try:
                x, y = point
            except Exception:
                continue
            nx, ny = _number(x), _number(y)
            if nx is not None and ny is not None:
                kept.append((nx, ny))
    except Exception:
        pass  # a failing iterator: what came before is still a curve
    return kept


def downsample(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` of ``points``, keeping the first, the last and the extremes.

    The points between the first and the last are cut into equal buckets;
    each bucket keeps its lowest and its highest point, in their order. The
    run's best and worst values (a loss spike, the lowest validation loss)
    therefore survive any length, which picking every n-th point would not
    promise.

    Args:
        points: The points, in drawing order.
        limit: The most points returned (at least 4).

    Returns:
        A list of at most ``max(limit, 4)`` points, in the given order.

    Example:
        >>> pts = [(float(i), 0.0) for i in range(10_000)]
        >>> pts[5_000] = (5_000.0, 9.0)
        >>> out = downsample(pts, 100)
        >>> len(out) <= 100, (5_000.0, 9.0) in out, out[0] == pts[0], out[-1] == pts[-1]
        (True, True, True, True)
    """
    limit = max(limit, 4)
    count = len(points)
    if count <= limit:
        return list(points)
    inner = count - 2
    buckets = (limit - 2) // 2
    kept = [points[0]]
    for bucket in range(buckets):
        start = 1 + bucket * inner // buckets
        stop = 1 + (bucket + 1) * inner // buckets
        # min/max/index run in C: a 30,000-point series takes milliseconds.
        ys = [y for _, y in points[start:stop]]
        low, high = ys.index(min(ys)), ys.index(max(ys))
        kept.extend(points[start + i] for i in sorted({low, high}))
    kept.append(points[-1])
    return kept


def select_series(
    series: Mapping[str, object],
) -> tuple[dict[str, list[Point]], int]:
    """What :func:`draw_chart` draws of ``series``, and how many series it leaves out.

    Each series keeps its finite points (:func:`finite_points`), at most
    :data:`MAX_POINTS` of them (:func:`downsample`); a series with none is
    dropped without taking a place. The first :data:`MAX_SERIES` remaining
    keys, in the mapping's order, are drawn; the others are counted.

    Args:
        series: Metric key -> ``(x, y)`` points.

    Returns:
        The series to draw (keys as ``str``) and the number left out.

    Example:
        >>> keys = {f"m{i}/loss": [(0, i)] for i in range(10)}
        >>> keys["junk"] = [(0, "text")]
        >>> drawn, left_out = select_series(keys)
        >>> list(drawn)[-1], left_out
        ('m7/loss', 2)
    """
    drawn: dict[str, list[Point]] = {}
    left_out = 0
    for key, points in series.items():
        kept = finite_points(points)
        if not kept:
            continue
        if len(drawn) >= MAX_SERIES:
            left_out += 1
            continue
        drawn[str(key)] = downsample(kept)
    return drawn, left_out


def _family(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _prefix(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""


def group_keys(scales: Mapping[str, float]) -> list[list[str]]:
    """The panels of a chart: which metric keys share an axis.

    Keys with the same family (the part after the last ``/``) share a panel
    unless their scales differ by more than :data:`SCALE_RATIO`; a key of
    scale 0 (all values zero) fits any panel. Panels come in the order of
    their first key, and keys keep their order within a panel.

    Args:
        scales: Metric key -> scale (the largest absolute value drawn), in
            the order the metrics should appear.

    Returns:
        The keys of each panel.

    Example:
        >>> group_keys({"main/loss": 2.3, "val/loss": 2.5, "val/accuracy": 0.9})
        [['main/loss', 'val/loss'], ['val/accuracy']]
        >>> group_keys({"main/loss": 2.3, "main/reg/loss": 4000.0})
        [['main/loss'], ['main/reg/loss']]
    """
    panels: list[list[str]] = []
    # Per panel: its family and the range of nonzero scales it holds.
    bounds: list[tuple[str, float, float]] = []
    for key, scale in scales.items():
        family = _family(key)
        for index, (fam, low, high) in enumerate(bounds):
            if fam != family:
                continue
            if scale == 0 or low == 0:
                fits = True
            else:
                fits = max(high, scale) <= SCALE_RATIO * min(low, scale)
            if fits:
                panels[index].append(key)
                if scale:
                    low = min(low, scale) if low else scale
                    bounds[index] = (fam, low, max(high, scale))
                break
        else:
            panels.append([key])
            bounds.append((family, scale, scale))
    return panels


def _grid(panels: int, width: int, height: int) -> tuple[int, int]:
    # Wide images put panels side by side first; a phone shows the image
    # across its width, so more than three columns would be unreadable.
    if panels <= 1:
        return 1, 1
    if panels <= 3 and width >= height:
        return 1, panels
    if panels <= 3:
        return panels, 1
    columns = 2 if panels == 4 or width < height else 3
    return math.ceil(panels / columns), columns


def _plain(text: str, glyphs: Callable[[str], bool]) -> str:
    # Characters the font cannot draw (the emoji of a state) would come out
    # as boxes, each with a warning: they are left out. matplotlib reads
    # $...$ as math: a metric named "cost$" must not fail the whole chart
    # with a parse error.
    kept = "".join(c for c in text if c.isspace() or glyphs(c))
    return " ".join(kept.split()).replace("$", r"\$")


def _glyph_test() -> Callable[[str], bool]:
    from matplotlib.font_manager import FontProperties, findfont, get_font

    # The first font of the user's family; a fallback font might draw more,
    # but a character this one lacks is only left out, never a failure.
    font = get_font(findfont(FontProperties()))
    return lambda char: font.get_char_index(ord(char)) != 0


def _short(value: float) -> str:
    return f"{value:.4g}"


def _at(x: float) -> str:
    return f"{round(x, 2):g}"


def _best_point(
    best: Mapping[str, tuple[float, float]] | None, key: str
) -> Point | None:
    try:
        point = best.get(key) if best else None
    except Exception:  # a mapping that fails: the series is drawn unmarked
        return None
    kept = finite_points([point]) if point is not None else []
    return kept[0] if kept else None


def _style_axes(ax: Axes, font: float) -> None:
    ax.set_facecolor("white")
    ax.tick_params(colors=_MUTED, labelcolor=_INK, labelsize=font * 0.85)
    for spine in ax.spines.values():
        spine.set_color(_GRID)
    ax.grid(True, color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def _draw_panel(
    ax: Axes,
    keys: list[str],
    data: Mapping[str, list[Point]],
    colors: Mapping[str, str],
    best: Mapping[str, tuple[float, float]] | None,
    font: float,
    plain: Callable[[str], str],
) -> None:
    from matplotlib.ticker import MaxNLocator

    _style_axes(ax, font)
    ys = [y for key in keys for _, y in data[key]]
    family = _family(keys[0])
    log = (
        "loss" in family.lower()
        and min(ys) > 0
        and max(ys) > 100 * min(ys)  # more than two decades
    )
    if log:
        ax.set_yscale("log")
    for key in keys:
        points = data[key]
        label = f"{key}  {_short(points[-1][1])}"
        mark = _best_point(best, key)
        if mark is not None and (mark[1] > 0 or not log):
            label += f"  (best {_short(mark[1])} @ {_at(mark[0])})"
        else:
            mark = None
        ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            color=colors[key],
            linewidth=2.2,
            marker="o" if len(points) < _MARKER_POINTS else None,
            markersize=5,
            label=plain(label),
        )
        if mark is not None:
            ax.plot(
                [mark[0]],
                [mark[1]],
                linestyle="none",
                marker="*",
                markersize=font * 1.4,
                markerfacecolor=colors[key],
                markeredgecolor=_INK,
                markeredgewidth=0.8,
                zorder=5,
            )
    ax.set_title(plain(family), color=_INK, fontsize=font, loc="left")
    xs = [x for key in keys for x, _ in data[key]]
    if max(xs) - min(xs) >= 3:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    # A fixed corner, not loc="best" (which tests every point against every
    # corner, costing more than the rest of the panel): a falling curve
    # leaves its upper right empty, a rising one its lower right.
    rising = sum(data[k][-1][1] - data[k][0][1] for k in keys) > 0
    corner: Literal["lower right", "upper right"] = (
        "lower right" if rising else "upper right"
    )
    ax.legend(
        loc=corner,
        fontsize=font * 0.8,
        frameon=True,
        facecolor="white",
        edgecolor=_GRID,
        framealpha=0.85,
        labelcolor=_INK,
    )


def _reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


def _size(value: object, default: int, low: int, high: int) -> int:
    number = _number(value)
    if number is None:
        return default
    return int(min(max(round(number), low), high))


def _render(
    data: Mapping[str, list[Point]],
    left_out: int,
    *,
    title: str,
    x_label: str,
    best: Mapping[str, tuple[float, float]] | None,
    width: int,
    height: int,
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scales = {key: max(abs(y) for _, y in points) for key, points in data.items()}
    panels = group_keys(scales)
    rows, columns = _grid(len(panels), width, height)
    # Text sized to the image, so that a phone showing it across its width
    # shows the same text size whatever size was asked for.
    font = max(
        8.0, 15.0 * min(width / 1200, height / 700) * (1.0 if rows < 3 else 0.85)
    )
    colors: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for key in data:
        prefix = _prefix(key)
        prefixes.setdefault(prefix, _PALETTE[len(prefixes) % len(_PALETTE)])
        colors[key] = prefixes[prefix]

    glyphs = _glyph_test()

    def plain(text: str) -> str:
        return _plain(text, glyphs)

    figure = Figure(
        figsize=(width / _DPI, height / _DPI),
        dpi=_DPI,
        facecolor="white",
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for index, ax in enumerate(axes.flat):
        if index < len(panels):
            _draw_panel(ax, panels[index], data, colors, best, font, plain)
            if index + columns >= len(panels):
                # The lowest panel of its column (the one below is unused):
                # shared x hides its tick labels unless told.
                ax.xaxis.set_tick_params(labelbottom=True)
        else:
            ax.set_visible(False)
    figure.suptitle(plain(title), color=_INK, fontsize=font * 1.3)
    figure.supxlabel(plain(x_label), color=_INK, fontsize=font * 0.9)
    if left_out:
        more = "metric" if left_out == 1 else "metrics"
        figure.text(
            0.995,
            0.005,
            f"+{left_out} more {more} not shown",
            ha="right",
            va="bottom",
            color=_MUTED,
            fontsize=font * 0.75,
        )
    buffer = io.BytesIO()
    # print_png, not savefig: savefig reads the user's savefig.* rcParams
    # (bbox "tight", transparent, dpi), which would change the image's size.
    figure.canvas.print_png(buffer)  # type: ignore[attr-defined]  # Agg's canvas
    return buffer.getvalue()


def draw_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "epoch",
    best: Mapping[str, tuple[float, float]] | None = None,
    width_px: int = 1200,
    height_px: int = 700,
    on_error: Callable[[str], None] | None = None,
) -> bytes | None:
    """Draws a run's metrics over time as a PNG of ``width_px`` x ``height_px``.

    Keys sharing their last ``/`` part share a panel (see
    :func:`group_keys`); at most :data:`MAX_SERIES` series are drawn (the
    first ones with a finite point, in the mapping's order), each with at
    most :data:`MAX_POINTS` points (see :func:`downsample`). Non-finite and
    non-numeric points are skipped. It never raises, never touches pyplot
    or the global rcParams, and may be called from any thread.

    Args:
        series: Metric key -> ``(x, y)`` points in order (x: the event's
            ``epoch_detail``), e.g. ``{"main/loss": [(1.0, 0.9), ...]}``.
        title: The image's title, e.g. ``"run 3f2a · epoch 7/20"``.
        x_label: What x is.
        best: Metric key -> its best ``(x, y)``, marked with a star and
            written in the legend.
        width_px: Width of the image in pixels (kept within 320..4000).
        height_px: Height of the image in pixels (kept within 200..4000).
        on_error: Called with a one-line reason when drawing failed (a
            matplotlib error); not called when matplotlib is missing or
            there is nothing to draw. An exception it raises is ignored.

    Returns:
        The PNG's bytes; None when matplotlib is missing, no series has a
        finite point, or drawing failed.

    Example:
        >>> from ppe_slacklog.chart import available, draw_chart
        >>> png = draw_chart(
        ...     {"main/loss": [(1.0, 0.9), (2.0, 0.5)], "val/loss": [(1.0, 1.0)]},
        ...     title="run 3f2a · epoch 2/20",
        ...     best={"val/loss": (1.0, 1.0)},
        ... )
        >>> png is None if not available() else png.startswith(b"\\x89PNG")
        True
        >>> draw_chart({"main/loss": [(1.0, float("nan"))]}, title="x") is None
        True
    """
    try:
        if not available():
            return None
        width = _size(width_px, 1200, _MIN_SIZE[0], _MAX_SIZE[0])
        height = _size(height_px, 700, _MIN_SIZE[1], _MAX_SIZE[1])
        data, left_out = select_series(series)
        if not data:
            return None
        with _DRAW_LOCK:
            return _render(
                data,
                left_out,
                title=str(title),
                x_label=str(x_label),
                best=best,
                width=width,
                height=height,
            )
    except Exception as error:
        if on_error is not None:
            # The caller's reporter failing must not fail the sender.
            with contextlib.suppress(Exception):
                on_error(_reason(error))
        return None
