"""Stage1Model: one optimisation step, phases, infer() outputs."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from mcdepth_train.config import Config
from mcdepth_train.stages.stage1 import Stage1Model, phase_for_epoch
from tests.train.scenes import TinyScene, register_tiny_encoder


@pytest.fixture(scope="module")
def batch():
    data = TinyScene(2)
    return default_collate([data[0], data[1]])


def _model(encoder: str = "resnet18") -> Stage1Model:
    cfg = Config()
    cfg.model.encoder = cfg.model.pose_encoder = encoder
    torch.manual_seed(0)
    return Stage1Model.from_config(cfg)


def test_phase_schedule_is_the_authors_default():
    assert [phase_for_epoch(e, 1, 1) for e in range(4)] == ["depth_pose", "motion", "all", "all"]
    assert [phase_for_epoch(e, 0, 0) for e in range(2)] == ["all", "all"]


def test_one_step_lowers_the_photometric_loss_on_that_batch(batch):
    """Real ResNet18 depth/pose nets and RAFT-small, all three nets training (phase 'all')."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    before = model(batch, "all")
    before["loss"].backward()
    opt.step()
    with torch.no_grad():
        after = model(batch, "all")
    assert after["scalars"]["photometric"] < before["scalars"]["photometric"]
    assert set(before["scalars"]) >= {"loss", "photometric", "smoothness", "sparsity"}
    assert before["images"]["depth"].shape == (1, 1, 64, 128)


def test_motion_phase_trains_only_the_motion_net_and_depth_pose_phase_skips_it(batch):
    model = _model(register_tiny_encoder())
    model(batch, "motion")["loss"].backward()
    assert all(p.grad is None for p in model.depth.parameters())
    assert all(p.grad is None for p in model.pose.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.motion.parameters())
    model.zero_grad(set_to_none=True)
    out = model(batch, "depth_pose")
    out["loss"].backward()
    assert all(p.grad is None for p in model.motion.parameters())
    assert out["scalars"]["sparsity"] == 0
    with pytest.raises(ValueError, match="phase"):
        model(batch, "warmup")


def test_infer_gives_depth_poses_and_back_splatted_flow(batch):
    model = _model(register_tiny_encoder()).eval()
    out = model.infer(batch)
    assert out["depth"].shape == (2, 1, 64, 128)
    assert ((out["depth"] >= 0.1) & (out["depth"] <= 100)).all()
    assert set(out["poses"]) == set(out["flow"]) == {-1, 1}
    assert out["poses"][1].shape == (2, 4, 4)
    masks = out["masks"]
    both = masks["two_sided"]
    for f in (-1, 1):
        assert out["flow"][f].shape == (2, 2, 64, 128)
        # motion survives only where both sources see it (two-sided rule)
        moving = out["flow"][f].abs().sum(1, keepdim=True) > 0
        assert not (moving & (both == 0)).any()
        assert masks["splat_valid"][f].shape == (2, 1, 64, 128)
    still = model.infer(batch, with_motion=False)
    assert all(v.abs().sum() == 0 for v in still["flow"].values())


def test_ground_truth_metrics_use_the_crop_they_are_given(batch):
    """``gt_metrics`` (stage1.report_gt) scores the model's depth per image, inside the crop."""
    from mcdepth_train.eval.metrics import evaluate_image
    from mcdepth_train.stages.stage1 import gt_metrics

    model = _model(register_tiny_encoder()).eval()
    cfg = Config()
    with torch.no_grad():
        whole = gt_metrics(model, batch, cfg.eval, "none")
        cropped = gt_metrics(model, batch, cfg.eval, "garg")
        depth = model.infer(batch, with_motion=False)["depth"]
    assert len(whole) == len(cropped) == 2
    expected, _ = evaluate_image(depth[0, 0].numpy(), batch["depth_gt"][0, 0].numpy(), batch["dynamic_mask"][0, 0].numpy() > 0.5,
                                 cfg.eval.min_depth, cfg.eval.max_depth, cfg.eval.median_scaling, "garg")
    assert cropped[0][0]["all"]["abs_rel"] == pytest.approx(expected["all"]["abs_rel"])
    assert whole[0][0]["all"]["abs_rel"] != pytest.approx(cropped[0][0]["all"]["abs_rel"])


