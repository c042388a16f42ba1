"""The run chart: a PNG of the card's metric history, drawn without pyplot."""

from __future__ import annotations

import io
import math
import random
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
import zlib
from typing import Any

import pytest

from ppe_slacklog import chart
from ppe_slacklog.chart import (
    MAX_POINTS,
    MAX_SERIES,
    downsample,
    draw_chart,
    finite_points,
    group_keys,
    select_series,
)

pytest.importorskip("matplotlib")

Points = list[tuple[float, float]]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking its CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return width, height


def decoded(data: bytes) -> Any:
    """The image's pixels as matplotlib reads them back (rows, columns, RGBA)."""
    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")


def run(epochs: int = 20, per_epoch: int = 10, seed: int = 0) -> dict[str, Points]:
    """A realistic history: loss falls, accuracy rises, validation is noisy."""
    rng = random.Random(seed)
    history: dict[str, Points] = {
        "main/loss": [],
        "main/accuracy": [],
        "val/loss": [],
        "val/accuracy": [],
    }
    for step in range(1, epochs * per_epoch + 1):
        x = step / per_epoch
        history["main/loss"].append((x, 2.2 * math.exp(-x / 3) + 0.06))
        history["main/accuracy"].append((x, 0.98 - 0.88 * math.exp(-x / 3)))
        if step % per_epoch == 0:
            noise = rng.gauss(0, 0.05)
            history["val/loss"].append((x, 2.0 * math.exp(-x / 3) + 0.25 + noise))
            history["val/accuracy"].append((x, 0.92 - 0.82 * math.exp(-x / 3) + noise))
    return history


def test_the_png_has_the_asked_size_and_shows_something() -> None:
    for size in [(1200, 700), (800, 450), (1001, 333)]:
        png = draw_chart(
            run(), title="run 3f2a · epoch 20/20", width_px=size[0], height_px=size[1]
        )
        assert png is not None
        assert png_size(png) == size
        pixels = decoded(png)
        assert pixels.shape[:2] == (size[1], size[0])
        # Not a blank image: a good share of it is ink, not background.
        inked = (pixels[..., :3].min(axis=2) < 0.9).mean()
        assert 0.02 < inked < 0.6


def test_default_size_and_sizes_out_of_range_are_kept_within_bounds() -> None:
    history = {"main/loss": [(1.0, 0.5), (2.0, 0.4)]}
    png = draw_chart(history, title="run")
    assert png is not None and png_size(png) == (1200, 700)
    tiny = draw_chart(history, title="run", width_px=10, height_px=-5)
    assert tiny is not None and png_size(tiny) == (320, 200)
    odd = draw_chart(history, title="run", width_px="wide", height_px=5e9)  # type: ignore[arg-type]
    assert odd is not None and png_size(odd) == (1200, 4000)


def test_nan_inf_strings_and_malformed_points_are_skipped() -> None:
    clean = run(epochs=5)
    dirty: dict[str, list[Any]] = {key: list(points) for key, points in clean.items()}
    dirty["main/loss"][3:3] = [
        (0.35, float("nan")),
        (float("inf"), 1.0),
        (0.36, float("-inf")),
        (0.37, "0.5"),
        (0.38, None),
        (0.39, True),
        (0.4,),
        "xy",
        None,
        (0.41, 1.0, 2.0),
    ]
    dirty["notes"] = ["no", "numbers", "here"]
    dirty["flag/loss"] = [(1.0, float("nan"))]
    assert finite_points(dirty["main/loss"]) == clean["main/loss"]
    # The same picture as without the junk, to the byte.
    assert draw_chart(dirty, title="run") == draw_chart(clean, title="run")


def test_numbers_of_other_types_are_drawn() -> None:
    import numpy as np
    import torch

    points = [(np.float32(1.0), np.int64(2)), (torch.tensor(2.0), 3), (3, 2.5)]
    assert finite_points(points) == [(1.0, 2.0), (2.0, 3.0), (3.0, 2.5)]
    # A tensor of many values is not a number; a failing iterator keeps its head.
    assert finite_points([(1, torch.ones(3))]) == []

    def failing() -> Any:
        yield (1, 2)
        raise RuntimeError("source went away")

    assert finite_points(failing()) == [(1.0, 2.0)]
    assert finite_points(42) == [] and finite_points("12") == []


