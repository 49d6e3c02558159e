"""The masks stage (paper 4.3): moving/static object instances, ground and correspondences per frame.

Inputs: stage 1's checkpoint and the training frames. Outputs: ``RUN/masks/frames/*.npz`` (one record
per frame: stage-1 depth, dynamic evidence, ground, instances with their static/dynamic label, each
object's masks in the frames -1/+1) and ``RUN/masks/summary.json``. The rules themselves are the pure
functions of :mod:`.rules`; instances come from :mod:`.instances`, the ground net from :mod:`.ground`.
Frames whose record exists are skipped, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...config import MASK_SOURCES, MOTION_SOURCES, Config
from ...data import keys
from ...engine.checkpoint import atomic_torch_save
from ...io import atomic_write
from ...networks.dis_flow import DISFlow
from ...networks.ground import GroundNet
from ..frames import (MASKS_DIR, batch_to, frame_path, frames_dataset, load_frame, load_stage1_model, save_frame,
                      stage_checkpoint, with_run_dir, write_json)
from . import rules as mask_rules
from .ground import predict_ground, train_ground_net


def with_masks_motion(model, masks_cfg):
    """``model`` (a Stage1Model) with the residual-motion source the masks stage reads (``masks.motion_source``):
    its own motion net, or :class:`DISFlow` in its place (the same input, no training)."""
    if masks_cfg.motion_source == "dis":
        model.motion = DISFlow.from_config(masks_cfg)
    elif masks_cfg.motion_source != "net":
        raise ValueError(f"masks.motion_source: expected one of {MOTION_SOURCES}, got {masks_cfg.motion_source!r}")
    return model


def stage1_pass(cfg: Config, run_dir: Path, dataset) -> Path:
    """Pass 1 of the masks stage: stage-1 depth, poses, residual motion, dynamic evidence and normal-based
    ground per frame, written under ``RUN/masks/stage1/`` (resumable; benches seed or read these records)."""
    out = run_dir / MASKS_DIR / "stage1"
    if all(frame_path(out, i).is_file() for i in range(len(dataset))):
        return out
    model, _ = load_stage1_model(stage_checkpoint(run_dir, "stage1"), cfg.run.device)
    model = with_masks_motion(model, cfg.masks)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False, num_workers=cfg.run.num_workers)
    m = cfg.masks
    index = 0
    for batch in tqdm(loader, desc="masks: stage-1 inference", disable=not cfg.run.progress):
        n = batch[keys.color(0, 0)].shape[0]
        if all(frame_path(out, index + i).is_file() for i in range(n)):
            index += n
            continue
        with torch.no_grad():
            b = batch_to(batch, cfg.run.device)
            result = model.infer(b)
            ids = sorted(result["flow"])
            flows = [result["flow"][f] for f in ids]
            relative = mask_rules.relative_motion(flows, result["depth"], b[keys.intrinsics(0)], [result["poses"][f] for f in ids],
                                                  far_explains=m.far_explains)
            evidence = mask_rules.dynamic_evidence(flows, m.motion_threshold_px, relative, m.min_relative_motion)
            ground = mask_rules.ground_from_depth(result["depth"], b[keys.intrinsics(0, inverse=True)], m.ground_normal_deg)
        for i in range(n):
            save_frame(
                out, index + i,
                sequence=np.array(str(batch[keys.SEQUENCE][i]) if keys.SEQUENCE in batch else ""),
                frame=np.array(int(batch[keys.FRAME][i]) if keys.FRAME in batch else index + i),
                stage1_depth=result["depth"][i, 0].cpu().numpy().astype(np.float16),
                source_ids=np.array(ids), poses=np.stack([result["poses"][f][i].cpu().numpy() for f in ids]),
                flows=np.stack([result["flow"][f][i].cpu().numpy() for f in ids]).astype(np.float16),
                dynamic_evidence=evidence[i, 0].cpu().numpy(), normal_ground=ground[i, 0].cpu().numpy(),
                K=b[keys.intrinsics(0)][i].cpu().numpy(),
            )
        index += n
    return out


def _images(dataset) -> list[torch.Tensor]:
    return [dataset[i][keys.color(0, 0)] for i in range(len(dataset))]


def _ground_pass(cfg: Config, run_dir: Path, images, records: list[dict]) -> list[np.ndarray]:
    """Ground per frame: the normal-based pseudo mask, or (masks.ground_net) a small net trained on it.

    ``images()``: the training frames' RGB tensors, read once for both passes (:func:`run_masks`)."""
    normal = [r["normal_ground"] for r in records]
    if not cfg.masks.ground_net:
        return normal

    path = run_dir / MASKS_DIR / "ground_net.pt"
    torch.manual_seed(cfg.run.seed)
    net = GroundNet()
    images = torch.stack(images())
    if path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        targets = torch.from_numpy(np.stack(normal)).float()[:, None]
        train_ground_net(net, images, targets, steps=cfg.masks.ground_net_steps, lr=cfg.masks.ground_net_lr,
                         smooth_weight=cfg.masks.ground_smooth_weight, seed=cfg.run.seed, device=cfg.run.device,
                         progress=cfg.run.progress)
        atomic_torch_save(net.state_dict(), path)
    net.to(cfg.run.device)
    return [g[0].numpy() for g in predict_ground(net, images)]


