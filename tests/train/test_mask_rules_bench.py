"""bench/mask_rules.py: the masks stage's rules re-run on stored records, scored against the generator."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import load_bench

H, W = 16, 32


def _run(tmp_path):
    """A stored masks stage of one frame: a crossing car (columns 0-7, stage-1 depth 4, twice the
    background's) whose residual motion shows on its left half only, and a parked car (16-23) with none."""
    from mcdepth_train.config import load_config, save_config
    from mcdepth_train.stages.frames import save_frame

    run = tmp_path / "run"
    drive = run / "data" / "synth" / "synth_drive_0000_sync"
    for sub in ("instances/image_02", "proj_depth/groundtruth/image_02"):
        (drive / sub).mkdir(parents=True)
    ids = np.zeros((H, W), np.uint16)
    ids[4:12, 0:8] = 1
    ids[4:12, 16:24] = 2
    cv2.imwrite(str(drive / "instances" / "image_02" / "0000000003.png"), ids)
    cv2.imwrite(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000003.png"), np.full((H, W), 2560, np.uint16))
    (drive / "objects.json").write_text(json.dumps({"instances": [
        {"id": 1, "kind": "crossing", "dynamic": True}, {"id": 2, "kind": "parked", "dynamic": False}]}))
    save_config(load_config([], ["masks.maskrcnn_steps=0"]), run / "config.yaml")
    depth = np.full((H, W), 2.0)
    depth[4:12, 0:8] = 4.0
    pose = np.eye(4, dtype=np.float32)
    pose[0, 3] = 1.0  # sideways: a static point at depth Z flows 60 / Z px
    flows = np.zeros((2, 2, H, W), np.float32)
    flows[:, 0, 4:12, 0:4] = 15.0  # as much again as its translational flow: motion
    save_frame(run / "masks" / "stage1", 0, sequence=np.array("synth_drive_0000"), frame=np.array(3),
               stage1_depth=depth.astype(np.float16), flows=flows.astype(np.float16), poses=np.stack([pose, pose]),
               K=np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]], np.float32))
    save_frame(run / "masks" / "frames", 0, ground=np.zeros((H, W), bool))
    return run


def test_rules_rerun_with_overrides_and_refuse_what_was_stored(tmp_path, capsys):
    bench = load_bench("mask_rules")
    run = _run(tmp_path)
    base = bench.evaluate_rules(run, run / "data", [])["masks"]
    assert base["iou"] == pytest.approx(0.5) and base["precision"] == 1.0
    assert base["per_kind"]["crossing"]["instances_found"] == 1.0 and base["per_kind"]["parked"]["pixel_share_called_moving"] == 0
    grown = bench.evaluate_rules(run, run / "data", ["masks.grow_depth_tolerance=0.25"])["masks"]
    assert grown["iou"] == 1.0  # the car's other half is its depth layer; the nearer background is not
    assert bench.evaluate_rules(run, run / "data", ["masks.motion_threshold_px=20"])["masks"]["iou"] == 0
    assert bench.main(["--run", str(run), "--json", str(tmp_path / "r.json"), "masks.grow_depth_tolerance=0.25"]) == 0
    assert "IoU 1.000" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["overrides"] == ["masks.grow_depth_tolerance=0.25"]
    for refused in ("masks.motion_source=net", "masks.maskrcnn_steps=10", "masks.ground_normal_deg=5"):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["--run", str(run), refused])
        assert exit_info.value.code == 2 and "fixed by what the masks stage stored" in capsys.readouterr().err