def test_nothing_finite_to_draw_gives_none_without_an_error() -> None:
    reasons: list[str] = []
    for empty in [
        {},
        {"main/loss": []},
        {"main/loss": [(1.0, float("nan"))], "val/loss": [(float("inf"), 2.0)]},
    ]:
        assert draw_chart(empty, title="run", on_error=reasons.append) is None
    assert reasons == []


def test_at_most_eight_series_are_drawn_the_others_are_counted() -> None:
    history = {f"m{i}/loss": [(0.0, 1.0 + i), (1.0, 0.5 + i)] for i in range(12)}
    history = {"empty/loss": [(0.0, float("nan"))], **history}
    drawn, left_out = select_series(history)
    assert list(drawn) == [f"m{i}/loss" for i in range(MAX_SERIES)]
    assert left_out == 12 - MAX_SERIES
    png = draw_chart(history, title="run")
    assert png is not None and png_size(png) == (1200, 700)
    # What the left-out series hold does not change the picture.
    changed = {**history, "m11/loss": [(0.0, 1e9), (5.0, -1e9)]}
    assert draw_chart(changed, title="run") == png


def test_downsampling_keeps_first_last_and_extremes() -> None:
    rng = random.Random(7)
    points = [(i / 1000, rng.gauss(0.0, 1.0)) for i in range(30_000)]
    points[12_345] = (12.345, 50.0)  # a loss spike
    points[29_998] = (29.998, -50.0)  # the best value, next to the end
    kept = downsample(points)
    assert len(kept) <= MAX_POINTS
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (12.345, 50.0) in kept and (29.998, -50.0) in kept
    # In order, and only points that were there.
    positions = [points.index(p) for p in kept]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # Every bucket's extremes survive: the curve's envelope is the same.
    assert max(y for _, y in kept) == max(y for _, y in points)
    assert min(y for _, y in kept) == min(y for _, y in points)
    assert downsample(points[:MAX_POINTS]) == points[:MAX_POINTS]
    assert len(downsample(points, 3)) <= 4
    drawn, _ = select_series({"main/loss": points})
    assert drawn["main/loss"] == kept


def test_panels_group_families_and_split_scales() -> None:
    assert group_keys(
        {"main/loss": 2.0, "main/accuracy": 0.9, "val/loss": 2.4, "val/accuracy": 0.8}
    ) == [["main/loss", "val/loss"], ["main/accuracy", "val/accuracy"]]
    # A family whose scales differ by more than 100x: its own panel.
    assert group_keys({"a/loss": 1.0, "b/loss": 1000.0, "c/loss": 50.0}) == [
        ["a/loss", "c/loss"],
        ["b/loss"],
    ]
    # All zeros fits anywhere; keys without a "/" are their own family.
    assert group_keys({"lr": 0.1, "x/lr": 0.0, "loss": 3.0}) == [
        ["lr", "x/lr"],
        ["loss"],
    ]


def test_eight_families_and_a_log_scale_loss_are_drawn() -> None:
    history: dict[str, Points] = {
        f"main/{name}": [(i / 10, 1.0 + i) for i in range(50)]
        for name in ["a", "b", "c", "d", "e", "f", "g"]
    }
    history["main/loss"] = [(i / 10, 10.0 * 0.8**i) for i in range(50)]  # 5 decades
    best = {"main/loss": (4.9, 10.0 * 0.8**49), "main/a": (0.0, 1.0)}
    png = draw_chart(history, title="run", best=best, width_px=900, height_px=900)
    assert png is not None and png_size(png) == (900, 900)


def test_titles_with_emoji_and_dollars_are_drawn_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = draw_chart(
            {"cost$": [(0.0, 1.0), (1.0, 2.0)], "🚀/loss": [(0.0, 1.0)]},
            title="✅ run $3f2a$ · epoch 1/1",
            x_label="epoch ⏱",
            best={"cost$": (1.0, 2.0), "missing": (0.0, 0.0)},
        )
    assert png is not None
    # No "Glyph missing from font" warning, no mathtext error.
    assert [str(w.message) for w in caught] == []


