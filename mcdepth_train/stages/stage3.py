"""Stage 3 (paper 4.4, Eqs. 17-20) and iterative self-training (paper 5.3).

The final depth net starts from stage 1 (depth, pose and motion nets all fine-tuned) and trains on
the stage-1 loss plus ``pl_weight * L_pl``: the depth on the moving-object region is pulled towards
the pseudo label after aligning the label's arbitrary scale to the prediction per image (median
ratio, two passes), so only the label's *shape* is learned and the net keeps its own scale.

Self-training round k >= 1 uses round k-1's depth as the new pseudo label (same moving-object
mask) and fine-tunes that net again. Each round trains in ``RUN/stage3/round<k>/`` and resumes
from its own ``last.pt``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import Config
from ..data import keys
from ..losses.pseudo_label import masked_mean, pseudo_label_loss
from ..losses.reprojection import disparity_to_full_depth
from .frames import batch_to, frames_dataset, load_stage1_model, stage_checkpoint
from .pseudo.labels import PseudoLabelStore, frame_key
from .pseudo.run import PSEUDO_DIR
from .stage1 import Stage1Model, stage1_optimizer, training_sets


class LabelSource(Protocol):
    """A :class:`~mcdepth_train.stages.pseudo.labels.PseudoLabelStore` or anything with its ``read``."""

    def read(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(pseudo depth HxW float32, 0 = no label; moving-object mask HxW bool) of ``frame_key(sequence, frame)``."""


