"""Stage 2 over a run: masks -> objects -> DSA -> pseudo labels (paper 4.2-4.3, Eq. 5).

Each step reads the previous step's per-frame records (``stages/frames.py``) and writes its own:

- ``masks``: stage-1 inference on every training frame (no augmentation): depth, poses, residual
  motion; dynamic evidence; ground; instances (``cfg.masks.source``); static/dynamic rules;
  each object's masks in the frames -1/+1. -> ``RUN/masks/frames/*.npz``
- ``objects``: the object network (init from stage 1) on mask-multiplied frames -> per-object
  depth o_k of every usable object, static and moving. -> ``RUN/objects/``
- ``dsa``: the scale-alignment net trained on static objects only, then applied to moving ones.
  -> ``RUN/dsa/``
- ``pseudo``: D_bar = stage-1 depth outside moving objects, s_k * o_k inside. -> ``RUN/pseudo/``

Every step skips frames whose record already exists, so a killed step resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import Config
from ..data import keys
from . import masks as mask_rules
from .frames import batch_to, frame_path, frames_dataset, load_stage1_model, save_frame, stage_checkpoint

log = logging.getLogger(__name__)

MASKS_DIR = "masks"


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    tmp.replace(path)


def frame_instances(cfg: Config, image: np.ndarray, evidence: np.ndarray, index: int) -> np.ndarray:
    """Raw instance masks [N,H,W] of one frame from the configured source (before the rules).

    ``self_supervised``: connected components of the dynamic evidence (moving objects), plus the
    detections of a Mask R-CNN trained on those components when one has been trained for the run.
    ``folder``: PNGs from ``cfg.masks.instance_folder``.
    """
    source = cfg.masks.source
    if source == "self_supervised":
        return mask_rules.components_to_instances(evidence)
    if source == "folder":
        from .instances import load_instance_folder

        return load_instance_folder(cfg.masks.instance_folder, index, evidence.shape)
    if source == "semantic_prior":
        from .instances import semantic_prior_instances

        return semantic_prior_instances(cfg, image)
    raise ValueError(f"masks.source: expected 'self_supervised', 'semantic_prior' or 'folder', got {source!r}")


def run_masks(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Stage-1 inference + mask rules for every training frame; one record per frame.

    Returns a summary: frames, instances (moving/static), mean dynamic-evidence fraction.
    """
    run_dir = Path(run_dir)
    out = run_dir / MASKS_DIR / "frames"
    model, _ = load_stage1_model(stage_checkpoint(run_dir, "stage1"), cfg.run.device)
    dataset = dataset if dataset is not None else frames_dataset(cfg)
    if len(dataset) == 0:
        raise ValueError("masks: the training set is empty")
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False, num_workers=cfg.run.num_workers)
    m = cfg.masks
    counts = {"frames": 0, "moving": 0, "static": 0, "skipped_existing": 0}
    evidence_fraction = []
    index = 0
    for batch in tqdm(loader, desc="masks", disable=not cfg.run.progress):
        n = batch[keys.color(0, 0)].shape[0]
        todo = [i for i in range(n) if not frame_path(out, index + i).is_file()]
        if not todo:
            counts["skipped_existing"] += n
            index += n
            continue
        with torch.no_grad():
            b = batch_to(batch, cfg.run.device)
            result = model.infer(b)
            flows = [result["flow"][f] for f in sorted(result["flow"])]
            evidence = mask_rules.dynamic_evidence(flows, m.motion_threshold_px)
            ground = mask_rules.ground_from_depth(result["depth"], b[keys.intrinsics(0, inverse=True)], m.ground_normal_deg)
        for i in range(n):
            if i not in todo:
                counts["skipped_existing"] += 1
                continue
            image = b[keys.color(0, 0)][i].permute(1, 2, 0).cpu().numpy()
            ev = evidence[i, 0].cpu().numpy()
            gr = ground[i, 0].cpu().numpy()
            raw = frame_instances(cfg, image, ev, index + i)
            inst = mask_rules.clean_instances_from_config(raw, ev, gr, cfg)
            record = {
                "sequence": np.array(str(batch[keys.SEQUENCE][i]) if keys.SEQUENCE in batch else ""),
                "frame": np.array(int(batch[keys.FRAME][i]) if keys.FRAME in batch else index + i),
                "stage1_depth": result["depth"][i, 0].cpu().numpy().astype(np.float16),
                "dynamic_evidence": ev,
                "ground": gr,
                "instances": inst.masks,
                "moving": inst.moving,
                "K": b[keys.intrinsics(0)][i].cpu().numpy(),
            }
            if len(inst.masks):
                masks_t = torch.from_numpy(inst.masks).unsqueeze(0).to(result["depth"])
                warped, keep = mask_rules.correspond_objects(
                    masks_t, result["depth"][i : i + 1], b[keys.intrinsics(0)][i : i + 1],
                    {f: p[i : i + 1] for f, p in result["poses"].items()},
                    {f: fl[i : i + 1] for f, fl in result["flow"].items()},
                    threshold=m.correspondence_threshold, min_fraction=m.min_instance_fraction,
                )
                for f, w in warped.items():
                    record[f"instances_{'prev' if f < 0 else 'next'}"] = w[0].cpu().numpy()
                record["usable"] = keep[0].cpu().numpy()
            else:
                empty = np.zeros((0, *ev.shape), dtype=bool)
                record.update(instances_prev=empty, instances_next=empty, usable=np.zeros(0, dtype=bool))
            save_frame(out, index + i, **record)
            counts["frames"] += 1
            counts["moving"] += int(inst.moving.sum())
            counts["static"] += int((~inst.moving).sum())
            evidence_fraction.append(float(ev.mean()))
        index += n
    summary = {**counts, "total_frames": index,
               "dynamic_evidence_fraction": float(np.mean(evidence_fraction)) if evidence_fraction else None}
    _write_json(run_dir / MASKS_DIR / "summary.json", summary)
    return summary
