"""bench/depth_by_kind.py: the per-kind regions and the signed depth ratio."""
from __future__ import annotations

import numpy as np

from conftest import load_bench


def _bench():
    return load_bench("depth_by_kind")


def test_kind_regions_split_cars_by_kind_and_keep_the_rest_of_the_static_area():
    ids = np.zeros((4, 6), np.int64)
    ids[:, 0:2] = 1  # an oncoming car
    ids[:, 4:6] = 2  # a parked car
    dyn = ids == 1
    regions = _bench().kind_regions(ids, {1: "oncoming", 2: "parked", 3: "lead"}, dyn)
    assert regions["oncoming"].sum() == 8 and regions["parked"].sum() == 8
    assert regions["lead"] is None and regions["crossing"] is None  # not in this frame
    assert (regions["static_not_car"] == ((ids == 0) & ~dyn)).all() and regions["static_not_car"].sum() == 8


def test_median_ratio_is_signed_and_ignores_invalid_pixels():
    bench = _bench()
    gt = np.full((2, 4), 10.0)
    scaled = np.full((2, 4), 5.0)  # too near: ratio 0.5
    valid = np.ones((2, 4), bool)
    valid[0, 0] = False
    scaled[0, 0] = 1000.0  # an invalid pixel must not count
    assert bench.median_ratio(scaled, gt, valid, np.ones((2, 4), bool)) == 0.5
    assert bench.median_ratio(scaled, gt, valid, None) is None
    assert bench.median_ratio(scaled, gt, valid, ~valid) is None  # only invalid pixels


def test_format_table_has_a_row_per_checkpoint_and_a_dash_for_a_missing_region():
    result = {"stage 1": {"dynamic": {"abs_rel": 0.2, "depth_ratio": 0.84, "images": 3}, "lead": {"abs_rel": 0.1, "depth_ratio": 0.9, "images": 3}},
              "stage 3": {"dynamic": {"abs_rel": 0.19, "depth_ratio": 0.92, "images": 3}}}
    text = _bench().format_table(result)
    assert "| stage 1 | 0.200 (0.84x) | 0.100 (0.90x) |" in text
    assert "| stage 3 | 0.190 (0.92x) | – |" in text