class Stage3Model(Stage1Model):
    """Stage-1 model whose loss adds the scale-invariant pseudo-label term on moving objects.

    Args (besides :class:`Stage1Model`'s): pl_weight: lambda of ``L_pl``; pl_upper_percentile: the
    second median pass keeps scaled labels up to this percentile of D (None: one pass); pl_error:
    ``"depth"`` or ``"relative"`` (``pseudo_label_loss``); pl_static_weight: the same term on the
    static region (where the label is stage 1's depth) weighs this much beside it, 0 = the paper's.
    Their defaults live in config.py only (``stage3.pl_weight``, ``stage3.pl_upper_percentile``,
    ``stage3.pl_error``, ``stage3.pl_static_weight``).
    """

    def __init__(self, *args, pl_weight: float, pl_upper_percentile: float | None, pl_error: str,
                 pl_static_weight: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.pl_weight = pl_weight
        self.pl_upper_percentile = pl_upper_percentile
        self.pl_error = pl_error
        self.pl_static_weight = pl_static_weight

    @classmethod
    def from_config(cls, cfg) -> "Stage3Model":
        return super().from_config(cfg, pl_weight=cfg.stage3.pl_weight, pl_upper_percentile=cfg.stage3.pl_upper_percentile,
                                   pl_error=cfg.stage3.pl_error, pl_static_weight=cfg.stage3.pl_static_weight)

    def _losses(self, batch, phase, disps, poses, flows, sparsity) -> dict:
        out = super()._losses(batch, phase, disps, poses, flows, sparsity)
        if keys.PSEUDO_LABEL not in batch:
            return out
        label = batch[keys.PSEUDO_LABEL].float()
        depth = disparity_to_full_depth(disps[0], tuple(label.shape[-2:]), self.depth.min_depth, self.depth.max_depth)
        error, weight = pseudo_label_loss(depth, label, batch[keys.PSEUDO_DYNAMIC], upper_percentile=self.pl_upper_percentile,
                                          relative=self.pl_error == "relative")
        pl = masked_mean(error, weight)
        out["loss"] = out["loss"] + self.pl_weight * pl
        out["scalars"]["pseudo_label"] = pl.detach()
        out["scalars"]["pseudo_label_pixels"] = weight.mean().detach()
        if self.pl_static_weight > 0:
            # Hold the static region at stage 1's depth: a net that cannot tell a parked car from a
            # labelled moving one by its look would otherwise move both (docs/stage3.md).
            error, weight = pseudo_label_loss(depth, label, 1.0 - batch[keys.PSEUDO_DYNAMIC], upper_percentile=self.pl_upper_percentile,
                                              relative=self.pl_error == "relative")
            anchor = masked_mean(error, weight)
            out["loss"] = out["loss"] + self.pl_weight * self.pl_static_weight * anchor
            out["scalars"]["pseudo_label_static"] = anchor.detach()
        return out


class PseudoLabelDataset(torch.utils.data.Dataset):
    """Adds ``pseudo_label`` and ``pseudo_dynamic`` to each sample of a (possibly augmented) dataset.

    Labels are looked up by the sample's sequence and frame (``pseudo.frame_key``) and flipped
    left-right with the sample, so a flipped image never meets an unflipped label.
    """

    def __init__(self, base, labels: LabelSource):
        self.base = base
        self.labels = labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        sample = self.base[i]
        depth, dynamic = self.labels.read(frame_key(sample[keys.SEQUENCE], int(sample[keys.FRAME])))
        label = torch.from_numpy(np.asarray(depth, dtype=np.float32))[None, None]
        dyn = torch.from_numpy(np.asarray(dynamic, dtype=np.float32))[None, None]
        size = tuple(sample[keys.color(0, 0)].shape[-2:])
        if tuple(label.shape[-2:]) != size:
            # Nearest: a label must not blend an object's depth with the background's.
            label = F.interpolate(label, size=size, mode="nearest")
            dyn = F.interpolate(dyn, size=size, mode="nearest")
        if bool(sample.get(keys.FLIPPED, False)):
            label, dyn = label.flip(-1), dyn.flip(-1)
        sample[keys.PSEUDO_LABEL] = label[0]
        sample[keys.PSEUDO_DYNAMIC] = dyn[0]
        return sample


def stage3_seeded(cfg: Config) -> Config:
    """``cfg`` with ``run.seed`` = ``stage3.seed`` when that is set (>= 0): the trainer draws its data
    order and augmentation from ``run.seed``, so this is how stage 3 alone gets another seed."""
    if cfg.stage3.seed < 0:
        return cfg
    out = copy.deepcopy(cfg)
    out.run.seed = cfg.stage3.seed
    return out


def round_stage(k: int) -> str:
    return f"stage3/round{k}"


def train_stage3_round(cfg: Config, run_dir: Path, k: int, labels: LabelSource, init_checkpoint: Path,
                       train_set=None, val_set=None, extra_hooks=None) -> dict:
    """Train self-training round ``k`` (0 = stage 3 proper) from ``init_checkpoint``'s nets."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.loop import Trainer, TrainerSpec, seed_everything

    train_set, val_set = training_sets(cfg, train_set, val_set)
    cfg = stage3_seeded(cfg)
    seed_everything(cfg.run.seed + 17 * (k + 1), cfg.run.deterministic)
    model = Stage3Model.from_config(cfg)
    stage = round_stage(k)
    if not (Path(run_dir) / stage / "checkpoints" / "last.pt").is_file():
        payload = load_checkpoint(init_checkpoint)
        children = dict(model.named_children())
        for name in ("depth", "pose", "motion"):
            children[name].load_state_dict(payload["models"][name])
    spec = TrainerSpec(stage=stage, model=model, train_set=PseudoLabelDataset(train_set, labels),
                       val_set=val_set, schedule=cfg.stage3,
                       make_optimizer=lambda m: stage1_optimizer(m, cfg.stage3.lr, cfg.stage3.motion_lr_scale))
    return Trainer(cfg, spec, hooks=extra_hooks).train()


def self_training_labels(cfg: Config, run_dir: Path, k: int, previous_checkpoint: Path):
    """Round k's labels: round k-1's depth on every training frame, with stage 2's moving-object masks."""

    first = PseudoLabelStore.open(Path(run_dir) / PSEUDO_DIR)
    store = PseudoLabelStore(Path(run_dir) / f"{PSEUDO_DIR}_round{k}", cfg.pseudo.storage,
                             expected=list(first.expected), source={"depth": str(previous_checkpoint)})
    todo = set(store.missing(verify=False))
    if todo:
        model, _ = load_stage1_model(previous_checkpoint, cfg.run.device)
        frames = frames_dataset(cfg)
        for index in tqdm(range(len(frames)), desc=f"round {k} labels", disable=not cfg.run.progress):
            sample = frames[index]
            key = frame_key(sample[keys.SEQUENCE], int(sample[keys.FRAME]))
            if key not in todo:
                continue
            with torch.no_grad():
                depth = model.depth.depth(sample[keys.color(0, 0)][None].to(cfg.run.device))[0, 0].cpu().numpy()
            store.write(key, depth.astype(np.float32), first.read(key)[1])
        store.save_manifest()
    return store


def validation_photometric(cfg: Config, checkpoint: Path, val_set, batch_size: int) -> float:
    """Mean photometric loss of a checkpoint's nets over the whole validation split (no ground truth).

    The same loss the stages pick their best checkpoint with, but over every validation sample and
    for any checkpoint, so stage 1 and each round are compared on exactly the same frames (a
    stage's own validation may see only its first ``val_batches`` batches).
    """
    model, _ = load_stage1_model(checkpoint, cfg.run.device)
    loader = torch.utils.data.DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=0)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = batch_to(batch, cfg.run.device)
            n = int(batch[keys.color(0, 0)].shape[0])
            total += float(model(batch)["scalars"]["photometric"]) * n
            count += n
    if not count:
        raise ValueError("val_set: empty; a validation split is needed to compare rounds")
    return total / count


