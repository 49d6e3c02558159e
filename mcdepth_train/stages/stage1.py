"""Stage 1 (paper 4.1): scene depth, camera pose and pixel-wise motion, with forward warping.

Per source frame s of a sample: the pose net gives ``src_from_ref``; the reference frame is
forward-splatted into the source view with the reference depth (z-buffer), RAFT compares that
rendering with the real source frame, and the residual flow - masked by splat validity and by the
mean-magnitude rule, carried back to the reference view and kept where both sources agree - moves
each reference pixel's projection. Loss: multi-scale photometric (min over sources, auto-mask) +
edge-aware smoothness + motion sparsity on that masked, back-splatted motion.

Training phases (the authors' schedule; lengths in ``Stage1Config``):
  ``depth_pose`` - motion held at zero; ``motion`` - only the motion net learns, without the
  mean-magnitude rule and without sparsity (as the authors: the motion must first appear);
  ``all`` - everything, sparsity ramped in over ``loss.sparsity_ramp_steps``.

Public pieces later stages use: :class:`Stage1Model` (``infer`` gives depth, poses, flow, masks),
:func:`train_stage1`, :func:`phase_for_epoch`.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import keys as K_
from ..engine.hooks import Hook
from ..geometry import forward_splat, splat_to_reference
from ..losses.regularizers import motion_sparsity, sparsity_ramp
from ..losses.reprojection import (
    PhotometricOptions, disparity_to_full_depth, multiscale_photometric_loss, multiscale_smoothness,
)
from ..networks.depth import DepthNet
from ..networks.motion import MotionNet, mean_magnitude_mask, splat_validity_mask, two_sided_mask
from ..networks.pose import PoseNet

PHASES = ("depth_pose", "motion", "all")


def full_precision(device: torch.device):
    """Geometry and losses run in float32 even inside an AMP region (projection needs the precision)."""
    return torch.autocast(device_type=device.type, enabled=False)


def phase_for_epoch(epoch: int, depth_pose_epochs: int, motion_only_epochs: int) -> str:
    """The training phase of an epoch under the authors' schedule."""
    if epoch < depth_pose_epochs:
        return "depth_pose"
    if epoch < depth_pose_epochs + motion_only_epochs:
        return "motion"
    return "all"


