"""Per-frame stage outputs on disk, and loading a stage's trained model back from its checkpoint.

Stage 2 works frame by frame over the training set *without augmentation*. Each frame's results
(stage-1 depth, dynamic evidence, ground, instances, correspondences, object depths, scales) live in
one compressed ``.npz`` per frame under ``RUN/<stage>/frames/``, keyed by the dataset index, with
the sequence name and frame number inside so a mismatch with the dataset is caught.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from ..config import Config, config_from_dict
from ..engine.checkpoint import CheckpointError, load_checkpoint
from ..io import atomic_write

MASKS_DIR = "masks"  # the masks stage's folder under the run folder (records, Mask R-CNN rounds, summary)


def frame_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"{index:06d}.npz"


def save_frame(folder: Path, index: int, **arrays) -> Path:
    """Write one frame's arrays atomically (temp file, then rename)."""
    return atomic_write(frame_path(folder, index), lambda f: np.savez_compressed(f, **arrays))


def write_json(path: Path, value: dict) -> None:
    """A stage's ``summary.json`` (or any JSON record), written atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2, default=str).encode()))


def load_frame(folder: Path, index: int) -> dict:
    path = frame_path(folder, index)
    if not path.is_file():
        raise FileNotFoundError(f"frame record missing: {path} (rerun the stage that writes it)")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def unaugmented(cfg: Config) -> Config:
    """A copy of the config whose datasets apply no flip and no colour jitter."""
    out = copy.deepcopy(cfg)
    out.data.flip_prob = 0.0
    out.data.color_jitter_prob = 0.0
    return out


def frames_dataset(cfg: Config, split: str = "train"):
    """The training frames, in dataset order, without augmentation."""
    from ..data import build_dataset

    return build_dataset(unaugmented(cfg), split)


def stage_checkpoint(run_dir: Path, stage: str) -> Path:
    """``best.pt`` of a stage (chosen by validation photometric loss), else ``last.pt``."""
    folder = Path(run_dir) / stage / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"no checkpoint of stage '{stage}' in {folder}: run `mcdepth-train {stage.split('/')[0]}` first")


def load_stage1_model(path: Path, device: str = "cpu"):
    """Rebuild a :class:`Stage1Model` (depth, pose, motion) from a stage-1 or stage-3 checkpoint."""
    from .stage1 import Stage1Model

    payload = load_checkpoint(path, map_location="cpu")
    cfg = config_from_dict(payload["config"])
    cfg.model.pretrained_path = cfg.model.motion_weights = ""  # the weights come from the checkpoint
    model = Stage1Model.from_config(cfg)
    children = dict(model.named_children())
    for name in ("depth", "pose", "motion"):
        if name not in payload["models"]:
            raise CheckpointError(f"{path} has no '{name}' network (it has: {', '.join(payload['models'])})")
        children[name].load_state_dict(payload["models"][name])
    return model.to(device).eval(), cfg


def batch_to(batch: dict, device: str | torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def with_run_dir(cfg: Config, run_dir: str | Path | None) -> Config:
    """The config with ``run.out_dir`` set to ``run_dir`` (when given)."""
    if run_dir is None:
        return cfg
    out = copy.deepcopy(cfg)
    out.run.out_dir = str(run_dir)
    return out
