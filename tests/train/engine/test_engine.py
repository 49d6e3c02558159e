"""Training engine: resumable sampler, checkpoints, resume after a real kill -9."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcdepth_train.engine.checkpoint import load_checkpoint
from mcdepth_train.engine.sampler import ResumableSampler

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "run_tiny_stage1.py"


def test_sampler_same_order_per_epoch_and_new_order_next_epoch():
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert sorted(a) == list(range(10))
    b.set_epoch(3)
    assert list(a) != list(b)


def test_sampler_resume_skips_done_indices():
    s = ResumableSampler(10, seed=1)
    s.set_epoch(4)
    full = list(s)
    s.set_epoch(4, start=6)
    assert list(s) == full[6:]
    assert len(s) == 4


def test_sampler_shards_cover_dataset_disjointly():
    shards = [ResumableSampler(7, seed=0, num_replicas=2, rank=r) for r in range(2)]
    idx = [list(s) for s in shards]
    assert len(idx[0]) == len(idx[1]) == 4  # padded by wrapping, like DistributedSampler
    assert set(idx[0]) | set(idx[1]) == set(range(7))


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="length"):
        ResumableSampler(0)
    with pytest.raises(ValueError, match="rank"):
        ResumableSampler(5, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="start"):
        ResumableSampler(5).set_epoch(0, start=9)


def _run(out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env_path = str(HERE.parents[2])
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out_dir), *extra], capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )


def _models(path: Path) -> dict:
    return load_checkpoint(path)["models"]


def test_resume_after_kill_gives_the_same_weights(tmp_path):
    """9 steps over 3 epochs (all three phases); SIGKILL after step 5, rerun, compare with a clean run."""
    clean = _run(tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr[-3000:]

    killed = _run(tmp_path / "resumed", "--kill-at", "5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "resumed" / "stage1" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1 and ckpt["extra"]["step_in_epoch"] == 1  # mid-epoch
    assert not list((tmp_path / "resumed" / "stage1" / "checkpoints").glob("*.tmp"))

    resumed = _run(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = _models(tmp_path / "clean" / "stage1" / "checkpoints" / "last.pt")
    b = _models(tmp_path / "resumed" / "stage1" / "checkpoints" / "last.pt")
    assert a.keys() == b.keys() == {"depth", "pose", "motion"}
    for net in a:
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name} differs after resume"
    final = load_checkpoint(tmp_path / "resumed" / "stage1" / "checkpoints" / "last.pt")
    assert final["step"] == 9 and final["epoch"] == 3
    # best.pt: chosen by validation photometric loss in the latest phase, never by ground truth
    summary = json.loads((tmp_path / "resumed" / "stage1" / "summary.json").read_text())
    assert summary["resumed"] is True and summary["validation_reports"] == []
    assert summary["best"]["phase"] == "all" and summary["best"]["step"] == 9
    assert [v["phase"] for v in summary["validation"]] == ["depth_pose", "motion", "all"]
    assert load_checkpoint(tmp_path / "resumed" / "stage1" / "checkpoints" / "best.pt")["step"] == 9
    assert list((tmp_path / "resumed" / "stage1" / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "resumed" / "stage1" / "config.yaml").is_file()


def test_rerunning_a_finished_run_trains_no_further(tmp_path):
    first = _run(tmp_path, "stage1.max_steps=2", "stage1.epochs=1", "run.tensorboard=false")
    assert first.returncode == 0, first.stderr[-3000:]
    before = load_checkpoint(tmp_path / "stage1" / "checkpoints" / "last.pt")
    again = _run(tmp_path, "stage1.max_steps=2", "stage1.epochs=1", "run.tensorboard=false")
    assert again.returncode == 0, again.stderr[-3000:]
    after = load_checkpoint(tmp_path / "stage1" / "checkpoints" / "last.pt")
    assert before["step"] == after["step"] == 2
    for name, value in before["models"]["depth"].items():
        assert torch.equal(value, after["models"]["depth"][name])


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        loss = ((self.w - batch["x"]) ** 2).mean()
        return {"loss": loss, "scalars": {"photometric": loss.detach()}}


class _CountingReport:
    """A report that sees every validation batch (duck-typed: the engine needs only these methods)."""

    name = "counting"

    def start(self):
        self.batches, self.values = 0, []

    def add(self, model, batch):
        assert not model.training and not torch.is_grad_enabled()
        self.batches += 1
        self.values.append(float(batch["x"].sum()))

    def result(self):
        return {"count/batches": float(self.batches), "count/sum": sum(self.values)}


def test_validation_reports_see_the_validation_batches_and_are_reported(tmp_path):
    from mcdepth_train.config import load_config
    from mcdepth_train.engine.loop import Trainer, TrainerSpec

    cfg = load_config([], [f"run.out_dir={tmp_path}", "run.progress=false", "run.tensorboard=false",
                           "stage1.epochs=2", "stage1.batch_size=2", "stage1.val_batches=2", "stage1.lr_milestones=[]"])
    train = [{"x": torch.tensor([float(i)])} for i in range(4)]
    val = [{"x": torch.tensor([float(i)])} for i in range(6)]  # 3 batches; val_batches=2 uses 2
    report = _CountingReport()
    summary = Trainer(cfg, TrainerSpec(stage="toy", model=_Toy(), train_set=train, val_set=val,
                                       schedule=cfg.stage1, reports=[report])).train()
    assert summary["validation_reports"] == ["counting"]
    assert [v["count/batches"] for v in summary["validation"]] == [2.0, 2.0]  # one validation per epoch
    assert [v["count/sum"] for v in summary["validation"]] == [6.0, 6.0]  # 0+1+2+3 (unshuffled)
    assert summary["best"]["val_photometric"] == summary["validation"][-1]["val/photometric"]  # the loss selects