class Stage1Model(nn.Module):
    """Depth, pose and motion nets with the stage-1 loss.

    ``forward(batch, phase)`` returns a dict with "loss" (scalar to minimise), "scalars"
    ({name: detached scalar}) and "images" (detached maps of the first sample for logging).
    """

    def __init__(
        self,
        depth_net: DepthNet,
        pose_net: PoseNet,
        motion_net: MotionNet,
        frame_ids: list[int] = (-1, 0, 1),
        photometric: PhotometricOptions = PhotometricOptions(),
        smooth_weight: float = 1e-3,
        smooth_scale_decay: bool = True,
        sparsity_weight: float = 0.01,
        splat_supersample: int = 3,
        motion_mean_threshold: bool = True,
        motion_two_sided: bool = True,
    ):
        super().__init__()
        if 0 not in frame_ids or len(frame_ids) < 2:
            raise ValueError(f"frame_ids: need the reference 0 and at least one source, got {list(frame_ids)}")
        self.depth = depth_net
        self.pose = pose_net
        self.motion = motion_net
        self.frame_ids = list(frame_ids)
        self.source_ids = [f for f in frame_ids if f != 0]
        self.photometric = photometric
        self.smooth_weight = smooth_weight
        self.smooth_scale_decay = smooth_scale_decay
        self.sparsity_weight = sparsity_weight
        self.splat_supersample = splat_supersample
        self.motion_mean_threshold = motion_mean_threshold
        self.motion_two_sided = motion_two_sided
        self.phase = "all"
        # Factor on sparsity_weight (the warm-up ramp sets it each step; 1 outside training).
        self.sparsity_scale = 1.0

    @classmethod
    def from_config(cls, cfg, **extra) -> "Stage1Model":
        """The model ``cfg`` describes; ``extra``: more keyword arguments of a subclass's constructor."""
        return cls(
            DepthNet.from_config(cfg), PoseNet.from_config(cfg), MotionNet.from_config(cfg),
            frame_ids=cfg.data.frame_ids,
            photometric=PhotometricOptions.from_config(cfg.loss),
            smooth_weight=cfg.loss.smooth_weight, smooth_scale_decay=cfg.loss.smooth_scale_decay,
            sparsity_weight=cfg.loss.sparsity_weight, splat_supersample=cfg.model.splat_supersample,
            motion_mean_threshold=cfg.stage1.motion_mean_threshold, motion_two_sided=cfg.stage1.motion_two_sided,
            **extra,
        )

    # ------------------------------------------------------------------------------ pieces
    def predict_depth(self, batch: dict) -> list[torch.Tensor]:
        """Sigmoid disparity per scale of the reference frame (network input: colour-jittered)."""
        return self.depth(batch[K_.color(0, 0, augmented=True)])

    def predict_poses(self, batch: dict) -> dict:
        """{source id: src_from_ref [B,4,4]} from the pose net on (reference, source)."""
        ref = batch[K_.color(0, 0, augmented=True)]
        return {f: self.pose.src_from_ref(ref, batch[K_.color(f, 0, augmented=True)], f) for f in self.source_ids}

    def predict_motion(self, batch: dict, depth_ref: torch.Tensor, poses: dict, mean_rule: bool = True) -> tuple[dict, dict]:
        """Residual motion of every source, carried back to the reference view, and its masks.

        Args:
            depth_ref: [B,1,H,W] full-resolution reference depth (used without gradient: the
                splat's winner choice is discrete). poses: {id: src_from_ref}.
            mean_rule: apply the mean-magnitude rule (when ``motion_mean_threshold``); off in
                the motion-only phase.
        Returns:
            flows: {id: [B,2,H,W] motion in source pixels at each reference pixel, 0 where none}.
            masks: "splat_valid" {id: [B,1,H,W] source view}, "mean_mask" {id: source view},
                "ref_valid" {id: reference view}, "two_sided" [B,1,H,W], "raw_flow" {id: [B,2,H,W]}.
        """
        ref_img = batch[K_.color(0, 0)]
        K, h_w = batch[K_.intrinsics(0)], tuple(ref_img.shape[-2:])
        flows, masks = {}, {"splat_valid": {}, "mean_mask": {}, "ref_valid": {}, "raw_flow": {}}
        for f in self.source_ids:
            with full_precision(ref_img.device):
                splat = forward_splat(depth_ref.detach().float(), ref_img.float(), K.float(), K.float(),
                                      poses[f].detach().float(), supersample=self.splat_supersample)
            raw = self.motion(splat.image, batch[K_.color(f, 0)]).float()
            flow = splat_validity_mask(raw, splat.valid)
            mean_mask = mean_magnitude_mask(raw, splat.valid) if self.motion_mean_threshold and mean_rule else splat.valid
            flow = flow * mean_mask
            flows[f], masks["ref_valid"][f] = splat_to_reference(flow, splat.ref_index, h_w)
            masks["splat_valid"][f], masks["mean_mask"][f], masks["raw_flow"][f] = splat.valid, mean_mask, raw
        if self.motion_two_sided and len(self.source_ids) > 1:
            both = two_sided_mask([flows[f] for f in self.source_ids], [masks["ref_valid"][f] for f in self.source_ids])
            flows = {f: flows[f] * both for f in self.source_ids}
            masks["two_sided"] = both
        return flows, masks

    # ------------------------------------------------------------------------------ training
    def forward(self, batch: dict, phase: str | None = None) -> dict:
        phase = phase or self.phase
        if phase not in PHASES:
            raise ValueError(f"phase: expected one of {PHASES}, got {phase!r}")
        # In the motion-only phase depth and pose are fixed inputs to the motion net.
        frozen = torch.no_grad() if phase == "motion" else contextlib.nullcontext()
        with frozen:
            disps = self.predict_depth(batch)
            poses = self.predict_poses(batch)
        disps = [d.float() for d in disps]
        poses = {f: p.float() for f, p in poses.items()}
        target = batch[K_.color(0, 0)]
        size = tuple(target.shape[-2:])
        flows, motion_masks = None, None
        sparsity = target.new_zeros(())
        if phase != "depth_pose":
            depth_full = disparity_to_full_depth(disps[0], size, self.depth.min_depth, self.depth.max_depth)
            flows, motion_masks = self.predict_motion(batch, depth_full, poses, mean_rule=phase != "motion")
            # On the motion that moves the projections (masked, in the reference view), as the authors.
            sparsity = torch.stack([motion_sparsity(flows[f]).mean() for f in self.source_ids]).mean()
        with full_precision(target.device):
            return self._losses(batch, phase, disps, poses, flows, sparsity)

    def _losses(self, batch, phase, disps, poses, flows, sparsity) -> dict:
        target = batch[K_.color(0, 0)]
        photo, details = multiscale_photometric_loss(
            disps, target, {f: batch[K_.color(f, 0)] for f in self.source_ids},
            batch[K_.intrinsics(0)], batch[K_.intrinsics(0, inverse=True)], poses, self.photometric,
            self.depth.min_depth, self.depth.max_depth, flows=flows,
        )
        images = [batch[K_.color(0, s)] for s in range(len(disps))]
        smooth = multiscale_smoothness(disps, images, self.smooth_weight, self.smooth_scale_decay)
        loss = photo + smooth
        sparsity_weight = self.sparsity_weight * self.sparsity_scale if phase == "all" else 0.0
        if sparsity_weight:
            loss = loss + sparsity_weight * sparsity
        scalars = {"loss": loss.detach(), "photometric": photo.detach(), "smoothness": smooth.detach(),
                   "sparsity": sparsity.detach(), "sparsity_weight": torch.tensor(float(sparsity_weight)),
                   "automask_fraction": details["automask"].mean().detach()}
        out_images = {"depth": details["depth"][:1].detach(), "target": target[:1].detach()}
        for f in self.source_ids:
            out_images[f"reconstruction_{f}"] = details["warped"][f][:1].detach()
            if flows is not None:
                out_images[f"motion_{f}"] = flows[f][:1].detach().norm(dim=1, keepdim=True)
        return {"loss": loss, "scalars": scalars, "images": out_images}

    # ------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(self, batch: dict, with_motion: bool = True) -> dict:
        """Stage-1 outputs for the reference frame (used by the masks stage).

        Args:
            batch: a collated sample dict (``mcdepth_train.data.keys``) on the model's device.
            with_motion: run the motion net (False: flows are zero).
        Returns:
            "depth": [B,1,H,W] metres (model units); "disp": sigmoid disparity per scale;
            "poses": {src_id: src_from_ref [B,4,4]};
            "flow": {src_id: [B,2,H,W] residual motion in pixels, carried back to the reference
            view, 0 where none}; "masks": "splat_valid"/"mean_mask" {id: source view},
            "ref_valid" {id: reference view}, "two_sided" [B,1,H,W] (all ones with one source).
        """
        disps = self.predict_depth(batch)
        size = tuple(batch[K_.color(0, 0)].shape[-2:])
        depth = disparity_to_full_depth(disps[0].float(), size, self.depth.min_depth, self.depth.max_depth)
        poses = self.predict_poses(batch)
        if with_motion:
            flows, masks = self.predict_motion(batch, depth, poses)
            masks.pop("raw_flow")
            masks.setdefault("two_sided", torch.ones_like(depth))
        else:
            flows = {f: depth.new_zeros(depth.shape[0], 2, *size) for f in self.source_ids}
            masks = {}
        return {"depth": depth, "disp": disps, "poses": poses, "flow": flows, "masks": masks}


