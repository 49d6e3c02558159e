"""``stage1.init_checkpoint``: stage 1 starts from another run's networks (e.g. synthetic -> real)."""
from __future__ import annotations

import torch

from mcdepth_train import cli
from mcdepth_train.config import load_config
from mcdepth_train.engine.checkpoint import load_checkpoint
from mcdepth_train.stages.stage1 import Stage1Model, init_from_checkpoint
from tests.train.scenes import register_tiny_encoder


def _argv(run, tiny, *extra):
    return ["stage1", f"run.out_dir={run}", "run.progress=false", "data.height=64", "data.width=128", "data.synth_sequences=1",
            "data.synth_frames=6", f"model.encoder={tiny}", f"model.pose_encoder={tiny}", "stage1.epochs=1", "stage1.batch_size=2",
            "stage1.max_steps=1", "stage1.val_batches=1", "stage1.depth_pose_epochs=0", "stage1.motion_only_epochs=0", *extra]


def test_stage1_starts_from_a_checkpoint(tmp_path, capsys):
    tiny = register_tiny_encoder()
    assert cli.main(_argv(tmp_path / "synthetic", tiny)) == 0
    source = tmp_path / "synthetic" / "stage1" / "checkpoints" / "last.pt"
    weights = load_checkpoint(source)["models"]
    # Another seed builds other weights; the init replaces every network with the checkpoint's.
    cfg = load_config([], _argv(tmp_path / "x", tiny, "run.seed=5")[1:])
    model = Stage1Model.from_config(cfg)
    first = next(iter(weights["depth"]))
    assert not torch.equal(model.depth.state_dict()[first], weights["depth"][first])
    assert init_from_checkpoint(model, str(source)) == ["depth", "pose", "motion"]
    for name in ("depth", "pose", "motion"):
        for key, value in getattr(model, name).state_dict().items():
            assert torch.equal(value, weights[name][key]), (name, key)
    # Through the command line: a run that starts there trains on.
    assert cli.main(_argv(tmp_path / "real", tiny, f"stage1.init_checkpoint={source}", "run.seed=5")) == 0
    capsys.readouterr()


def test_bad_init_checkpoint_is_one_error_line(tmp_path, capsys):
    tiny = register_tiny_encoder()
    assert cli.main(_argv(tmp_path / "r", tiny, f"stage1.init_checkpoint={tmp_path / 'missing.pt'}")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: stage1.init_checkpoint: checkpoint not found:") and err.count("\n") == 1
    assert cli.main(_argv(tmp_path / "a", tiny)) == 0
    source = tmp_path / "a" / "stage1" / "checkpoints" / "last.pt"
    capsys.readouterr()
    # Weights of another encoder do not fit: named, not a traceback.
    assert cli.main(_argv(tmp_path / "b", tiny, f"stage1.init_checkpoint={source}", "model.encoder=resnet18")) == 2
    err = capsys.readouterr().err
    assert "stage1.init_checkpoint: the 'depth' weights" in err and "do not fit" in err
