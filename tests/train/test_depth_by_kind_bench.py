"""bench/depth_by_kind.py: the per-kind regions and the table."""
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


def test_format_table_has_a_row_per_checkpoint_and_a_dash_for_a_missing_region():
    result = {"stage 1": {"dynamic": {"abs_rel": 0.2, "depth_ratio": 0.84, "images": 3}, "lead": {"abs_rel": 0.1, "depth_ratio": 0.9, "images": 3}},
              "stage 3": {"dynamic": {"abs_rel": 0.19, "depth_ratio": 0.92, "images": 3}}}
    text = _bench().format_table(result)
    assert "| stage 1 | 0.200 (0.84x) | 0.100 (0.90x) |" in text
    assert "| stage 3 | 0.190 (0.92x) | – |" in text
