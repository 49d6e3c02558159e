"""bench/learning_curve.py on the tiny scene: static AbsRel recorded at intervals, PNG + JSON written."""
from __future__ import annotations

import json

from conftest import load_bench
from tests.train.scenes import TINY_ENCODER, register_tiny_encoder


def _load():
    return load_bench("learning_curve")


def test_learning_curve_on_tiny_scene(tmp_path):
    register_tiny_encoder()  # run alone, no other test module has registered it
    out = tmp_path / "curve.png"
    code = _load().main([
        "--tiny-scene", "--tiny-samples", "4", "--every", "1", "--out", str(out),
        f"run.out_dir={tmp_path / 'run'}", "run.progress=false", "run.tensorboard=false",
        "data.height=64", "data.width=128", f"model.encoder={TINY_ENCODER}", f"model.pose_encoder={TINY_ENCODER}",
        "stage1.batch_size=2", "stage1.max_steps=2", "stage1.val_batches=1", "stage1.depth_pose_epochs=0",
        "stage1.motion_only_epochs=0",
    ])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    assert [p["step"] for p in points] == [1, 2]
    for p in points:
        assert 0 < p["static_abs_rel"] < 10
        assert p["val_photometric"] > 0