def _instance_pass(cfg: Config, run_dir: Path, images, records: list[dict], grounds: list[np.ndarray]) -> list[np.ndarray]:
    """Raw instance masks [N,H,W] per frame from ``cfg.masks.source`` (before the rules); ``images()`` as for the ground."""
    from . import instances as sources  # torchvision's Mask R-CNN: imported only when used

    m = cfg.masks
    hw = records[0]["dynamic_evidence"].shape
    if m.source == "folder":
        if not m.instance_folder:
            raise ValueError("masks.instance_folder is empty: masks.source=folder needs the folder of instance PNGs")
        return [sources.read_folder_instances(m.instance_folder, str(r["sequence"]), int(r["frame"]), hw) for r in records]
    if m.source == "semantic_prior":
        if not m.maskrcnn_weights:
            raise ValueError("masks.maskrcnn_weights is empty: masks.source=semantic_prior needs a local COCO Mask R-CNN file")
        model = sources.load_maskrcnn(m.maskrcnn_weights, min_size=m.maskrcnn_min_size, max_size=m.maskrcnn_max_size).to(cfg.run.device)
        return sources.predict_instances(model, images(), m.maskrcnn_score, m.semantic_classes)
    if m.source != "self_supervised":
        raise ValueError(f"masks.source: expected one of {MASK_SOURCES}, got {m.source!r}")
    cache = run_dir / MASKS_DIR / "instances.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return [data[f"f{i}"] for i in range(len(records))]
    dynamic = [r["dynamic_evidence"] for r in records]
    if m.appearance_net_steps > 0:  # resumable: the net is kept as RUN/masks/appearance_net.pt
        from .appearance import appearance_instances_from_config

        components = [mask_rules.components_to_instances(d) for d in dynamic]
        kept = [mask_rules.clean_instances_from_config(c, r["dynamic_evidence"], g, cfg, r["stage1_depth"])
                for c, r, g in zip(components, records, grounds)]
        moving = [k.masks[k.moving] for k in kept]
        found = appearance_instances_from_config(cfg, run_dir, torch.stack(images()), moving, grounds,
                                                 [r["stage1_depth"].astype(np.float64) for r in records], components)
    elif m.maskrcnn_steps <= 0:
        found = [mask_rules.components_to_instances(d) for d in dynamic]
    else:  # resumable: each self-training round checkpoints under RUN/masks/maskrcnn/
        _, found = sources.self_supervised_from_config(with_run_dir(cfg, run_dir), images(), dynamic)
    atomic_write(cache, lambda f: np.savez_compressed(f, **{f"f{i}": m for i, m in enumerate(found)}))
    return found


