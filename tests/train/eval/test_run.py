"""Evaluating a run's checkpoints end to end on a tiny ground-truth dataset."""
from __future__ import annotations

import torch

from mcdepth_train.config import config_to_dict, load_config
from mcdepth_train.data import keys
from mcdepth_train.engine.checkpoint import save_checkpoint
from mcdepth_train.eval.run import evaluate_run, run_checkpoints
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


def test_the_auto_protocol_crops_as_the_evaluation_data_set_asks():
    """A prediction right inside KITTI's Garg crop and wrong outside it scores perfectly only when
    the protocol follows the data set (kitti -> kitti_eigen -> Garg crop)."""
    from mcdepth_train.config import Config
    from mcdepth_train.eval.evaluate import evaluate_predictor
    from mcdepth_train.eval.metrics import crop_mask

    h, w = 96, 320
    gt = torch.full((1, h, w), 10.0)
    inside = torch.from_numpy(crop_mask(h, w, "garg"))
    pred = torch.where(inside, 10.0, 40.0)[None, None]
    sample = {keys.color(0, 0): torch.zeros(3, h, w), keys.DEPTH_GT: gt}
    cfg = Config()
    cfg.eval.median_scaling = False
    scores = {name: evaluate_predictor(lambda batch: pred.expand(batch[keys.DEPTH_GT].shape[0], -1, -1, -1), [sample],
                                       cfg.eval, progress=False, dataset_name=name)[0].mean()["all"]["abs_rel"]
              for name in ("kitti", "synthetic")}
    assert scores["kitti"] < 1e-6
    assert scores["synthetic"] > 0.1
