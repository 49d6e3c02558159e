"""bench/contact_cue.py: a car on the road gives ratio 1, one stage 1 has too near gives > 1, a cut-off one is apart."""
from __future__ import annotations

import numpy as np

from conftest import load_bench

H, W = 32, 48


def _scene():
    """A road (inverse depth linear in the row) with three cars standing on it: 1 parked at the
    road's depth, 2 crossing at half its depth (stage 1 has it too near), 3 cut by the lower edge."""
    rows = np.arange(H)[:, None] + 0.5
    inverse = 0.02 * (rows - 12.0) * np.ones((1, W))
    road = np.where(inverse > 0, 1.0 / np.maximum(inverse, 1e-9), 100.0)
    depth = road.copy()
    ids = np.zeros((H, W), np.int64)
    contact = 1.0 / (0.02 * (20.0 - 12.0))  # the plane at the lower edge of row 19
    ids[12:20, 4:14], depth[12:20, 4:14] = 1, contact
    ids[12:20, 20:30], depth[12:20, 20:30] = 2, contact / 2
    ids[24:32, 36:46], depth[24:32, 36:46] = 3, 5.0
    ground = (np.arange(H)[:, None] >= 14) & (ids == 0)
    return depth, ground, ids, {1: "parked", 2: "crossing", 3: "oncoming"}


def test_contact_ratio_is_one_on_the_road_and_two_for_a_car_at_half_the_depth():
    bench = load_bench("contact_cue")
    depth, ground, ids, kinds = _scene()
    for body in (False, True):
        rows = {k: (r, seen) for k, r, seen in bench.instance_contact_ratios(depth, ground, ids, kinds, body=body)}
        assert np.isclose(rows["parked"][0], 1.0, rtol=1e-6) and rows["parked"][1]
        assert np.isclose(rows["crossing"][0], 2.0, rtol=1e-6) and rows["crossing"][1]
        assert not rows["oncoming"][1]  # its bottom edge is the image's: the contact is not in view


def test_summarise_counts_too_near_cars_and_keeps_the_cut_off_ones_apart():
    bench = load_bench("contact_cue")
    rows = [("parked", 1.0, True), ("parked", 0.5, True), ("crossing", 2.0, True), ("oncoming", 3.0, False)]
    out = bench.summarise(rows)
    assert out["parked"]["instances"] == 2 and out["parked"]["off_share"] == 0.5 and out["parked"]["too_near_share"] == 0.0
    assert out["crossing"]["too_near_share"] == 1.0
    assert out["oncoming"] == {"instances": 0, "contact_out_of_view": 1}
    assert "lead" in out and out["lead"]["instances"] == 0
    table = bench.format_table({"frames": 1, "off_factor": 1.5, "per_kind": {"bottom": out}}).splitlines()
    assert len(table) == 2 + 4  # title, header, one line per kind
    crossing = next(line for line in table if line.startswith("bottom    crossing")).split()
    assert crossing[2:] == ["1", "2.00", "2.00", "2.00", "1.00", "1.00", "0"]