def test_motion_only_phase_has_no_mean_rule_and_no_sparsity_and_all_phase_ramps_it(batch):
    model = _model(register_tiny_encoder())
    with torch.no_grad():
        out = model(batch, "motion")
        disps, poses = model.predict_depth(batch), model.predict_poses(batch)
        from mcdepth_train.losses.reprojection import disparity_to_full_depth

        depth = disparity_to_full_depth(disps[0], (64, 128), model.depth.min_depth, model.depth.max_depth)
        _, plain = model.predict_motion(batch, depth, poses, mean_rule=False)
        _, ruled = model.predict_motion(batch, depth, poses)
    assert out["scalars"]["sparsity_weight"] == 0 and out["scalars"]["sparsity"] > 0
    for f in (-1, 1):
        assert torch.equal(plain["mean_mask"][f], plain["splat_valid"][f])  # no mean rule
        assert ruled["mean_mask"][f].sum() < ruled["splat_valid"][f].sum()  # the rule drops pixels
    model.sparsity_scale = 0.5
    with torch.no_grad():
        half = model(batch, "all")
    assert float(half["scalars"]["sparsity_weight"]) == pytest.approx(0.5 * model.sparsity_weight)
    expected = half["scalars"]["photometric"] + half["scalars"]["smoothness"] + 0.5 * model.sparsity_weight * half["scalars"]["sparsity"]
    assert float(half["scalars"]["loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_sparsity_ramp_hook_starts_with_the_all_phase():
    from types import SimpleNamespace

    from mcdepth_train.stages.stage1 import SparsityRampHook

    model = SimpleNamespace(sparsity_scale=1.0)
    hook = SparsityRampHook(model, depth_pose_epochs=1, motion_only_epochs=1, ramp_steps=5)
    trainer = SimpleNamespace(steps_per_epoch=10, step=0)
    hook.before_train(trainer)
    assert model.sparsity_scale == 0.0
    trainer.step = 21  # resumed inside the ramp: the scale comes from the step alone
    hook.before_train(trainer)
    assert model.sparsity_scale == pytest.approx(0.4)
    hook.after_train(trainer)
    assert model.sparsity_scale == 1.0


def test_stage1_optimizer_scales_or_freezes_the_motion_net(batch):
    from mcdepth_train.config import ConfigError, load_config
    from mcdepth_train.stages.stage1 import stage1_optimizer

    model = _model(register_tiny_encoder())
    motion = {id(p) for p in model.motion.parameters()}
    opt = stage1_optimizer(model, 1e-3, 0.1)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lrs) == len(list(model.parameters()))
    assert [lr for k, lr in lrs.items() if k in motion] == pytest.approx([1e-4] * len(motion))
    assert {lr for k, lr in lrs.items() if k not in motion} == {1e-3}

    frozen = _model(register_tiny_encoder())
    opt = stage1_optimizer(frozen, 1e-3, 0.0)
    assert not any(id(p) in {id(q) for q in frozen.motion.parameters()} for g in opt.param_groups for p in g["params"])
    frozen(batch, "all")["loss"].backward()
    assert all(p.grad is None for p in frozen.motion.parameters())
    assert any(p.grad is not None for p in frozen.depth.parameters())

    with pytest.raises(ConfigError, match="stage1.motion_only_epochs"):
        load_config([], ["stage1.motion_lr_scale=0", "stage1.motion_only_epochs=1"])
    load_config([], ["stage1.motion_lr_scale=0", "stage1.motion_only_epochs=0"])


def test_a_frozen_random_motion_net_is_refused(tmp_path):
    from mcdepth_train.config import ConfigError
    from mcdepth_train.stages.stage1 import train_stage1
    from tests.train.scenes import tiny_config

    cfg = tiny_config(tmp_path, ["model.motion_weights=", "stage1.motion_lr_scale=0"])
    with pytest.raises(ConfigError, match="stage1.motion_lr_scale=1 stage1.motion_only_epochs=1"):
        train_stage1(cfg)