class SparsityRampHook(Hook):
    """Sets ``model.sparsity_scale`` before every step from the step count (resumes exactly).

    The ramp starts at the first step of the 'all' phase: ``steps_per_epoch * (depth_pose_epochs +
    motion_only_epochs)``.
    """

    def __init__(self, model: Stage1Model, depth_pose_epochs: int, motion_only_epochs: int, ramp_steps: int):
        self.model, self.ramp_steps = model, ramp_steps
        self.epochs_before = depth_pose_epochs + motion_only_epochs

    def _set(self, trainer) -> None:
        start = trainer.steps_per_epoch * self.epochs_before
        self.model.sparsity_scale = sparsity_ramp(trainer.step, start, self.ramp_steps)

    def before_train(self, trainer) -> None:
        self._set(trainer)

    def after_step(self, trainer, outputs: dict) -> None:
        self._set(trainer)

    def after_train(self, trainer) -> None:
        self.model.sparsity_scale = 1.0


def gt_metrics(model: Stage1Model, batch: dict, eval_cfg, crop: str) -> list[tuple[dict, float]]:
    """Per-image region metrics against ``depth_gt`` (only when ground truth is asked for)."""
    from ..eval.metrics import evaluate_image

    depth = model.infer(batch, with_motion=False)["depth"]
    gt = batch[K_.DEPTH_GT]
    depth = F.interpolate(depth, size=gt.shape[-2:], mode="bilinear", align_corners=False)
    dyn = batch.get(K_.DYNAMIC_MASK)
    out = []
    for i in range(depth.shape[0]):
        out.append(evaluate_image(
            depth[i, 0].cpu().numpy(), gt[i, 0].cpu().numpy(),
            None if dyn is None else dyn[i, 0].cpu().numpy() > 0.5,
            eval_cfg.min_depth, eval_cfg.max_depth, eval_cfg.median_scaling, crop,
        ))
    return out