def test_a_failure_goes_to_on_error_and_gives_none() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text today")

    reasons: list[str] = []
    history = {"main/loss": [(1.0, 0.5)]}
    assert draw_chart(history, title=Unprintable(), on_error=reasons.append) is None  # type: ignore[arg-type]
    assert reasons == ["RuntimeError: no text today"]

    def broken_reporter(reason: str) -> None:
        raise ValueError(reason)

    assert draw_chart(history, title=Unprintable(), on_error=broken_reporter) is None  # type: ignore[arg-type]
    assert draw_chart(history, title=Unprintable()) is None  # type: ignore[arg-type]
    # A bad best or a series that is not a sequence is skipped, not fatal.
    bad_best: Any = {"main/loss": "best"}
    png = draw_chart({**history, "x": 3}, title="run", best=bad_best)  # type: ignore[dict-item]
    assert png == draw_chart(history, title="run")

    class Exploding(dict[str, Any]):
        def __len__(self) -> int:
            raise RuntimeError("no length")

    assert draw_chart(history, title="run", best=Exploding()) == png


@pytest.mark.skipif(shutil.which("latex") is not None, reason="LaTeX would work")
def test_a_matplotlib_failure_goes_to_on_error() -> None:
    import matplotlib

    reasons: list[str] = []
    # A user's rcParams asking for LaTeX where there is none: matplotlib
    # raises while drawing.
    with matplotlib.rc_context({"text.usetex": True}):
        png = draw_chart(run(), title="run", on_error=reasons.append)
    assert png is None
    assert len(reasons) == 1 and "latex" in reasons[0]
    # The next draw, without that setting, works.
    assert draw_chart(run(), title="run") is not None


def test_two_threads_draw_at_once_and_get_what_one_thread_gets() -> None:
    histories = [run(seed=1), run(epochs=8, seed=2)]
    alone = [draw_chart(h, title=f"run {i}") for i, h in enumerate(histories)]
    assert all(png is not None for png in alone)
    results: dict[int, list[bytes | None]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def draw(index: int) -> None:
        start.wait()
        for _ in range(3):
            results[index].append(draw_chart(histories[index], title=f"run {index}"))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {0: [alone[0]] * 3, 1: [alone[1]] * 3}


def test_pyplot_figures_backend_and_rcparams_are_untouched() -> None:
    import matplotlib

    matplotlib.use("Agg")  # the user's pyplot, without a window
    import matplotlib.pyplot as plt

    figure = plt.figure()
    try:
        numbers, current = plt.get_fignums(), plt.gcf()
        backend = matplotlib.rcParams._get_backend_or_none()  # type: ignore[attr-defined]
        params = matplotlib.rcParams.copy()
        assert draw_chart(run(), title="run", best={"val/loss": (3.0, 1.0)})
        assert plt.get_fignums() == numbers and plt.gcf() is current
        assert matplotlib.rcParams._get_backend_or_none() == backend  # type: ignore[attr-defined]
        assert dict.__eq__(matplotlib.rcParams, params)
    finally:
        plt.close(figure)


def test_a_users_style_does_not_change_the_size_or_hide_the_text() -> None:
    import matplotlib

    # What a user's matplotlibrc may say: rcParams read at savefig time
    # must not apply, so the size stays the asked one.
    styled = {
        "savefig.bbox": "tight",
        "savefig.dpi": 300,
        "savefig.transparent": True,
        "text.color": "white",
    }
    with matplotlib.rc_context(styled):
        png = draw_chart(run(), title="run", width_px=640, height_px=360)
    assert png is not None and png_size(png) == (640, 360)
    assert decoded(png)[..., 3].min() == 1.0  # opaque, white background


def test_without_matplotlib_nothing_is_drawn_and_nothing_fails() -> None:
    code = textwrap.dedent(
        """
        import importlib.abc, sys

        tried = []

        class NoMatplotlib(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "matplotlib" or name.startswith("matplotlib."):
                    tried.append(name)
                    raise ImportError(f"No module named {name!r} (blocked)")
                return None

        sys.meta_path.insert(0, NoMatplotlib())
        import ppe_slacklog
        from ppe_slacklog import chart

        assert tried == [], tried  # importing the library does not even try
        reasons = []
        assert chart.available() is False
        assert chart.draw_chart(
            {"main/loss": [(1.0, 0.5)]}, title="run", on_error=reasons.append
        ) is None
        assert reasons == [] and tried, (reasons, tried)
        assert "matplotlib" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert done.stderr == ""


def test_available_is_cached_and_true_here() -> None:
    assert chart.available() is True
    assert chart.available() is True
    assert chart.available.cache_info().hits >= 1
