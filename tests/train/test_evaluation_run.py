"""Evaluating a run's checkpoints end to end on a tiny ground-truth dataset."""
from __future__ import annotations

import torch

from mcdepth_train.config import config_to_dict, load_config
from mcdepth_train.data import keys
from mcdepth_train.engine.checkpoint import save_checkpoint
from mcdepth_train.evaluation_run import evaluate_run, run_checkpoints
from mcdepth_train.networks.depth import DepthNet


class TinyGTSet(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        depth = 5 + 20 * torch.rand(1, 64, 64, generator=g)
        dyn = torch.zeros(1, 64, 64)
        if i != 1:  # sample 1 has no moving pixels
            dyn[:, 20:40, 20:40] = 1
        return {keys.color(0, 0): torch.rand(3, 64, 64, generator=g), keys.DEPTH_GT: depth, keys.DYNAMIC_MASK: dyn}


def test_evaluate_run_scores_each_stage_and_writes_the_report(tmp_path):
    cfg = load_config(overrides=["run.progress=false"])
    for stage, seed in (("stage1", 0), ("stage3/round0", 1)):
        torch.manual_seed(seed)
        net = DepthNet("resnet18")
        save_checkpoint(tmp_path / stage / "checkpoints" / "best.pt", stage=stage, step=1, epoch=0, config=config_to_dict(cfg), models={"depth": net})
    checkpoints = run_checkpoints(tmp_path)
    assert list(checkpoints) == ["stage 1", "stage 3"]
    report = evaluate_run(cfg, checkpoints, tmp_path / "eval", dataset=TinyGTSet())
    results = report["results"]
    assert results["stage 1"]["all"]["images"] == 3
    assert results["stage 1"]["dynamic"]["images"] == 2  # the image without moving pixels is skipped
    assert results["stage 1"]["all"]["abs_rel"] != results["stage 3"]["all"]["abs_rel"]
    for key in ("md", "json", "csv", "bars", "histogram", "examples"):
        assert report["paths"][key].is_file(), key
    assert "| stage 3 |" in report["markdown"]
