"""Motion pre-training: exact targets from the generator, the flow loss, the resumable command, loading into stage 1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.config import ConfigError, load_config
from mcdepth_train.data.synthetic import SceneParams, SyntheticScene
from mcdepth_train.data.synthetic_motion import Perturbation, motion_pair
from mcdepth_train.engine.hooks import Hook
from mcdepth_train.geometry.warp import backward_warp
from mcdepth_train.stages.motion_pretrain import LearningRateHook, MotionPairs, flow_loss, pretrain_motion, run_dir_for

TINY = ["pretrain_motion.height=32", "pretrain_motion.width=64", "pretrain_motion.batch_size=2", "pretrain_motion.val_pairs=2",
        "pretrain_motion.val_every=2", "pretrain_motion.checkpoint_every=1", "run.progress=false", "run.tensorboard=false",
        "model.splat_supersample=1"]


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(SceneParams(height=64, width=192, num_frames=8), seed=3)


def _photometric(pair: dict, flow: torch.Tensor) -> torch.Tensor:
    """|I_s(q + flow) - I_hat_s(q)| per pixel: how well the flow explains the source view."""
    h, w = flow.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    warped, _ = backward_warp(pair["source"][None], torch.stack([u, v])[None] + flow[None])
    return (warped[0] - pair["splat"]).abs().mean(0)


def test_exact_pair_has_residual_only_on_moving_cars_and_it_explains_them(scene):
    pair = motion_pair(scene, 4, 5, supersample=2)
    valid, moving = pair["valid"][0] > 0, pair["moving"][0] > 0
    splatted_ids = pair["instance_map"].reshape(-1)[pair["ref_index"][0].clamp_min(0).reshape(-1).numpy()].reshape(valid.shape)
    solid = torch.from_numpy(pair["depth_gt"].reshape(-1)[pair["ref_index"][0].clamp_min(0).reshape(-1).numpy()].reshape(valid.shape) > 0)
    magnitude = pair["target"].norm(dim=0)
    static = valid & ~moving & solid & torch.from_numpy(splatted_ids == 0)
    assert static.sum() > 1000 and float(magnitude[static].max()) < 1e-3  # the rigid model is exact there
    assert moving.sum() > 50 and float(magnitude[moving].mean()) > 0.5
    zero, ideal = _photometric(pair, torch.zeros_like(pair["target"])), _photometric(pair, pair["target"])
    # (the splat rounds each point to a pixel, so the target explains movers up to that rounding)
    assert float(ideal[moving].mean()) < 0.9 * float(zero[moving].mean())
    assert torch.all(pair["target"][:, ~valid] == 0)


def test_perturbed_pair_puts_residual_everywhere_and_the_target_undoes_it(scene):
    rng = np.random.default_rng(0)
    pair = motion_pair(scene, 4, 3, Perturbation(0.1, 0.3, 0.1), rng, supersample=2)
    valid = pair["valid"][0] > 0
    assert float(pair["target"].norm(dim=0)[valid].mean()) > 0.3
    zero, ideal = _photometric(pair, torch.zeros_like(pair["target"])), _photometric(pair, pair["target"])
    assert float(ideal[valid].mean()) < 0.7 * float(zero[valid].mean())


def test_pairs_are_a_function_of_their_index():
    pairs = MotionPairs(4, seed=5, height=32, width=64, supersample=1)
    a, b = pairs[2], pairs[2]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(pairs[1]["source"], a["source"])
    with pytest.raises(IndexError):
        pairs[4]
    with pytest.raises(ValueError, match="frame_offsets"):
        MotionPairs(4, 0, 32, 64, frame_offsets=[0, 1])


def test_flow_loss_weights_movers_and_drops_holes_and_huge_targets():
    flow = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[[1.0, -2.0, 3.0, 100.0]], [[0.0, 1.0, 0.0, 0.0]]]])
    valid = torch.tensor([[[[1.0, 1.0, 0.0, 1.0]]]])
    moving = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    error, weight = flow_loss(flow, target, valid, moving, moving_weight=4.0, max_flow_px=48.0)
    assert error.flatten().tolist() == [1.0, 3.0, 3.0, 100.0]
    assert weight.flatten().tolist() == [1.0, 4.0, 0.0, 0.0]
    # Huber, delta 2: e^2/4 below, e - 1 above
    huber, _ = flow_loss(flow, target, valid, moving, huber_px=2.0)
    assert huber.flatten().tolist() == [0.25, 1.0 + 0.25, 2.0, 99.0]


def test_config_checks_the_pretraining_keys():
    with pytest.raises(ConfigError, match="pretrain_motion.frame_offsets"):
        load_config([], ["pretrain_motion.frame_offsets=[0, 1]"])
    with pytest.raises(ConfigError, match="pretrain_motion.exact_fraction"):
        load_config([], ["pretrain_motion.exact_fraction=1.5"])
    # epoch milestones would never fire in a one-epoch run: refused, pointing at the step key
    with pytest.raises(ConfigError, match="pretrain_motion.lr_decay_steps"):
        load_config([], ["pretrain_motion.lr_milestones=[1]"])
    with pytest.raises(ConfigError, match="pretrain_motion.epochs"):
        load_config([], ["pretrain_motion.epochs=3"])
    with pytest.raises(ConfigError, match="pretrain_motion.lr_decay_steps"):
        load_config([], ["pretrain_motion.lr_decay_steps=[0]"])
    with pytest.raises(ConfigError, match="below pretrain_motion.max_steps"):  # would never fire
        load_config([], ["pretrain_motion.max_steps=100", "pretrain_motion.lr_decay_steps=[100]"])


def test_learning_rate_warms_up_then_drops_after_each_decay_step():
    hook = LearningRateHook(warmup_steps=4, decay_steps=[10, 6], gamma=0.5)
    factors = [hook.factor(step) for step in range(12)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4:6] == [1.0, 1.0]
    assert factors[6:10] == [0.5] * 4  # the 7th step (6 done) is the first at lr * gamma
    assert factors[10:] == [0.25, 0.25]
    assert LearningRateHook(0).factor(0) == 1.0


class _RecordLearningRate(Hook):
    def __init__(self):
        self.rates = []

    def after_step(self, trainer, outputs: dict) -> None:
        self.rates.append(trainer.optimizer.param_groups[0]["lr"])


def test_pretraining_follows_the_decay_steps(tmp_path):
    cfg = load_config([], TINY + ["pretrain_motion.max_steps=3", "pretrain_motion.warmup_steps=0", "pretrain_motion.lr=1e-3",
                                  "pretrain_motion.lr_decay_steps=[2]", "pretrain_motion.lr_gamma=0.1", "pretrain_motion.val_pairs=0"])
    record = _RecordLearningRate()
    pretrain_motion(cfg, tmp_path / "motion.pt", extra_hooks=[record])
    # the rate each hook sees after step k is the one step k + 1 will use
    assert record.rates == pytest.approx([1e-3, 1e-4, 1e-4])


class _Interrupt(Hook):
    """Stops the run after ``at`` steps, like kill -9 right after a checkpoint."""

    def __init__(self, at: int):
        self.at = at

    def after_step(self, trainer, outputs: dict) -> None:
        if trainer.step == self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 3-step pre-training, interrupted after step 2 and resumed."""
    out = tmp_path_factory.mktemp("pretrain") / "motion.pt"
    cfg = load_config([], TINY + ["pretrain_motion.max_steps=3"])
    with pytest.raises(KeyboardInterrupt):
        pretrain_motion(cfg, out, extra_hooks=[_Interrupt(2)])
    assert not out.exists()
    saved = torch.load(run_dir_for(out) / "pretrain_motion" / "checkpoints" / "last.pt", weights_only=False)
    assert saved["step"] == 2 and "main" in saved["optimizers"] and "torch" in saved["rng"]
    return out, saved


