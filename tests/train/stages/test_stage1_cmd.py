"""``mcdepth-train stage1`` command line."""
from __future__ import annotations

import importlib
import json

import pytest

from mcdepth_train import cli
from tests.train.scenes import register_tiny_encoder


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["stage1", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--deterministic" in out and "--eval-gt" in out and "--config" in out


def test_bad_override_is_named(capsys):
    with pytest.raises(SystemExit):
        cli.main(["stage1", "stage1.no_such_key=3"])
    assert "stage1.no_such_key" in capsys.readouterr().err


def test_runs_on_the_synthetic_dataset_or_says_why_not(tmp_path, capsys):
    """End to end on the synthetic default (tiny) when the data package is present."""
    data = importlib.import_module("mcdepth_train.data")
    tiny = register_tiny_encoder()
    argv = ["stage1", "--deterministic", "--eval-gt", f"run.out_dir={tmp_path}", "run.progress=false",
            "data.height=64", "data.width=128", "data.synth_sequences=1", "data.synth_frames=6",
            f"model.encoder={tiny}", f"model.pose_encoder={tiny}", "stage1.epochs=1", "stage1.batch_size=2",
            "stage1.max_steps=2", "stage1.val_batches=1", "stage1.depth_pose_epochs=0", "stage1.motion_only_epochs=0"]
    code = cli.main(argv)
    if not hasattr(data, "build_dataset"):
        assert code == 2
        assert "build_dataset" in capsys.readouterr().err
        return
    assert code == 0
    summary = json.loads((tmp_path / "stage1" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["validation_reports"] == ["ground_truth"]
    assert (tmp_path / "stage1" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "stage1" / "config.yaml").is_file()
    assert "never used to choose checkpoints" in capsys.readouterr().err
