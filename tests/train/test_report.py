"""Per-region report tables and plots."""
from __future__ import annotations

import csv
import json

import numpy as np

from mcdepth_train.eval.metrics import RegionMetrics, evaluate_image
from mcdepth_train.eval.report import markdown_table, plot_error_by_stage, plot_error_histogram, plot_examples, write_tables


def _results():
    gt = np.full((4, 4), 10.0)
    dyn = np.zeros((4, 4), bool)
    dyn[0, 0] = True
    stage1_pred = gt.copy()
    stage1_pred[0, 0] = 20.0  # dynamic pixel twice too far
    final_pred = gt.copy()
    out, per_image = {}, {}
    for name, pred in (("stage 1", stage1_pred), ("stage 3", final_pred)):
        acc = RegionMetrics()
        acc.add(*evaluate_image(pred, gt, dyn))
        acc.add(*evaluate_image(pred, gt, np.zeros_like(dyn)))  # an image without dynamic pixels
        out[name] = acc.mean()
        per_image[name] = acc.per_image
    return out, per_image


def test_tables_hold_per_region_values(tmp_path):
    results, _ = _results()
    assert results["stage 1"]["dynamic"]["abs_rel"] == 1.0  # |20-10|/10, median scaling keeps ratio 1
    assert results["stage 1"]["dynamic"]["images"] == 1  # the image without dynamic pixels is skipped
    assert results["stage 3"]["all"]["abs_rel"] == 0.0
    md = markdown_table(results)
    assert "| stage 1 | 1.000 |" in md and "| 1/2 |" in md
    paths = write_tables(results, tmp_path)
    assert json.loads(paths["json"].read_text()) == results
    rows = list(csv.DictReader(open(paths["csv"])))
    dyn_rows = [r for r in rows if r["region"] == "dynamic"]
    assert [float(r["abs_rel"]) for r in dyn_rows] == [1.0, 0.0]


def test_missing_region_shows_a_dash():
    md = markdown_table({"x": {"all": {"abs_rel": 0.1, "sq_rel": 0.2, "a1": 0.9, "images": 3}, "static": None, "dynamic": None}})
    assert "| x | – | – | – | – | – | – | 0.100 | 0.200 | 0.900 | 0/3 |" in md


def _png(path):
    """(H, W, 3) float RGB of a written PNG (checks the magic bytes first)."""
    import matplotlib.pyplot as plt

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return plt.imread(path)[..., :3]


def _runs(flags) -> int:
    """Number of runs of True in a 1-D boolean array."""
    flags = np.asarray(flags, dtype=np.int8)
    return int(np.sum(np.diff(np.concatenate([[0], flags])) == 1))


def _colour_pixels(image, hex_colour: str, tol: float = 0.02) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.all(np.abs(image - rgb) < tol, axis=-1).sum())


def test_error_bars_are_sized_and_drawn_from_the_values(tmp_path):
    results, _ = _results()
    bars = _png(plot_error_by_stage(results, tmp_path / "bars.png"))
    assert bars.shape == (350, 500, 3)  # figsize (5, 3.5) at 100 dpi
    # Bar colours: matplotlib's C0 (dynamic), C1 (static), C2 (all). Stage 1's dynamic AbsRel is 1.0
    # and its 'all' AbsRel 1/16 (one bad pixel of 16); stage 3's are 0 (no bar). Their areas (less
    # the legend's patch, measured on a plot without bars) keep that ratio.
    legend = _png(plot_error_by_stage({"x": {"dynamic": None, "static": None, "all": None}}, tmp_path / "none.png"))
    dynamic = _colour_pixels(bars, "#1f77b4") - _colour_pixels(legend, "#1f77b4")
    whole = _colour_pixels(bars, "#2ca02c") - _colour_pixels(legend, "#2ca02c")
    assert results["stage 1"]["all"]["abs_rel"] == 1 / 16 and dynamic > 1000
    assert 16 * 0.8 < dynamic / whole < 16 * 1.2
    static = _colour_pixels(bars, "#ff7f0e") - _colour_pixels(legend, "#ff7f0e")
    assert static < whole / 2  # static AbsRel 0 in both stages: at most the zero-height bars' edges


def test_error_histogram_draws_one_coloured_series_per_setting(tmp_path):
    _, per_image = _results()
    hist = _png(plot_error_histogram(per_image, tmp_path / "hist.png", region="all"))
    assert hist.shape == (350, 600, 3) and hist.std() > 0.05
    one = _png(plot_error_histogram({"stage 1": per_image["stage 1"]}, tmp_path / "one.png", region="all"))
    # C1 (orange, second setting) appears, blended at alpha 0.5 on white, only when it is drawn
    orange = "#ff" + "%02x%02x" % (round(255 - 0.5 * (255 - 0x7f)), round(255 - 0.5 * (255 - 0x0e)))
    assert _colour_pixels(hist, orange, tol=0.03) > 100 and _colour_pixels(one, orange, tol=0.03) < _colour_pixels(hist, orange, tol=0.03)


def test_example_grid_has_a_panel_per_input_depth_and_error(tmp_path):
    rng = np.random.default_rng(0)
    ex = {"image": rng.random((8, 8, 3)), "gt": np.full((8, 8), 10.0), "pred": np.full((8, 8), 12.0), "dynamic": None}
    grid = _png(plot_examples({"stage 1": [ex, ex], "stage 3": [ex, ex]}, tmp_path / "grid.png"))
    cols = 2 + 2 * 2  # image, GT, two depths, two errors
    assert grid.shape == (round(90 * (1.2 * 2 + 0.6)), round(90 * 2.6 * cols), 3)
    drawn = np.any(np.abs(grid - 1.0) > 0.02, axis=-1)  # not white
    middle_rows = [grid.shape[0] // 4, 3 * grid.shape[0] // 4]  # through each example row
    assert [_runs(drawn[r]) for r in middle_rows] == [cols, cols]
    # the image panel shows the random image (varied pixels); the constant depth panels do not
    row = grid[middle_rows[0]]
    starts = np.flatnonzero(np.diff(np.concatenate([[0], drawn[middle_rows[0]].astype(np.int8)])) == 1)
    width = 20
    assert row[starts[0] + 5:starts[0] + 5 + width].std(axis=0).max() > 0.05
    assert row[starts[2] + 5:starts[2] + 5 + width].std(axis=0).max() < 0.01
