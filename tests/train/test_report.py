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


def test_plots_are_written(tmp_path):
    results, per_image = _results()
    rng = np.random.default_rng(0)
    ex = {"image": rng.random((8, 8, 3)), "gt": np.full((8, 8), 10.0), "pred": np.full((8, 8), 12.0), "dynamic": None}
    for path in (
        plot_error_by_stage(results, tmp_path / "bars.png"),
        plot_error_histogram(per_image, tmp_path / "hist.png", region="all"),
        plot_examples({"stage 1": [ex], "stage 3": [ex]}, tmp_path / "grid.png"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