def run_masks(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Masks for every training frame, in three resumable passes; one final record per frame.

    1. stage-1 inference (depth, poses, residual motion, dynamic evidence, normal-based ground);
    2. ground (net or normals) and raw instances from ``masks.source``;
    3. the rules (ground removed, small dropped, static/dynamic) and each object's masks in frames +-1.

    Returns a summary: frames, moving/static instances, mean dynamic-evidence fraction, and (when the
    dataset has ground truth) the dynamic-mask IoU and static-object recall.
    """

    run_dir = Path(run_dir)
    dataset = dataset if dataset is not None else frames_dataset(cfg)
    if len(dataset) == 0:
        raise ValueError("masks: the training set is empty")
    out = run_dir / MASKS_DIR / "frames"
    stage1_dir = stage1_pass(cfg, run_dir, dataset)
    todo = [i for i in range(len(dataset)) if not frame_path(out, i).is_file()]
    if todo:
        records = [load_frame(stage1_dir, i) for i in range(len(dataset))]
        images = functools.cache(lambda: _images(dataset))  # decoded once, only if a pass needs them
        grounds = _ground_pass(cfg, run_dir, images, records)
        raw = _instance_pass(cfg, run_dir, images, records, grounds)
        m = cfg.masks
        for i in tqdm(todo, desc="masks: rules", disable=not cfg.run.progress):
            r = records[i]
            inst = mask_rules.clean_instances_from_config(raw[i], r["dynamic_evidence"], grounds[i], cfg, r["stage1_depth"])
            record = {k: r[k] for k in ("sequence", "frame", "stage1_depth", "dynamic_evidence", "K")}
            record.update(ground=grounds[i], instances=inst.masks, moving=inst.moving)
            if len(inst.masks):
                depth = torch.from_numpy(r["stage1_depth"].astype(np.float32))[None, None]
                ids = [int(f) for f in r["source_ids"]]
                warped, keep = mask_rules.correspond_objects(
                    torch.from_numpy(inst.masks)[None], depth, torch.from_numpy(r["K"])[None],
                    {f: torch.from_numpy(r["poses"][j])[None] for j, f in enumerate(ids)},
                    {f: torch.from_numpy(r["flows"][j].astype(np.float32))[None] for j, f in enumerate(ids)},
                    threshold=m.correspondence_threshold, min_fraction=m.min_instance_fraction,
                    supersample=m.correspondence_supersample,
                )
                for f, w in warped.items():
                    record[f"instances_{'prev' if f < 0 else 'next'}"] = w[0].numpy()
                record["usable"] = keep[0].numpy()
            else:
                empty = np.zeros((0, *r["dynamic_evidence"].shape), dtype=bool)
                record.update(instances_prev=empty, instances_next=empty, usable=np.zeros(0, dtype=bool))
            save_frame(out, i, **record)
    return _masks_summary(run_dir, dataset)


def _masks_summary(run_dir: Path, dataset) -> dict:
    """Counts, and against ground truth when the dataset has it: dynamic-mask IoU, static-object recall."""

    moving = static = usable = 0
    inter = union = 0
    recall_hits = recall_total = 0
    evidence = []
    for i in range(len(dataset)):
        r = load_frame(run_dir / MASKS_DIR / "frames", i)
        moving += int(r["moving"].sum())
        static += int((~r["moving"]).sum())
        usable += int(r["usable"].sum())
        evidence.append(float(r["dynamic_evidence"].mean()))
        sample = dataset[i]
        if keys.DYNAMIC_MASK in sample:
            true_dyn = sample[keys.DYNAMIC_MASK][0].numpy() > 0.5
            pred_dyn = r["instances"][r["moving"]].any(0) if r["moving"].any() else np.zeros_like(true_dyn)
            inter += int((true_dyn & pred_dyn).sum())
            union += int((true_dyn | pred_dyn).sum())
        if keys.INSTANCE_MAP in sample and keys.INSTANCE_DYNAMIC in sample:
            ids = sample[keys.INSTANCE_MAP][0].numpy()
            moving_ids = sample[keys.INSTANCE_DYNAMIC].numpy()
            found = r["instances"][~r["moving"]].any(0) if (~r["moving"]).any() else np.zeros(ids.shape, bool)
            for k in np.unique(ids):
                area = ids == k
                if k == 0 or moving_ids[k] or area.sum() < 0.005 * ids.size:
                    continue
                recall_total += 1
                recall_hits += int((found & area).sum() >= 0.5 * area.sum())
    summary = {"frames": len(dataset), "moving_instances": moving, "static_instances": static, "usable_objects": usable,
               "dynamic_evidence_fraction": float(np.mean(evidence))}
    if union:
        summary["dynamic_mask_iou"] = inter / union
    if recall_total:
        summary["static_object_recall"] = recall_hits / recall_total
        summary["static_objects_true"] = recall_total
    write_json(run_dir / MASKS_DIR / "summary.json", summary)
    return summary
