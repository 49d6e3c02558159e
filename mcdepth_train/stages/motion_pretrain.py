"""Supervised pre-training of the motion net on the generator's exact residual motion.

RAFT itself learns on synthetic flow (FlyingChairs/Things) before it sees anything real; from
random weights, stage 1's photometric loss alone does not move it off zero on a 2-core budget
(docs/stage1.md). Here every training pair looks like the motion net's real input in stage 1 -
the reference frame forward-splatted into the source view with a depth and pose (with holes),
next to the real source frame - and the target is exact (``data.synthetic_motion.motion_pair``).
A share of the pairs is splatted with the exact depth and pose (only moving cars carry residual);
the rest with a smoothly perturbed depth and a slightly wrong pose, so every pixel carries residual
in some pairs and the net has to read motion rather than predict zero. Scenes are domain-randomised
(:func:`random_scene_params`).

The training loop is the stages' :class:`~mcdepth_train.engine.loop.Trainer` (resumable
checkpoints with optimiser and RNG states, tqdm, TensorBoard). Pair i of a run is a pure function
of (``pretrain_motion.seed``, i), so a resumed run draws exactly the pairs it would have drawn.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..data.synthetic import SceneParams, SyntheticScene
from ..engine.hooks import Hook
from ..data.synthetic_motion import Perturbation, motion_pair
from ..networks.motion import MotionNet

STAGE = "pretrain_motion"
SCENE_SEED_BASE = 10**7  # pre-training scenes never reuse a demo, test or bench seed (those are < 10**6)
VALIDATION_SEED = 7919  # the validation pairs' own pair seed
SCENE_FRAMES = 12
WEIGHTS_FORMAT = "mcdepth-motion-weights-v1"


def random_scene_params(rng: np.random.Generator, height: int, width: int) -> SceneParams:
    """A domain-randomised street: speeds, traffic, layout, camera shake, lighting and noise vary widely."""
    def span(lo: float, hi: float, width_: float) -> tuple:
        a = float(rng.uniform(lo, hi - width_))
        return (a, a + width_)

    return SceneParams(
        height=height, width=width, num_frames=SCENE_FRAMES,
        fps=float(rng.uniform(8.0, 15.0)),
        fx_ratio=float(rng.uniform(0.5, 0.7)), fy_ratio=float(rng.uniform(1.7, 2.1)),
        camera_height=float(rng.uniform(1.3, 1.9)),
        ego_speed=float(rng.choice([0.0, rng.uniform(2.0, 16.0), rng.uniform(2.0, 16.0), rng.uniform(2.0, 16.0)])),
        yaw_jitter_deg=float(rng.uniform(0.0, 1.0)), pitch_jitter_deg=float(rng.uniform(0.0, 1.0)),
        lane_width=float(rng.uniform(3.0, 4.0)), sidewalk_width=float(rng.uniform(1.5, 4.0)),
        side_street_prob=float(rng.uniform(0.1, 0.6)), building_height=span(4.0, 30.0, float(rng.uniform(3.0, 15.0))),
        lead_car=bool(rng.random() < 0.6), lead_distance=span(6.0, 30.0, 6.0),
        num_oncoming=int(rng.integers(0, 5)), oncoming_speed=span(2.0, 16.0, float(rng.uniform(1.0, 6.0))),
        num_crossing=int(rng.integers(0, 4)), crossing_speed=span(1.5, 12.0, float(rng.uniform(1.0, 5.0))),
        parked_prob=float(rng.uniform(0.1, 0.9)),
        lighting_change=float(rng.uniform(0.0, 0.15)), noise_std=float(rng.choice([0.0, rng.uniform(0.0, 0.02)])),
    )


class MotionPairs(Dataset):
    """``length`` synthetic motion pairs; pair i is drawn from ``np.random.default_rng([seed, i])``.

    Returns dicts of "splat" [3,H,W], "source" [3,H,W], "target" [2,H,W] (px), "valid" [1,H,W],
    "moving" [1,H,W] and "perturbed" (0-dim, 1 if the splat's depth/pose were perturbed).
    """

    def __init__(self, length: int, seed: int, height: int, width: int, frame_offsets=(-2, -1, 1, 2),
                 exact_fraction: float = 0.4, depth_log_std: float = 0.15, rotation_deg: float = 0.3,
                 translation_m: float = 0.1, texture_pool: int = 8, supersample: int = 2):
        if length < 0:
            raise ValueError(f"length: expected >= 0, got {length}")
        if not frame_offsets or any(int(o) == 0 for o in frame_offsets):
            raise ValueError(f"frame_offsets: expected non-zero offsets, got {list(frame_offsets)}")
        self.length, self.seed, self.height, self.width = length, seed, height, width
        self.frame_offsets = [int(o) for o in frame_offsets]
        self.exact_fraction = exact_fraction
        self.max_perturbation = Perturbation(depth_log_std, rotation_deg, translation_m)
        self.texture_pool, self.supersample = texture_pool, supersample

    @classmethod
    def from_config(cls, cfg, length: int, seed: int) -> "MotionPairs":
        p = cfg.pretrain_motion
        return cls(length, seed, p.height, p.width, p.frame_offsets, p.exact_fraction, p.depth_log_std,
                   p.rotation_deg, p.translation_m, p.texture_pool, cfg.model.splat_supersample)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"pair {index} outside 0..{self.length - 1}")
        rng = np.random.default_rng([self.seed, index])
        params = random_scene_params(rng, self.height, self.width)
        scene_seed = SCENE_SEED_BASE + int(rng.integers(0, 10**8))
        texture_seed = SCENE_SEED_BASE + int(rng.integers(0, self.texture_pool))
        scene = SyntheticScene(params, scene_seed, texture_seed=texture_seed)
        offset = int(rng.choice(self.frame_offsets))
        reach = max(abs(o) for o in self.frame_offsets)
        ref = int(rng.integers(reach, SCENE_FRAMES - reach))
        perturbed = bool(rng.random() >= self.exact_fraction)
        perturbation = None
        if perturbed:
            m = self.max_perturbation
            perturbation = Perturbation(float(rng.uniform(0, m.depth_log_std)), float(rng.uniform(0, m.rotation_deg)),
                                        float(rng.uniform(0, m.translation_m)))
        pair = motion_pair(scene, ref, ref + offset, perturbation, rng, sky_depth=float(rng.uniform(20.0, 150.0)),
                           supersample=self.supersample)
        return {key: pair[key] for key in ("splat", "source", "target", "valid", "moving")} | {
            "perturbed": torch.tensor(float(perturbed))}


def flow_loss(flow: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, moving: torch.Tensor,
              moving_weight: float = 4.0, max_flow_px: float = 48.0, huber_px: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel flow error (summed over dx, dy) and its weight: 0 in holes and where the target
    is longer than ``max_flow_px``, ``moving_weight`` on moving-car pixels, 1 elsewhere.

    Args:
        flow, target: [B,2,H,W] px. valid, moving: [B,1,H,W] 0/1.
        huber_px: 0 = L1 per component; else Huber with this delta (``e^2 / (2 delta)`` below it,
            ``|e| - delta / 2`` above: the gradient grows with the error, so a net that predicts
            zero everywhere is pulled towards the mean residual, not the median).
    Returns:
        error [B,1,H,W], weight [B,1,H,W]; the loss is ``sum(error * weight) / sum(weight)``.
    """
    e = (flow - target).abs()
    if huber_px > 0:
        e = torch.where(e < huber_px, e * e / (2 * huber_px), e - huber_px / 2)
    error = e.sum(1, keepdim=True)
    keep = (valid > 0) & (target.norm(dim=1, keepdim=True) <= max_flow_px)
    weight = keep.to(flow.dtype) * (1.0 + (moving_weight - 1.0) * (moving > 0).to(flow.dtype))
    return error, weight


class MotionPretrainModel(nn.Module):
    """The motion net with the supervised flow loss; ``forward(batch)`` in the Trainer's format."""

    def __init__(self, motion_net: MotionNet, moving_weight: float = 4.0, max_flow_px: float = 48.0, huber_px: float = 0.0):
        super().__init__()
        self.motion = motion_net
        self.moving_weight, self.max_flow_px, self.huber_px = moving_weight, max_flow_px, huber_px

    def forward(self, batch: dict) -> dict:
        flow = self.motion(batch["splat"], batch["source"]).float()
        target, valid, moving = batch["target"], batch["valid"], batch["moving"]
        error, weight = flow_loss(flow, target, valid, moving, self.moving_weight, self.max_flow_px, self.huber_px)
        loss = (error * weight).sum() / weight.sum().clamp_min(1.0)
        with torch.no_grad():
            # the weighted L1 error whatever the training loss: what validation compares ("val/photometric")
            l1, _ = flow_loss(flow, target, valid, moving, self.moving_weight, self.max_flow_px)
            kept = weight > 0
            epe = (flow - target).norm(dim=1, keepdim=True)
            on = valid > 0

            def mean(values, sel):
                return values[sel].mean() if sel.any() else values.new_zeros(())

            scalars = {"loss": loss.detach(), "photometric": (l1 * weight).sum() / weight.sum().clamp_min(1.0),
                       "epe": mean(epe, kept), "epe_moving": mean(epe, kept & (moving > 0)),
                       "epe_static": mean(epe, kept & (moving == 0)), "pred_px": mean(flow.norm(dim=1, keepdim=True), kept),
                       "target_px": mean(target.norm(dim=1, keepdim=True), kept)}
        images = {"splat": batch["splat"][:1], "source": batch["source"][:1],
                  "target_px": target[:1].norm(dim=1, keepdim=True), "predicted_px": flow[:1].detach().norm(dim=1, keepdim=True)}
        return {"loss": loss, "scalars": scalars, "images": images}


class LearningRateHook(Hook):
    """Linear warm-up over the first ``warmup_steps`` steps, then ``gamma`` after each of ``decay_steps``.

    The rate is a function of the step count alone, so a resumed run continues on the same curve.
    """

    def __init__(self, warmup_steps: int, decay_steps: list | tuple = (), gamma: float = 1.0):
        self.warmup_steps = warmup_steps
        self.decay_steps = sorted(decay_steps)
        self.gamma = gamma

    def factor(self, step: int) -> float:
        """Learning-rate factor of the step that follows ``step`` completed steps."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.gamma ** sum(step >= d for d in self.decay_steps)

    def _set(self, trainer) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = trainer.schedule.lr * self.factor(trainer.step)

    def before_train(self, trainer) -> None:
        self._set(trainer)

    def after_step(self, trainer, outputs: dict) -> None:
        self._set(trainer)


def run_dir_for(out: str | Path) -> Path:
    """The resumable run folder beside the weights file: ``FILE.run/``."""
    out = Path(out)
    return out.with_name(out.name + ".run")


def export_motion_weights(model: MotionPretrainModel, path: str | Path, meta: dict) -> Path:
    """Write the torchvision RAFT state dict (what ``model.motion_weights`` loads) with a small card."""
    from ..engine.checkpoint import atomic_torch_save

    state = {k: v.detach().float().cpu().contiguous() for k, v in model.motion.raft.state_dict().items()}
    return atomic_torch_save({"format": WEIGHTS_FORMAT, "model": state, "meta": meta}, path)


def _weights_meta(cfg, steps: int) -> dict:
    from ..config import config_to_dict

    return {"trained_on": "mcdepth synthetic motion pairs (stages/motion_pretrain.py)", "steps": int(steps),
            "config": dict(config_to_dict(cfg)["pretrain_motion"]),
            "motion_net": cfg.model.motion_net, "motion_iters": cfg.model.motion_iters,
            "motion_input_scale": cfg.model.motion_input_scale,
            "splat_supersample": cfg.model.splat_supersample}


def export_latest(out: str | Path, run_dir: str | Path | None = None) -> dict:
    """Write the weights of the latest checkpoint of a (stopped or running) pre-training to ``out``."""
    from ..config import config_from_dict
    from ..engine.checkpoint import CheckpointError, load_checkpoint

    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(out)
    path = run_dir / STAGE / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    if payload["stage"] != STAGE or "motion" not in payload["models"]:
        raise CheckpointError(f"{path} is not a {STAGE} checkpoint")
    cfg = config_from_dict(payload["config"])
    cfg.model.motion_weights = ""
    model = MotionPretrainModel(MotionNet.from_config(cfg))
    model.motion.load_state_dict(payload["models"]["motion"])
    return {"steps": payload["step"], "weights": str(export_motion_weights(model, out, _weights_meta(cfg, payload["step"])))}


def pretrain_motion(cfg, out: str | Path, run_dir: str | Path | None = None, extra_hooks: list | None = None) -> dict:
    """Train the motion net on synthetic motion pairs and write its weights to ``out``.

    Checkpoints go to ``run_dir`` (default ``FILE.run/``) ``/pretrain_motion/checkpoints/last.pt``;
    rerunning the same command resumes from there (the pairs are a function of their index).

    Returns:
        The Trainer's summary, plus "weights" (the written file).
    """
    from ..engine.loop import Trainer, TrainerSpec, seed_everything

    p = cfg.pretrain_motion
    if p.max_steps < 1:
        raise ValueError(f"pretrain_motion.max_steps: expected >= 1, got {p.max_steps}")
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(out)
    cfg.run.out_dir = str(run_dir)
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    # a pre-training may start from weights of another model.motion_input_scale: it retrains them at this one
    model = MotionPretrainModel(MotionNet.from_config(cfg, any_trained_scale=True), p.moving_weight, p.max_flow_px,
                                p.huber_px)
    train_set = MotionPairs.from_config(cfg, p.max_steps * p.batch_size, p.seed)
    val_set = MotionPairs.from_config(cfg, p.val_pairs, VALIDATION_SEED + p.seed) if p.val_pairs else None
    schedule = p
    if val_set is not None:  # whole validation set each time
        schedule.val_batches = min(p.val_batches, math.ceil(p.val_pairs / p.batch_size))
    spec = TrainerSpec(stage=STAGE, model=model, train_set=train_set, val_set=val_set, schedule=schedule)
    trainer = Trainer(cfg, spec, hooks=[LearningRateHook(p.warmup_steps, p.lr_decay_steps, p.lr_gamma)] + list(extra_hooks or []))
    summary = trainer.train()
    summary["weights"] = str(export_motion_weights(model, out, _weights_meta(cfg, summary["steps"])))
    return summary