def test_pretraining_resumes_from_the_saved_step_and_writes_the_weights(weights):
    from mcdepth_train.cli import main as cli

    out, _ = weights
    assert cli(["pretrain-motion", "--out", str(out), *TINY, "pretrain_motion.max_steps=3"]) == 0
    last = torch.load(run_dir_for(out) / "pretrain_motion" / "checkpoints" / "last.pt", weights_only=False)
    assert last["step"] == 3
    summary = __import__("json").loads((run_dir_for(out) / "pretrain_motion" / "summary.json").read_text())
    assert summary["resumed"] and summary["steps"] == 3 and summary["validation"]
    payload = torch.load(out, weights_only=True)
    assert payload["meta"]["steps"] == 3 and payload["format"] == "mcdepth-motion-weights-v1"
    assert payload["meta"]["motion_input_scale"] == 1  # the card says how to load it (MotionNet refuses another)
    # the exported weights are the checkpoint's motion net
    raft = {k[len("raft."):]: v for k, v in last["models"]["motion"].items()}
    assert all(torch.equal(payload["model"][k], raft[k]) for k in raft)
    again = out.with_name("exported.pt")
    assert cli(["pretrain-motion", "--out", str(again), "--run", str(run_dir_for(out)), "--export-only"]) == 0
    assert all(torch.equal(torch.load(again, weights_only=True)["model"][k], raft[k]) for k in raft)
    assert cli(["pretrain-motion", "--out", str(out.with_name("x.pt")), "--export-only"]) == 1  # no run beside it


def test_stage1_starts_from_the_pretrained_weights_and_refuses_a_wrong_file(weights, tmp_path):
    from mcdepth_train.stages.stage1 import Stage1Model

    out, _ = weights
    cfg = load_config([], [f"model.motion_weights={out}"])
    model = Stage1Model.from_config(cfg)
    state = torch.load(out, weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in model.motion.raft.state_dict().items())
    missing = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match="model.motion_weights"):
        Stage1Model.from_config(load_config([], [f"model.motion_weights={missing}"]))
    wrong = tmp_path / "large.pt"
    torch.save({"model": {"x": torch.zeros(1)}}, wrong)
    with pytest.raises(ValueError, match="model.motion_weights.*raft_small"):
        Stage1Model.from_config(load_config([], [f"model.motion_weights={wrong}"]))


def test_shipped_weights_are_small_and_load_as_model_motion_weights_shipped():
    from mcdepth_train.networks.motion import SHIPPED_MOTION_WEIGHTS, MotionNet, resolve_motion_weights

    assert resolve_motion_weights("shipped") == str(SHIPPED_MOTION_WEIGHTS) and resolve_motion_weights("a.pt") == "a.pt"
    assert SHIPPED_MOTION_WEIGHTS.is_file() and SHIPPED_MOTION_WEIGHTS.stat().st_size < 5 * 2**20
    payload = torch.load(SHIPPED_MOTION_WEIGHTS, weights_only=True)
    assert payload["meta"]["motion_net"] == "raft_small" and payload["meta"]["steps"] > 0
    net = MotionNet(weights_path="shipped")
    assert all(torch.equal(v, payload["model"][k]) for k, v in net.raft.state_dict().items())
