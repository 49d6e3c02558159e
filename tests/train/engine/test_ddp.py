"""Multi-process training: torchrun, 2 processes, gloo on CPU; both ranks end with identical weights."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from mcdepth_train.engine.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    out, weights = tmp_path / "run", tmp_path / "weights"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "run_tiny_stage1.py"), str(out), "--weights", str(weights), "--samples", "8",
           "stage1.max_steps=3", "stage1.depth_pose_epochs=0", "stage1.motion_only_epochs=0", "run.tensorboard=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={"PYTHONPATH": str(HERE.parents[2]), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    w0 = torch.load(f"{weights}.rank0", weights_only=True)
    w1 = torch.load(f"{weights}.rank1", weights_only=True)
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"{name} differs between ranks"
    ckpt = load_checkpoint(out / "stage1" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3 and ckpt["extra"]["world_size"] == 2
    # rank 0 alone wrote the checkpoint, and it holds the same weights
    for name, value in ckpt["models"]["depth"].items():
        assert torch.equal(value, w0[f"depth.{name}"])
    summary = (out / "stage1" / "summary.json").read_text()
    assert '"world_size": 2' in summary
