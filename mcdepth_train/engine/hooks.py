"""Hooks around the training loop: checkpoints, validation, TensorBoard, progress.

A hook subclasses :class:`Hook` and overrides what it needs; the :class:`~.loop.Trainer` calls them
in list order. Only rank 0 writes files or shows progress (``trainer.ctx.is_main``).
"""
from __future__ import annotations

import math

import torch


class Hook:
    """Callbacks of the training loop; every method is optional."""

    def before_train(self, trainer) -> None: ...

    def after_step(self, trainer, outputs: dict) -> None: ...

    def after_epoch(self, trainer) -> None: ...

    def after_validation(self, trainer, metrics: dict) -> None: ...

    def after_train(self, trainer) -> None: ...


class ValidationReport:
    """Numbers measured on the validation batches beside the loss: reported, never used to select.

    The trainer calls ``start()`` before a validation, ``add(model, batch)`` on each of its batches
    (on the device, in eval mode, without gradients) and merges ``result()`` into the validation's
    metrics (history, summary.json, TensorBoard). It stays generic: what is measured and on which
    keys of a batch is the report's business (``eval/gt_report.py`` measures ground-truth depth).
    """

    name = "report"

    def start(self) -> None: ...

    def add(self, model, batch: dict) -> None: ...

    def result(self) -> dict[str, float]:
        return {}


class ValidationHook(Hook):
    """Validate every ``val_every`` steps (0: at each epoch end); no ground truth for selection."""

    def __init__(self, val_every: int):
        self.val_every = val_every

    def after_step(self, trainer, outputs: dict) -> None:
        if self.val_every and trainer.step % self.val_every == 0:
            trainer.validate()

    def after_epoch(self, trainer) -> None:
        if not self.val_every:
            trainer.validate()


class CheckpointHook(Hook):
    """``last.pt`` every ``every`` steps and at each epoch end; ``best.pt`` when validation improves.

    "Better" compares (phase rank, -validation photometric loss): a later training phase beats an
    earlier one (its loss includes the motion model), then the lower loss wins.
    """

    def __init__(self, every: int):
        self.every = every

    def after_step(self, trainer, outputs: dict) -> None:
        if self.every and trainer.step % self.every == 0:
            trainer.save("last.pt")

    def after_epoch(self, trainer) -> None:
        trainer.save("last.pt")

    def after_validation(self, trainer, metrics: dict) -> None:
        loss = metrics.get("val/photometric")
        if loss is None or not math.isfinite(loss):
            return
        key = (metrics.get("phase_rank", 0), -loss)
        best = trainer.state["best"]
        if best is None or key > (best["phase_rank"], -best["val_photometric"]):
            trainer.state["best"] = {"step": trainer.step, "epoch": trainer.epoch, "val_photometric": loss,
                                     "phase": metrics.get("phase", ""), "phase_rank": metrics.get("phase_rank", 0)}
            trainer.save("best.pt")

    def after_train(self, trainer) -> None:
        trainer.save("last.pt")


class TensorBoardHook(Hook):
    """Scalars every ``log_every`` steps, images (depth, motion, reconstruction) every 10x that."""

    def __init__(self, log_dir, log_every: int):
        self.log_dir = log_dir
        self.log_every = max(1, log_every)
        self.writer = None

    def before_train(self, trainer) -> None:
        if trainer.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def after_step(self, trainer, outputs: dict) -> None:
        if self.writer is None or trainer.step % self.log_every:
            return
        for name, value in outputs.get("scalars", {}).items():
            self.writer.add_scalar(f"train/{name}", float(value), trainer.step)
        self.writer.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.step)
        if trainer.step % (10 * self.log_every) == 0:
            for name, image in outputs.get("images", {}).items():
                self.writer.add_image(f"train/{name}", _displayable(image[0]), trainer.step)

    def after_validation(self, trainer, metrics: dict) -> None:
        if self.writer is None:
            return
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and name.startswith(("val/", "gt/")):
                self.writer.add_scalar(name, value, trainer.step)
        self.writer.flush()

    def after_train(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()


def _displayable(image: torch.Tensor) -> torch.Tensor:
    """[C,H,W] -> [3 or 1,H,W] in [0,1]: colour images as they are, single maps min-max normalised."""
    image = image.detach().float().cpu()
    if image.shape[0] == 3:
        return image.clamp(0, 1)
    lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo).clamp_min(1e-8)


class ProgressHook(Hook):
    """tqdm bar over all steps with ETA, the loss and the phase."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def before_train(self, trainer) -> None:
        if self.enabled and trainer.ctx.is_main:
            from tqdm import tqdm

            self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc=trainer.stage, unit="step", dynamic_ncols=True)

    def after_step(self, trainer, outputs: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        loss = outputs.get("scalars", {}).get("loss", outputs.get("loss"))
        loss = loss.detach() if isinstance(loss, torch.Tensor) else loss  # the model's own loss still holds its graph
        post = {"loss": f"{float(loss):.4f}", "epoch": trainer.epoch}
        if trainer.phase:
            post["phase"] = trainer.phase
        self.bar.set_postfix(post, refresh=False)

    def after_train(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