def run(cfg: Config, run_dir: Path) -> dict:
    """Stage 3 (round 0) and ``stage3.self_training_rounds`` more rounds.

    With ``stage3.keep_better`` (opt-in) a round is adopted only if its validation photometric
    loss is lower than that of the net it started from (:func:`validation_photometric`, the same
    frames for both); otherwise the run keeps that net, the next round starts from it, and it is
    the ``final`` net that export uses. Without it each round starts from the last.
    """

    run_dir = Path(run_dir)
    train_set, val_set = training_sets(cfg)
    keep_better = cfg.stage3.keep_better
    if keep_better and (val_set is None or len(val_set) == 0):
        # asked for, but nothing to judge a round on: refuse before any training rather than keep the last round silently
        raise ValueError("stage3.keep_better: the data source has no validation split to compare rounds on; "
                         "give it one or set stage3.keep_better=false")
    labels = PseudoLabelStore.open(run_dir / PSEUDO_DIR)

    def score(checkpoint: Path) -> float | None:
        return validation_photometric(cfg, checkpoint, val_set, cfg.stage3.batch_size) if keep_better else None

    init = stage_checkpoint(run_dir, "stage1")
    init_score = score(init)
    rounds = []
    for k in range(1 + cfg.stage3.self_training_rounds):
        if k > 0:
            labels = self_training_labels(cfg, run_dir, k, init)
        summary = train_stage3_round(cfg, run_dir, k, labels, init, train_set=train_set, val_set=val_set)
        trained = stage_checkpoint(run_dir, round_stage(k))
        entry = {"round": k, "init": str(init), **{key: summary.get(key) for key in ("steps", "best", "seconds")}}
        if keep_better:
            trained_score = score(trained)
            entry |= {"val_photometric": trained_score, "init_val_photometric": init_score, "adopted": trained_score < init_score}
            if entry["adopted"]:
                init, init_score = trained, trained_score
        else:
            init = trained
        rounds.append(entry)
    out = {"rounds": rounds, "final": str(init),
           "selection": ("each round adopted only if its validation photometric loss (whole val split) is below its start's; "
                         "ground truth never used") if keep_better else "the last round"}
    (run_dir / "stage3" / "summary.json").write_text(json.dumps(out, indent=2, default=str))
    return out
