"""The training loop every stage shares: forward, loss, backward, clip, step, schedule; hooks do the rest.

A stage describes itself with a :class:`TrainerSpec` (its model, datasets, schedule and a few
callbacks) and calls ``Trainer(cfg, spec).train()``. The model's ``forward(batch)`` returns a dict
with "loss" (scalar tensor), optionally "scalars" ({name: scalar}) and "images" ({name: [1,C,H,W]}).

Resuming: the run folder ``RUN/<stage>/checkpoints/last.pt`` holds model, optimiser, scheduler,
RNG states, the step, the epoch and the position inside it; ``train()`` picks it up, so killing a
run at any moment and rerunning the same command loses at most ``checkpoint_every`` steps.
Validation uses the photometric loss only; ground-truth metrics (``gt_eval``) are reported, never
used to choose checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..config import AMP_MODES, config_to_dict, save_config
from .checkpoint import CheckpointError, load_checkpoint, restore_rng, save_checkpoint
from .distributed import all_reduce_mean, barrier, cleanup, init_distributed, wrap_model
from .hooks import CheckpointHook, Hook, ProgressHook, TensorBoardHook, ValidationHook, ValidationReport
from .sampler import ResumableSampler

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def move_to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Tensors of a (nested) sample dict onto ``device``; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.shape[1] == 3:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, channels_last) for v in batch)
    return batch


def autocast_context(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; nothing on CPU (``run.amp`` is ignored there)."""
    if amp not in AMP_MODES:
        raise ValueError(f"run.amp: expected one of {AMP_MODES}, got {amp!r}")
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@dataclass
class TrainerSpec:
    """What a stage gives the trainer.

    Attributes:
        stage: run sub-folder name ("stage1", "objects", ...).
        model: module whose ``forward(batch)`` returns {"loss", "scalars", "images"}.
        train_set, val_set: datasets of sample dicts (val_set None: no validation).
        schedule: a :class:`~mcdepth_train.config.TrainSchedule` (epochs, lr, clipping, intervals).
        on_epoch_start: ``f(model, epoch)`` before each epoch (e.g. set the training phase).
        phase_of: ``f(model) -> str`` the current phase name (logged, used to rank validations).
        phase_rank: ``f(phase) -> int`` a later phase's validation beats an earlier one's.
        reports: :class:`~.hooks.ValidationReport` objects measuring more on the validation
            batches (e.g. ground-truth depth); reported only, never used to select checkpoints.
        make_optimizer: ``f(model) -> Optimizer``; default Adam(lr) over all parameters.
        collate_fn: the DataLoader's collate function (None: torch's default).
    """

    stage: str
    model: nn.Module
    train_set: Any
    schedule: Any
    val_set: Any = None
    on_epoch_start: Optional[Callable[[nn.Module, int], None]] = None
    phase_of: Optional[Callable[[nn.Module], str]] = None
    phase_rank: Optional[Callable[[str], int]] = None
    reports: list[ValidationReport] = field(default_factory=list)
    make_optimizer: Optional[Callable[[nn.Module], torch.optim.Optimizer]] = None
    collate_fn: Optional[Callable] = None
    find_unused_parameters: bool = True


