"""Stage 2 over a run: the per-frame mask records written from a (briefly trained) stage 1."""
from __future__ import annotations

import numpy as np
import pytest

from mcdepth_train.stages.frames import frame_path, load_frame
from mcdepth_train.stages.stage1 import train_stage1
from mcdepth_train.stages.stage2 import run_masks
from tests.train.scenes import TinyScene, tiny_config


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(out, epochs=1, max_steps=3, depth_pose_epochs=0, motion_only_epochs=0)
    train_stage1(cfg, TinyScene(num_samples=4), None)
    return cfg, out


def test_masks_writes_one_complete_record_per_frame_and_resumes(stage1_run):
    cfg, out = stage1_run
    scene = TinyScene(num_samples=4)
    summary = run_masks(cfg, out, dataset=scene)
    assert summary["frames"] == 4 and summary["total_frames"] == 4
    record = load_frame(out / "masks" / "frames", 2)
    h, w = 64, 128
    assert record["stage1_depth"].shape == (h, w) and record["stage1_depth"].dtype == np.float16
    assert record["dynamic_evidence"].shape == (h, w) and record["ground"].dtype == bool
    n = len(record["instances"])
    assert record["moving"].shape == (n,) and record["usable"].shape == (n,)
    assert record["instances_prev"].shape == (n, h, w) and record["instances_next"].shape == (n, h, w)
    assert int(record["frame"]) == int(scene[2]["frame"])
    # The ground of the corridor (lower image rows) is found from stage-1 normals only if depth is
    # plausible; here only its type is checked. A rerun finds every record and redoes nothing.
    before = frame_path(out / "masks" / "frames", 0).stat().st_mtime_ns
    again = run_masks(cfg, out, dataset=scene)
    assert again["frames"] == 0 and again["skipped_existing"] == 4
    assert frame_path(out / "masks" / "frames", 0).stat().st_mtime_ns == before


def test_masks_needs_a_stage1_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(Exception, match="no checkpoint of stage 'stage1'"):
        run_masks(cfg, tmp_path, dataset=TinyScene(num_samples=2))
