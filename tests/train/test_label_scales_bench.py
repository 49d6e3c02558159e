"""bench/label_scales.py: a car standing on the road, its scale and the factors of its contact error."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import load_bench

H, W = 32, 48
HORIZON, SLOPE = 12.0, 0.02  # road inverse depth = SLOPE * (row - HORIZON), rows at pixel centres
TOP, BOTTOM, LEFT, RIGHT = 14, 20, 16, 32  # the car: rows 14..19, so it meets the road at row 20's upper edge


def _scene():
    """(true depth, ground, ids, stage 1): a road with one car standing on it; stage 1 equal to the truth."""
    rows = np.arange(H)[:, None] + 0.5
    inverse = SLOPE * (rows - HORIZON) * np.ones((1, W))
    depth = np.where(inverse > 0, 1.0 / np.maximum(inverse, 1e-9), 60.0)
    ids = np.zeros((H, W), np.int64)
    ids[TOP:BOTTOM, LEFT:RIGHT] = 1
    depth[TOP:BOTTOM, LEFT:RIGHT] = 1.0 / (SLOPE * (BOTTOM - HORIZON))  # an upright face at the contact's depth
    ground = (np.arange(H)[:, None] >= HORIZON + 1) & (ids == 0)
    return depth, ground, ids, depth.copy()


def test_a_car_on_the_road_with_its_exact_mask_has_every_factor_one():
    bench = load_bench("label_scales")
    true_depth, ground, ids, stage1 = _scene()
    mask = ids == 1
    object_depth = np.where(mask, 2.0 * true_depth, 0.0)  # o_k twice the depth: true scale 0.5
    row = bench.instance_scales(stage1, ground, object_depth, mask, 0.4, true_depth, ids)
    assert row["chosen"] == pytest.approx(0.8)  # 0.4 against the true 0.5
    for column in ("stage1_level", "contact", "plane", "bottom_edge", "shape", "contact_flat",
                   "generator_mask_fitted", "generator_mask_true_plane", "ground_seen"):
        assert row[column] == pytest.approx(1.0, rel=1e-6), column
    assert row["bottom_offset_rows"] == 0


def test_a_mask_one_row_onto_the_road_is_one_row_low_and_puts_the_car_too_near():
    bench = load_bench("label_scales")
    true_depth, ground, ids, stage1 = _scene()
    mask = ids == 1
    mask[BOTTOM, LEFT:RIGHT] = True  # the mask spills one row onto the road (a blurred motion edge)
    ground &= ~mask
    object_depth = np.where(mask, np.median(true_depth[ids == 1]), 0.0)
    row = bench.instance_scales(stage1, ground, object_depth, mask, 1.0, true_depth, ids)
    assert row["bottom_offset_rows"] == 1
    assert row["plane"] == pytest.approx(1.0, rel=1e-6)  # the road is right ...
    # ... but read one row lower: inverse depth (21 - 12) against (20 - 12) of the car's contact,
    # and the road pixel the mask's lowest row holds is itself nearer than the car.
    road_row_depth = 1.0 / (SLOPE * (BOTTOM + 0.5 - HORIZON))
    assert row["bottom_edge"] == pytest.approx(1.0 / (SLOPE * (BOTTOM + 1 - HORIZON)) / road_row_depth, rel=1e-6)
    assert row["contact_flat"] < 0.95 and row["generator_mask_true_plane"] == pytest.approx(1.0, rel=1e-6)


def test_run_is_read_per_kind_and_the_table_names_every_column(tmp_path, capsys):
    from mcdepth_train.stages.frames import save_frame

    bench = load_bench("label_scales")
    true_depth, ground, ids, stage1 = _scene()
    run = tmp_path / "run"
    drive = run / "data" / "synth" / "synth_drive_0000_sync"
    for sub in ("instances/image_02", "proj_depth/groundtruth/image_02"):
        (drive / sub).mkdir(parents=True)
    cv2.imwrite(str(drive / "instances" / "image_02" / "0000000002.png"), ids.astype(np.uint16))
    cv2.imwrite(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000002.png"), np.round(true_depth * 256).astype(np.uint16))
    (drive / "objects.json").write_text(json.dumps({"instances": [{"id": 1, "kind": "lead", "dynamic": True}]}))
    mask = (ids == 1)[None]
    save_frame(run / "masks" / "frames", 0, sequence=np.array("synth_drive_0000"), frame=np.array(2),
               stage1_depth=(3.0 * stage1).astype(np.float32), instances=mask, moving=np.array([True]), ground=ground)
    save_frame(run / "objects" / "frames", 0, object_depth=np.where(mask, 3.0 * true_depth, 0.0).astype(np.float32))
    with pytest.raises(FileNotFoundError, match="no objects/dsa frame"):
        bench.evaluate_run(run, run / "data")
    save_frame(run / "dsa" / "frames", 0, scales=np.array([0.5], np.float32))
    result = bench.evaluate_run(run, run / "data")
    lead = result["per_kind"]["lead"]
    assert lead["instances"] == 1
    assert lead["chosen"][1] == pytest.approx(0.5, rel=1e-3)  # stage 1 is 3x the metres; o_k is at its depth
    assert lead["contact"][1] == pytest.approx(1.0, rel=1e-3)
    assert bench.main(["--run", str(run), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert all(column in out for column in bench.COLUMNS) and "lead  1  0.50/0.50/0.50" in out
    assert json.loads((tmp_path / "s.json").read_text())["per_kind"]["lead"]["instances"] == 1
