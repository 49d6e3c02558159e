"""bench/masks_quality.py: a run's moving-object masks and pseudo labels against the generator's truth."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import load_bench

H, W = 16, 32


def _bench():
    return load_bench("masks_quality")


def _scene():
    """Instance 1 a crossing car (moving) in columns 0-7, instance 2 a parked car in columns 16-23."""
    ids = np.zeros((H, W), np.int64)
    ids[4:12, 0:8] = 1
    ids[4:12, 16:24] = 2
    return ids, {1: "crossing", 2: "parked"}, {1: True, 2: False}


def test_mask_scores_count_hits_misses_and_false_pixels():
    bench = _bench()
    ids, kinds, dynamic = _scene()
    pred = np.zeros((H, W), bool)
    pred[4:12, 0:4] = True   # half the crossing car
    pred[4:12, 16:24] = True  # the whole parked car: false
    s = bench.mask_scores(pred, ids, kinds, dynamic)
    assert (s["inter"], s["pred"], s["true"], s["union"]) == (32, 96, 64, 128)
    assert s["kinds"]["crossing"] == {"pixels": 64, "covered": 32, "instances": 1, "found": 1}  # half covered counts
    assert s["kinds"]["parked"]["covered"] == 64 and s["kinds"]["background"]["covered"] == 0
    regions = bench.label_regions(pred, ids, dynamic)
    assert (regions["hit"].sum(), regions["missed"].sum(), regions["false"].sum()) == (32, 32, 64)


def test_run_scores_masks_and_labels_against_the_generator(tmp_path, capsys):
    from mcdepth_train.stages.frames import save_frame
    from mcdepth_train.stages.pseudo.labels import PseudoLabelStore

    bench = _bench()
    ids, kinds, dynamic = _scene()
    drive = tmp_path / "run" / "data" / "synth" / "synth_drive_0000_sync"
    for sub in ("instances/image_02", "proj_depth/groundtruth/image_02"):
        (drive / sub).mkdir(parents=True)
    gt = np.full((H, W), 10.0)
    cv2.imwrite(str(drive / "instances" / "image_02" / "0000000003.png"), ids.astype(np.uint16))
    cv2.imwrite(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000003.png"), (gt * 256).astype(np.uint16))
    (drive / "objects.json").write_text(json.dumps({"instances": [
        {"id": k, "kind": kinds[k], "dynamic": dynamic[k]} for k in kinds]}))
    run = tmp_path / "run"
    stage1 = np.full((H, W), 2.0)  # scale-free: the median ratio makes it 10 m
    stage1[4:12, 0:8] = 4.0        # the crossing car twice too far: AbsRel 1
    moving = np.zeros((2, H, W), bool)
    moving[0, 4:12, 0:8] = True
    moving[1, 4:12, 16:24] = True  # a parked car called moving
    save_frame(run / "masks" / "frames", 0, sequence=np.array("synth_drive_0000"), frame=np.array(3),
               stage1_depth=stage1.astype(np.float16), instances=moving, moving=np.array([True, True]))
    # Stage 1's records: sideways camera motion, flow f t / Z = 60 * 1 / Z px; the crossing car's
    # residual equals its translational flow (ratio 1), the parked car's is a tenth of it.
    pose = np.eye(4, dtype=np.float32)
    pose[0, 3] = 1.0
    flows = np.zeros((2, 2, H, W), np.float32)
    flows[:, 0, 4:12, 0:8] = 60.0 / 4.0
    flows[:, 0, 4:12, 16:24] = 0.1 * 60.0 / 2.0
    save_frame(run / "masks" / "stage1", 0, stage1_depth=stage1.astype(np.float16), flows=flows.astype(np.float16),
               poses=np.stack([pose, pose]), K=np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]], np.float32))
    object_depth = np.zeros((2, H, W), np.float16)
    object_depth[0, 4:12, 0:4], object_depth[0, 4:12, 4:8] = 1.0, 2.0  # a slanted o_k: shape error 1/3
    save_frame(run / "objects" / "frames", 0, object_depth=object_depth)  # instance 1 has none: not scored
    label = stage1.copy()
    label[4:12, 0:8] = 2.0   # the label fixes the mover ...
    label[4:12, 16:24] = 3.0  # ... and spoils the parked car (AbsRel 0.5)
    store = PseudoLabelStore(run / "pseudo", expected=["synth_drive_0000/000003"])
    store.write("synth_drive_0000/000003", label.astype(np.float32), moving.any(0))
    store.save_manifest()
    result = bench.evaluate_run(run, run / "data")
    assert result["masks"]["iou"] == pytest.approx(0.5) and result["masks"]["precision"] == pytest.approx(0.5)
    assert result["masks"]["recall"] == 1.0 and result["masks"]["per_kind"]["crossing"]["instances_found"] == 1.0
    labels = result["labels"]
    assert labels["hit"]["stage1"] == pytest.approx(1.0, abs=1e-3) and labels["hit"]["label"] == pytest.approx(0.0, abs=1e-3)
    assert labels["false"]["stage1"] == pytest.approx(0.0, abs=1e-3) and labels["false"]["label"] == pytest.approx(0.5, abs=1e-3)
    assert labels["missed"]["pixels"] == 0 and labels["missed"]["label"] is None
    # Per instance: the label brings the crossing car from twice too far to its depth; the parked car
    # called moving has no truly moving pixel, so no kind of its own.
    by_kind = result["hit_depth_ratio_by_kind"]
    assert set(by_kind) == {"crossing"} and by_kind["crossing"]["instances"] == 1
    assert by_kind["crossing"]["label_p10_p50_p90"][1] == pytest.approx(1.0, rel=1e-3)
    assert by_kind["crossing"]["stage1_p10_p50_p90"][1] == pytest.approx(2.0, rel=1e-3)
    assert result["object_shape"]["instances"] == 1
    assert result["object_shape"]["object_depth"] == pytest.approx(1 / 3) and result["object_shape"]["stage1"] == 0.0
    moving = result["moving_instances"]
    assert set(moving) == {"crossing", "parked"} and moving["crossing"]["count"] == 1
    assert moving["crossing"]["relative_motion_p10_p50_p90"][1] == pytest.approx(1.0, rel=1e-2)
    assert moving["parked"]["relative_motion_p10_p50_p90"][1] == pytest.approx(0.1, rel=1e-2)
    # These frames have no ground mask: no plane, so no height over the camera is judged.
    assert moving["crossing"]["height_over_camera_not_judged"] == 1 and moving["crossing"]["height_over_camera_median"] is None
    assert bench.main(["--run", str(run), "--json", str(tmp_path / "q.json")]) == 0
    assert "IoU 0.500" in capsys.readouterr().out and json.loads((tmp_path / "q.json").read_text())["frames"] == 1
    with pytest.raises(SystemExit):
        bench.main(["--run", str(tmp_path / "nowhere")])
    empty = tmp_path / "empty_run"
    (empty / "data" / "synth").mkdir(parents=True)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--run", str(empty)])
    assert exit_info.value.code == 2 and "no masks frames" in capsys.readouterr().err


def test_road_rows_score_the_fitted_plane_and_stage1_against_the_true_road():
    bench = _bench()
    from tests.train.geometry.helpers import flat_road

    gt, _ = flat_road(h=32, w=24)
    ground = np.zeros(gt.shape, bool)
    ground[12:] = True
    ids = np.zeros(gt.shape, np.int64)
    ids[14:20, 2:6] = 7  # a car on the road: its pixels are not road
    stage1 = gt / 5.0  # scale-free and exact ...
    stage1[-3:] *= 1.2  # ... but the nearest three rows 20% too far
    rows: dict = {}
    bench.add_road_rows(rows, stage1, ground, ids, gt)
    assert set(rows) == set(range(12, 32))
    scale = np.median(gt) / np.median(stage1)
    assert rows[20][0][1] == pytest.approx(scale / 5.0) and rows[31][0][1] == pytest.approx(1.2 * scale / 5.0)
    assert rows[14][0][0] == pytest.approx(rows[14][0][1], rel=0.02)  # the plane, fitted on the ground, near stage 1 in a far row
    bench.add_road_rows(rows, stage1, np.zeros_like(ground), ids, gt)  # no ground: no plane, nothing added
    assert all(len(v) == 1 for v in rows.values())


def test_generated_data_set_layout_is_found(tmp_path):
    """`mcdepth-train run` with data.dataset=synthetic writes its drives to RUN/cache/synthetic-*/ and
    names sequences as KITTI paths; both must lead to the same drive folder."""
    bench = _bench()
    run = tmp_path / "run"
    assert bench.default_synth(run) == run / "data"  # nothing there: the usage check reports it
    (run / "cache" / "synthetic-0123456789ab" / "synth").mkdir(parents=True)
    synth = bench.default_synth(run)
    assert synth == run / "cache" / "synthetic-0123456789ab"
    drive = synth / "synth" / "synth_drive_0002_sync"
    assert bench.drive_folder(synth, "synth/synth_drive_0002_sync/image_02") == drive
    assert bench.drive_folder(synth, "synth_drive_0002") == drive
    (run / "data" / "synth").mkdir(parents=True)  # a written data set wins
    assert bench.default_synth(run) == run / "data"


def test_median_depth_ratio_is_signed_and_counts_only_pixels_with_ground_truth():
    bench = _bench()
    gt = np.full((2, 4), 10.0)
    gt[0, 0] = 0.0  # no ground truth there
    scaled = np.full((2, 4), 5.0)  # too near: ratio 0.5
    scaled[0, 0] = 1000.0
    everywhere = np.ones((2, 4), bool)
    assert bench.median_depth_ratio(scaled, gt, everywhere) == 0.5
    assert bench.median_depth_ratio(scaled, gt, None) is None
    assert bench.median_depth_ratio(scaled, gt, gt == 0) is None  # only a pixel without ground truth
    assert bench.median_depth_ratio(scaled, gt, everywhere, min_pixels=8) is None  # 7 scored pixels


def test_relative_motion_is_judged_with_the_runs_own_far_explains(tmp_path):
    from mcdepth_train.config import load_config, save_config

    bench = _bench()
    assert bench._run_far_explains(tmp_path) is False  # no config.yaml: the default
    save_config(load_config([], ["masks.far_explains=true"]), tmp_path / "config.yaml")
    assert bench._run_far_explains(tmp_path) is True
    # a residual of -1 x the translational flow: 100% by the two-sided rule, a depth error (0) with far_explains
    pose = np.eye(4, dtype=np.float32)
    pose[0, 3] = 1.0
    flows = np.full((2, 2, H, W), 0.0, np.float32)
    flows[:, 0] = -60.0 / 2.0
    record = {"flows": flows, "poses": np.stack([pose, pose]), "stage1_depth": np.full((H, W), 2.0, np.float32),
              "K": np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]], np.float32)}
    assert np.median(bench.instance_relative_motion(record)) == pytest.approx(1.0, rel=1e-3)
    assert np.median(bench.instance_relative_motion(record, far_explains=True)) == pytest.approx(0.0, abs=1e-3)


def test_height_summary_counts_instances_too_tall_to_stand_on_the_road():
    summary = _bench()._height_summary([0.5, 2.0, 4.0, float("inf"), float("nan")])
    assert summary["height_over_camera_median"] == pytest.approx(3.0)  # of the four judged
    assert summary["height_over_camera_max_finite"] == 4.0
    assert summary["height_over_camera_above"] == {"1": 3, "3": 2, "inf": 1}
    assert summary["height_over_camera_not_judged"] == 1