def init_from_checkpoint(model: torch.nn.Module, path: str, key: str = "stage1.init_checkpoint") -> list[str]:
    """Load every network of ``model`` (depth, pose, motion) that the checkpoint at ``path`` holds.

    Returns the names loaded. Raises ConfigError naming ``key`` for a missing file, a checkpoint
    with none of the networks, or weights of another architecture (e.g. another encoder).
    """
    from ..config import ConfigError
    from ..engine.checkpoint import CheckpointError, load_checkpoint

    try:
        payload = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    children = dict(model.named_children())
    loaded = [name for name in children if name in payload["models"]]
    if not loaded:
        raise ConfigError(f"{key}: {path} holds none of the networks {', '.join(children)} (it has: {', '.join(payload['models'])})")
    for name in loaded:
        try:
            children[name].load_state_dict(payload["models"][name])
        except RuntimeError as exc:
            raise ConfigError(f"{key}: the '{name}' weights of {path} do not fit this config's network "
                              f"(trained with another model.* setting?): {str(exc).splitlines()[0]}") from exc
    return loaded


def stage1_optimizer(model: "Stage1Model", lr: float, motion_lr_scale: float) -> torch.optim.Optimizer:
    """Adam over depth and pose at ``lr`` and the motion net at ``lr * motion_lr_scale``.

    Adam normalises each step to about ``lr`` per weight whatever the gradient's size, so the weak,
    noisy photometric gradient of a few moving pixels moves a pre-trained motion net as far as a
    strong one would (docs/stage1.md, "Keeping the pre-trained motion"). ``motion_lr_scale=0``
    freezes it (no gradients are computed for it).
    """
    motion = list(model.motion.parameters())
    motion_ids = {id(p) for p in motion}
    rest = [p for p in model.parameters() if id(p) not in motion_ids]
    groups = [{"params": rest, "lr": lr}]
    if motion_lr_scale > 0:
        groups.append({"params": motion, "lr": lr * motion_lr_scale})
    else:
        for p in motion:
            p.requires_grad_(False)
    return torch.optim.Adam(groups, lr=lr)


