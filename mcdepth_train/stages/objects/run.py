"""The objects stage (paper 4.2, Eqs. 11-14): the object network on every usable object, per-object depth.

Inputs: the masks stage's records and stage 1's depth and pose nets (the object net's start).
Outputs: ``RUN/objects/checkpoints/``, ``RUN/objects/frames/*.npz`` (``object_depth`` o_k of each
object, arbitrary scale) and ``RUN/objects/summary.json``. The model is :mod:`.net`, its geometry
(mask-multiplied frames, rigid object motion, parallax) :mod:`.geometry`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...config import Config
from ...data import keys
from ...engine.loop import Trainer, TrainerSpec, seed_everything
from ..frames import frame_path, frames_dataset, load_frame, save_frame, stage_checkpoint, write_json
from ..masks.run import MASKS_DIR
from .geometry import object_forward, translation_parallax
from .net import OBJECT_MASK, ObjectModel, ObjectSamples, load_stage_nets

OBJECTS_DIR = "objects"


def stage1_shape(stage1_depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An object's depth shape from stage 1: its depth over its median inside ``mask``, 0 outside (float16)."""
    shape = np.asarray(stage1_depth, np.float32)
    return np.where(mask, shape / max(float(np.median(shape[mask])), 1e-6), 0).astype(np.float16)


def run_objects(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Train the object network on every usable object, then write each object's depth o_k per frame.

    An object whose motion relative to the camera shows less than ``objects.min_parallax_px`` of
    parallax has unobservable depth (:func:`~mcdepth_train.stages.objects.translation_parallax`);
    it keeps stage 1's depth divided by its median over the object (the shape, without stage 1's
    scale). With ``objects.shape_source: stage1`` no object net is trained and every object keeps
    stage 1's shape. ``RUN/objects/frames/*.npz`` hold ``object_depth``
    [N,H,W], ``parallax_px`` [N] (NaN where not measured) and ``from_stage1`` [N].
    """

    if not cfg.objects.min_parallax_px >= 0:
        raise ValueError(f"objects.min_parallax_px: expected pixels >= 0 (0 = always the object net's depth), "
                         f"got {cfg.objects.min_parallax_px}")
    run_dir = Path(run_dir)
    frames = dataset if dataset is not None else frames_dataset(cfg)
    masks_dir = run_dir / MASKS_DIR / "frames"
    out = run_dir / OBJECTS_DIR / "frames"
    samples = ObjectSamples(frames, masks_dir)
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    use_net = cfg.objects.shape_source == "object_net"
    model = ObjectModel.from_config(cfg) if use_net else None
    ckpt_dir = run_dir / OBJECTS_DIR / "checkpoints"
    if use_net:
        if len(samples):
            if not (ckpt_dir / "last.pt").is_file():
                load_stage_nets(model, stage_checkpoint(run_dir, "stage1"))
            Trainer(cfg, TrainerSpec(stage=OBJECTS_DIR, model=model, train_set=samples, schedule=cfg.objects)).train()
            load_stage_nets(model, ckpt_dir / "last.pt")
        model.to(cfg.run.device).eval()
    sample_of = {item: i for i, item in enumerate(samples.items)}
    min_parallax = cfg.objects.min_parallax_px
    written = from_stage1_total = 0
    for index in tqdm(range(len(frames)), desc="object depth", disable=not cfg.run.progress):
        if frame_path(out, index).is_file():  # written by an earlier, interrupted run: count it, redo nothing
            from_stage1_total += int(load_frame(out, index).get("from_stage1", np.zeros(0)).sum())
            continue
        record = load_frame(masks_dir, index)
        masks = record["instances"]
        object_depth = np.zeros(masks.shape, dtype=np.float16)
        parallax = np.full(len(masks), np.nan, dtype=np.float32)
        from_stage1 = np.zeros(len(masks), dtype=bool)
        for k in np.flatnonzero(record["usable"]):
            if not use_net:
                from_stage1[k] = True
                object_depth[k] = stage1_shape(record["stage1_depth"], masks[k])
                continue
            batch = {key: (v.to(cfg.run.device) if isinstance(v, torch.Tensor) else v)
                     for key, v in torch.utils.data.default_collate([samples[sample_of[(index, int(k))]]]).items()}
            ids = [0] + [f for f in model.source_ids if (OBJECT_MASK, f) in batch]
            with torch.no_grad():
                depths, poses = object_forward(model.depth, model.pose, {f: batch[keys.color(f, 0)] for f in ids},
                                               {f: batch[(OBJECT_MASK, f)] for f in ids})
                mask = batch[(OBJECT_MASK, 0)]
                depth_k = depths[0] * (mask > 0.5)
                if poses:
                    parallax[k] = max(float(translation_parallax(depth_k, mask, batch[keys.intrinsics(0)],
                                                                 batch[keys.intrinsics(0, inverse=True)], pose)[0])
                                      for pose in poses.values())
            if min_parallax > 0 and np.isfinite(parallax[k]) and parallax[k] < min_parallax:
                # Depth unobservable from the object's own motion: keep stage 1's *shape*. Divided by its
                # median, like any ô it has no scale of its own, so DSA cannot copy stage 1's scale through
                # its ô input and must read the scale from the object's surroundings.
                from_stage1[k] = True
                object_depth[k] = stage1_shape(record["stage1_depth"], masks[k])
            else:
                object_depth[k] = depth_k[0, 0].cpu().numpy().astype(np.float16)
        save_frame(out, index, object_depth=object_depth, parallax_px=parallax, from_stage1=from_stage1)
        written += 1
        from_stage1_total += int(from_stage1.sum())
    summary = {"objects": len(samples), "shape_source": cfg.objects.shape_source, "frames_written": written, "frames": len(frames),
               "depth_from_stage1": from_stage1_total, "min_parallax_px": min_parallax}
    write_json(run_dir / OBJECTS_DIR / "summary.json", summary)
    return summary