class Trainer:
    """Runs a :class:`TrainerSpec` under a run config; resumable, DDP-aware, hook-driven."""

    def __init__(self, cfg, spec: TrainerSpec, hooks: list[Hook] | None = None):
        self.cfg = cfg
        self.spec = spec
        self.stage = spec.stage
        sched = spec.schedule
        self.schedule = sched
        if len(spec.train_set) == 0:
            raise ValueError(f"train_set: the {spec.stage} training set is empty")
        self.ctx = init_distributed(cfg.run.device)
        self.device = self.ctx.device
        seed_everything(cfg.run.seed + self.ctx.rank, cfg.run.deterministic)
        self.out_dir = Path(cfg.run.out_dir) / spec.stage
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.channels_last = cfg.run.channels_last and self.device.type == "cuda"

        model = spec.model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.module = model
        self.model = wrap_model(model, self.ctx, spec.find_unused_parameters)
        self.optimizer = spec.make_optimizer(model) if spec.make_optimizer else torch.optim.Adam(model.parameters(), lr=sched.lr)
        # Milestones are epochs: the scheduler steps once per epoch.
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(sched.lr_milestones), gamma=sched.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and cfg.run.amp == "fp16")

        self.sampler = ResumableSampler(len(spec.train_set), cfg.run.seed, True, self.ctx.world_size, self.ctx.rank)
        self.batch_size = sched.batch_size
        self.steps_per_epoch = math.ceil(self.sampler.num_samples / self.batch_size)
        epoch_steps = self.steps_per_epoch * sched.epochs
        self.total_steps = min(epoch_steps, sched.max_steps) if sched.max_steps else epoch_steps
        self.loader = self._loader(spec.train_set, self.sampler)

        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.state: dict = {"best": None, "history": []}
        self.last_scalars: dict = {}
        self.hooks: list[Hook] = [ValidationHook(sched.val_every)] if spec.val_set is not None else []
        self.hooks += [CheckpointHook(sched.checkpoint_every)]
        if cfg.run.tensorboard:
            self.hooks.append(TensorBoardHook(self.out_dir / "tb", sched.log_every))
        self.hooks.append(ProgressHook(cfg.run.progress))
        self.hooks += list(hooks or [])

    # ------------------------------------------------------------------------------ plumbing
    def _loader(self, dataset, sampler) -> DataLoader:
        gen = torch.Generator()  # the loader's own generator: iterating never touches the global RNG
        gen.manual_seed(self.cfg.run.seed)
        workers = self.cfg.run.num_workers
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=workers,
            collate_fn=self.spec.collate_fn, generator=gen, pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker if workers else None,
        )

    @property
    def phase(self) -> str:
        return self.spec.phase_of(self.module) if self.spec.phase_of else ""

    def _call(self, method: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, method)(self, *args)

    # ------------------------------------------------------------------------------ checkpoints
    def save(self, name: str) -> Path | None:
        """Write ``checkpoints/<name>`` atomically (rank 0 only)."""
        if not self.ctx.is_main:
            return None
        models = {k: v for k, v in self.module.named_children()}
        return save_checkpoint(
            self.ckpt_dir / name, stage=self.stage, step=self.step, epoch=self.epoch, config=config_to_dict(self.cfg),
            models=models, optimizers={"main": self.optimizer}, schedulers={"main": self.scheduler},
            extra={"step_in_epoch": self.step_in_epoch, "best": self.state["best"], "history": self.state["history"],
                   "scaler": self.scaler.state_dict(), "world_size": self.ctx.world_size},
        )

    def resume(self) -> bool:
        """Load ``last.pt`` if the run folder has one; False for a fresh start."""
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            return False
        payload = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
        if payload["stage"] != self.stage:
            raise CheckpointError(f"{path} belongs to stage '{payload['stage']}', not '{self.stage}'")
        children = dict(self.module.named_children())
        for name, state in payload["models"].items():
            if name not in children:
                raise CheckpointError(f"{path}: network '{name}' is not part of this {self.stage} model")
            children[name].load_state_dict(state)
        self.optimizer.load_state_dict(payload["optimizers"]["main"])
        self.scheduler.load_state_dict(payload["schedulers"]["main"])
        extra = payload["extra"]
        if extra.get("scaler"):  # empty when the run that wrote it had no fp16 scaler
            self.scaler.load_state_dict(extra["scaler"])
        self.step, self.epoch = payload["step"], payload["epoch"]
        self.step_in_epoch = extra.get("step_in_epoch", 0)
        self.state["best"] = extra.get("best")
        self.state["history"] = list(extra.get("history", []))
        if extra.get("world_size", 1) != self.ctx.world_size:
            log.warning("resuming with %d processes, the checkpoint was written by %d: the data order changes",
                        self.ctx.world_size, extra.get("world_size", 1))
        if self.ctx.is_main:
            restore_rng(payload["rng"])
        else:  # other ranks' generators were not saved; derive them from the step
            seed_everything(self.cfg.run.seed + self.ctx.rank + 1000003 * self.step, self.cfg.run.deterministic)
        return True

    # ------------------------------------------------------------------------------ training
    def train_step(self, batch: dict) -> dict:
        """One optimiser step: forward, loss, backward, clip, step. Returns the model's outputs."""
        self.model.train()
        batch = move_to_device(batch, self.device, self.channels_last)
        with autocast_context(self.device, self.cfg.run.amp):
            outputs = self.model(batch)
        loss = outputs["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.stage}: loss is {loss.item()} at step {self.step} (epoch {self.epoch})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.schedule.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.schedule.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return outputs

    def train(self) -> dict:
        """Train to the end of the schedule (resuming when possible) and write summary.json."""
        started = time.time()
        resumed = self.resume()
        if self.ctx.is_main:
            save_config(self.cfg, self.out_dir / "config.yaml")
        self._call("before_train")
        sched = self.schedule
        while self.epoch < sched.epochs and not self._done():
            if self.spec.on_epoch_start:
                self.spec.on_epoch_start(self.module, self.epoch)
            self.sampler.set_epoch(self.epoch, min(self.step_in_epoch * self.batch_size, self.sampler.num_samples))
            for batch in self.loader:
                outputs = self.train_step(batch)
                self.step += 1
                self.step_in_epoch += 1
                self.last_scalars = {k: float(v) for k, v in outputs.get("scalars", {}).items()}
                self._call("after_step", outputs)
                if self._done():
                    break
            else:  # the epoch ran to its end (not stopped by max_steps)
                self.epoch += 1
                self.step_in_epoch = 0
                self.scheduler.step()
                self._call("after_epoch")
        self._call("after_train")
        barrier(self.ctx)  # rank 0's last checkpoint is on disk before any rank returns
        summary = self._summary(time.time() - started, resumed)
        if self.ctx.is_main:
            _write_json(self.out_dir / "summary.json", summary)
        cleanup(self.ctx)
        return summary

    def _done(self) -> bool:
        return bool(self.schedule.max_steps) and self.step >= self.schedule.max_steps

    # ------------------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Mean photometric loss over ``val_batches`` validation batches (all ranks), no ground truth.

        Each of ``spec.reports`` sees the same batches and adds its numbers (reported only).
        """
        spec = self.spec
        if spec.val_set is None or len(spec.val_set) == 0:
            return {}
        sampler = ResumableSampler(len(spec.val_set), 0, False, self.ctx.world_size, self.ctx.rank)
        loader = self._loader(spec.val_set, sampler)
        self.model.eval()
        totals = torch.zeros(3, device=self.device)  # photometric sum, loss sum, batches
        for report in spec.reports:
            report.start()
        for i, batch in enumerate(loader):
            if i >= self.schedule.val_batches:
                break
            batch = move_to_device(batch, self.device, self.channels_last)
            with autocast_context(self.device, self.cfg.run.amp):
                out = self.module(batch)
            scalars = out.get("scalars", {})
            totals += torch.stack([torch.as_tensor(float(scalars.get("photometric", out["loss"]))),
                                   torch.as_tensor(float(out["loss"])), torch.tensor(1.0)]).to(self.device)
            for report in spec.reports:
                report.add(self.module, batch)
        self.model.train()
        totals = all_reduce_mean(totals, self.ctx)
        n = max(float(totals[2]), 1e-9)
        phase = self.phase
        metrics: dict = {"step": self.step, "epoch": self.epoch, "phase": phase,
                         "phase_rank": spec.phase_rank(phase) if spec.phase_rank else 0,
                         "val/photometric": float(totals[0]) / n, "val/loss": float(totals[1]) / n}
        for report in spec.reports:  # this rank's share only: a report, not a selector
            metrics.update(report.result())
        self.state["history"].append(metrics)
        self._call("after_validation", metrics)
        return metrics

    # ------------------------------------------------------------------------------ summary
    def _summary(self, seconds: float, resumed: bool) -> dict:
        best = self.state["best"]
        return {
            "stage": self.stage,
            "steps": self.step,
            "epochs_completed": self.epoch,
            "seconds_this_run": round(seconds, 2),
            "resumed": resumed,
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "last_checkpoint": str(self.ckpt_dir / "last.pt"),
            "best_checkpoint": str(self.ckpt_dir / "best.pt") if best else None,
            "best": best,
            "selection": "best = lowest validation photometric loss in the latest training phase; ground truth never used",
            "validation_reports": [report.name for report in self.spec.reports],
            "final_train_scalars": self.last_scalars,
            "validation": self.state["history"],
        }


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