def training_sets(cfg, train_set=None, val_set=None):
    """(train, val) datasets: the given ones, else built from ``cfg.data`` (val None when the source has none)."""
    if train_set is None:
        from ..data import build_dataset  # imported only when needed

        train_set = build_dataset(cfg, "train")
        if val_set is None:
            try:
                val_set = build_dataset(cfg, "val")
            except (ValueError, FileNotFoundError):
                val_set = None
    return train_set, val_set


def train_stage1(cfg, train_set=None, val_set=None, eval_gt: bool = False, extra_hooks: list | None = None) -> dict:
    """Train stage 1 and write ``RUN/stage1/`` (checkpoints, config, TensorBoard, summary.json).

    Rerunning with the same ``run.out_dir`` resumes from ``RUN/stage1/checkpoints/last.pt``.

    Args:
        cfg: the run :class:`~mcdepth_train.config.Config`.
        train_set, val_set: datasets returning sample dicts; None builds them from ``cfg.data``
            with ``mcdepth_train.data.build_dataset`` (val None there: no validation).
        eval_gt: also measure depth against ground truth at each validation (reported only,
            never used to pick checkpoints).
        extra_hooks: more :class:`~mcdepth_train.engine.hooks.Hook` objects (tests, curves).
    Returns:
        The summary dict also written to ``summary.json``.
    """
    from ..engine.loop import Trainer, TrainerSpec, seed_everything

    sched = cfg.stage1
    if sched.motion_lr_scale == 0 and not cfg.model.motion_weights and not sched.init_checkpoint:
        from ..config import ConfigError

        # Checked here, not at load: pretrain-motion's model.motion_weights="" is right for it.
        raise ConfigError("stage1.motion_lr_scale: 0 freezes the motion net, but model.motion_weights is empty (random "
                          "weights); to train it from scratch set stage1.motion_lr_scale=1 stage1.motion_only_epochs=1")
    train_set, val_set = training_sets(cfg, train_set, val_set)
    seed_everything(cfg.run.seed, cfg.run.deterministic)  # same initial weights on every rank and rerun
    model = Stage1Model.from_config(cfg)
    if sched.init_checkpoint:
        init_from_checkpoint(model, sched.init_checkpoint)

    def on_epoch(module: Stage1Model, epoch: int) -> None:
        module.phase = phase_for_epoch(epoch, sched.depth_pose_epochs, sched.motion_only_epochs)

    from ..eval.metrics import protocol_crop

    crop = protocol_crop(cfg.eval.protocol, cfg.eval.crop, cfg.data.dataset)

    from ..eval.gt_report import GroundTruthReport

    report = GroundTruthReport(lambda module, batch: gt_metrics(module, batch, cfg.eval, crop))
    spec = TrainerSpec(
        stage="stage1", model=model, train_set=train_set, val_set=val_set, schedule=sched,
        make_optimizer=lambda m: stage1_optimizer(m, sched.lr, sched.motion_lr_scale),
        on_epoch_start=on_epoch, phase_of=lambda m: m.phase, phase_rank=PHASES.index,
        reports=[report] if (eval_gt or cfg.stage1.report_gt) else [],
    )
    ramp = SparsityRampHook(model, sched.depth_pose_epochs, sched.motion_only_epochs, cfg.loss.sparsity_ramp_steps)
    trainer = Trainer(cfg, spec, hooks=[ramp] + list(extra_hooks or []))
    summary = trainer.train()
    return summary


def run(cfg, run_dir) -> dict:
    """The pipeline's stage-1 step: :func:`train_stage1` into ``RUN/stage1/`` (``run_dir`` is ``cfg.run.out_dir``)."""
    return train_stage1(cfg)
