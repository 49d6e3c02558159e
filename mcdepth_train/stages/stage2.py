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

from ..config import MASK_SOURCES, Config
from ..data import keys
from ..io import atomic_write
from . import masks as mask_rules
from .frames import batch_to, frame_path, frames_dataset, load_stage1_model, save_frame, stage_checkpoint

log = logging.getLogger(__name__)

MASKS_DIR = "masks"


def _write_json(path: Path, value: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2, default=str).encode()))


def stage1_pass(cfg: Config, run_dir: Path, dataset) -> Path:
    """Pass 1 of the masks stage: stage-1 depth, poses, residual motion, dynamic evidence and normal-based
    ground per frame, written under ``RUN/masks/stage1/`` (resumable; benches seed or read these records)."""
    out = run_dir / MASKS_DIR / "stage1"
    if all(frame_path(out, i).is_file() for i in range(len(dataset))):
        return out
    model, _ = load_stage1_model(stage_checkpoint(run_dir, "stage1"), cfg.run.device)
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
            evidence = mask_rules.dynamic_evidence([result["flow"][f] for f in ids], m.motion_threshold_px)
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


def _ground_pass(cfg: Config, run_dir: Path, dataset, records: list[dict]) -> list[np.ndarray]:
    """Ground per frame: the normal-based pseudo mask, or (masks.ground_net) a small net trained on it."""
    normal = [r["normal_ground"] for r in records]
    if not cfg.masks.ground_net:
        return normal
    from ..engine.checkpoint import atomic_torch_save
    from ..networks.ground import GroundNet
    from .ground import predict_ground, train_ground_net

    path = run_dir / MASKS_DIR / "ground_net.pt"
    torch.manual_seed(cfg.run.seed)
    net = GroundNet()
    images = torch.stack(_images(dataset))
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


def _instance_pass(cfg: Config, run_dir: Path, dataset, records: list[dict]) -> list[np.ndarray]:
    """Raw instance masks [N,H,W] per frame from ``cfg.masks.source`` (before the rules)."""
    from . import instances as sources

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
        return sources.predict_instances(model, _images(dataset), m.maskrcnn_score, m.semantic_classes)
    if m.source != "self_supervised":
        raise ValueError(f"masks.source: expected one of {MASK_SOURCES}, got {m.source!r}")
    cache = run_dir / MASKS_DIR / "instances.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return [data[f"f{i}"] for i in range(len(records))]
    dynamic = [r["dynamic_evidence"] for r in records]
    if m.maskrcnn_steps <= 0:
        found = [mask_rules.components_to_instances(d) for d in dynamic]
    else:
        torch.manual_seed(cfg.run.seed)
        model = sources.build_maskrcnn(2, m.maskrcnn_min_size, m.maskrcnn_max_size).to(cfg.run.device)
        _, found = sources.self_train_maskrcnn(
            model, _images(dataset), dynamic, rounds=m.maskrcnn_rounds, steps_per_round=m.maskrcnn_steps,
            score_threshold=m.maskrcnn_score, batch_size=m.maskrcnn_batch_size, lr=m.maskrcnn_lr, seed=cfg.run.seed,
            progress=cfg.run.progress)
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
    from .frames import load_frame

    run_dir = Path(run_dir)
    dataset = dataset if dataset is not None else frames_dataset(cfg)
    if len(dataset) == 0:
        raise ValueError("masks: the training set is empty")
    out = run_dir / MASKS_DIR / "frames"
    stage1_dir = stage1_pass(cfg, run_dir, dataset)
    todo = [i for i in range(len(dataset)) if not frame_path(out, i).is_file()]
    if todo:
        records = [load_frame(stage1_dir, i) for i in range(len(dataset))]
        grounds = _ground_pass(cfg, run_dir, dataset, records)
        raw = _instance_pass(cfg, run_dir, dataset, records)
        m = cfg.masks
        for i in tqdm(todo, desc="masks: rules", disable=not cfg.run.progress):
            r = records[i]
            inst = mask_rules.clean_instances_from_config(raw[i], r["dynamic_evidence"], grounds[i], cfg)
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
    from .frames import load_frame

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
    _write_json(run_dir / MASKS_DIR / "summary.json", summary)
    return summary


OBJECTS_DIR = "objects"


def run_objects(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Train the object network on every usable object, then write each object's depth o_k per frame.

    An object whose motion relative to the camera shows less than ``objects.min_parallax_px`` of
    parallax has unobservable depth (:func:`~mcdepth_train.stages.objects.translation_parallax`);
    it keeps stage 1's depth divided by its median over the object (the shape, without stage 1's
    scale). ``RUN/objects/frames/*.npz`` hold ``object_depth``
    [N,H,W], ``parallax_px`` [N] (NaN where not measured) and ``from_stage1`` [N].
    """
    from ..engine.loop import Trainer, TrainerSpec, seed_everything
    from .frames import load_frame
    from .object_net import OBJECT_MASK, ObjectModel, ObjectSamples, load_stage_nets
    from .objects import object_forward, translation_parallax

    if not cfg.objects.min_parallax_px >= 0:
        raise ValueError(f"objects.min_parallax_px: expected pixels >= 0 (0 = always the object net's depth), "
                         f"got {cfg.objects.min_parallax_px}")
    run_dir = Path(run_dir)
    frames = dataset if dataset is not None else frames_dataset(cfg)
    masks_dir = run_dir / MASKS_DIR / "frames"
    out = run_dir / OBJECTS_DIR / "frames"
    samples = ObjectSamples(frames, masks_dir)
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    model = ObjectModel.from_config(cfg)
    ckpt_dir = run_dir / OBJECTS_DIR / "checkpoints"
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
                shape = record["stage1_depth"].astype(np.float32)
                object_depth[k] = np.where(masks[k], shape / max(float(np.median(shape[masks[k]])), 1e-6), 0).astype(np.float16)
            else:
                object_depth[k] = depth_k[0, 0].cpu().numpy().astype(np.float16)
        save_frame(out, index, object_depth=object_depth, parallax_px=parallax, from_stage1=from_stage1)
        written += 1
        from_stage1_total += int(from_stage1.sum())
    summary = {"objects": len(samples), "frames_written": written, "frames": len(frames),
               "depth_from_stage1_low_parallax": from_stage1_total, "min_parallax_px": min_parallax}
    _write_json(run_dir / OBJECTS_DIR / "summary.json", summary)
    return summary


DSA_DIR = "dsa"
PSEUDO_DIR = "pseudo"


def _object_records(frames, run_dir: Path, index: int) -> tuple[int, list[tuple[int, "ObjectRecord"]]]:
    """(number of instances, [(instance id, ObjectRecord)] for every usable object, static and moving) of a frame."""
    from ..networks.dsa import ObjectRecord
    from .frames import load_frame

    rec = load_frame(Path(run_dir) / MASKS_DIR / "frames", index)
    object_depth = load_frame(Path(run_dir) / OBJECTS_DIR / "frames", index)["object_depth"]
    usable = np.flatnonzero(rec["usable"])
    n = len(rec["instances"])
    if not len(usable):
        return n, []
    image = frames[index][keys.color(0, 0)]
    depth = torch.from_numpy(rec["stage1_depth"].astype(np.float32))[None]
    ground = torch.from_numpy(rec["ground"])[None]
    out = []
    for k in usable:
        mask = torch.from_numpy(rec["instances"][k])[None]
        obj = torch.from_numpy(object_depth[k].astype(np.float32))[None]
        if not (obj[mask] > 0).all():
            continue  # the object net's depth underflowed float16 somewhere: unusable
        out.append((int(k), ObjectRecord(image=image, depth=depth, ground=ground, object_depth=obj, mask=mask,
                                          moving=bool(rec["moving"][k]))))
    return n, out


def run_dsa(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Train DSA on static objects (a held-out part measures it), then predict scales of moving objects.

    Writes ``RUN/dsa/dsa.pt`` (the net), ``RUN/dsa/frames/*.npz`` (``scales`` [N], NaN for objects
    that are static or unusable) and ``summary.json`` with the held-out median relative error.
    """
    from ..engine.checkpoint import atomic_torch_save
    from ..networks.dsa import DSANet
    from .dsa import evaluate_dsa, predict_scales, split_held_out, train_dsa

    run_dir = Path(run_dir)
    frames = dataset if dataset is not None else frames_dataset(cfg)
    d = cfg.dsa
    per_frame = {i: _object_records(frames, run_dir, i) for i in range(len(frames))}
    static = [r for _, recs in per_frame.values() for _, r in recs if not r.moving]
    moving = sum(r.moving for _, recs in per_frame.values() for _, r in recs)
    if len(static) < d.min_static_objects:
        # Too few static objects to learn from: align each moving object to the ground under it.
        log.warning("dsa: %d usable static objects (< dsa.min_static_objects=%d); using the ground-contact "
                    "fallback for %d moving objects", len(static), d.min_static_objects, moving)
        return ground_contact_fallback(run_dir, per_frame, len(static), int(moving))
    torch.manual_seed(cfg.run.seed)
    net = DSANet.from_config(cfg)
    net_path = run_dir / DSA_DIR / "dsa.pt"
    train, held_out = split_held_out(static, d.held_out_fraction, cfg.run.seed)
    if net_path.is_file():
        net.load_state_dict(torch.load(net_path, map_location="cpu", weights_only=True))
        losses = []
    else:
        losses = train_dsa(net, train, d.epochs, d.batch_size, d.lr, tuple(d.lr_milestones), d.lr_gamma, d.huber_delta,
                           d.crop_size, d.max_steps, cfg.run.seed, cfg.run.device, cfg.run.progress)
        atomic_torch_save(net.state_dict(), net_path)
    held = evaluate_dsa(net, held_out, d.crop_size, cfg.run.device) if held_out else None
    out = run_dir / DSA_DIR / "frames"
    for index, (n, recs) in per_frame.items():
        scales = np.full(n, np.nan, dtype=np.float32)
        movers = [(k, r) for k, r in recs if r.moving]
        if movers:
            scales[[k for k, _ in movers]] = predict_scales(net, [r for _, r in movers], d.crop_size, device=cfg.run.device).numpy()
        save_frame(out, index, scales=scales)
    summary = {"method": "dsa", "static_objects": len(static), "train_objects": len(train), "held_out_objects": len(held_out),
               "moving_objects": int(moving), "final_loss": losses[-1] if losses else None,
               "held_out_median_rel_error": held["median_rel_error"] if held else None}
    _write_json(run_dir / DSA_DIR / "summary.json", summary)
    return summary


def ground_contact_fallback(run_dir: Path, per_frame: dict, static: int, moving: int) -> dict:
    """Scale each moving object onto the road under it when there are too few static objects for DSA.

    Writes ``RUN/dsa/frames/<index>`` scales (NaN where no ground contact is found) and
    ``RUN/dsa/summary.json``; returns that summary. ``per_frame``: {frame index: (objects, [(k, record)])}.
    """
    from .dsa import fit_ground_plane, ground_contact_scale

    found = 0
    for index, (n, recs) in per_frame.items():
        scales = np.full(n, np.nan, dtype=np.float32)
        movers = [(k, r) for k, r in recs if r.moving]
        if movers:  # one road plane per frame: every record of a frame shares its depth and ground
            depth, ground = movers[0][1].depth[0].numpy(), movers[0][1].ground[0].numpy()
            plane = fit_ground_plane(depth, ground)
        for k, r in movers:
            scales[k] = ground_contact_scale(depth, ground, r.object_depth[0].numpy(), r.mask[0].numpy(), plane)
            found += int(np.isfinite(scales[k]))
        save_frame(run_dir / DSA_DIR / "frames", index, scales=scales)
    summary = {"static_objects": static, "moving_objects": moving, "method": "ground_contact_fallback",
               "moving_objects_scaled": found, "held_out_median_rel_error": None}
    _write_json(run_dir / DSA_DIR / "summary.json", summary)
    return summary


def run_pseudo(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Compose D_bar (Eq. 5) for every frame into ``RUN/pseudo/`` (store + manifest + inspection strips).

    A moving object whose label is far off the ground it stands on is left out
    (``pseudo.max_ratio_to_ground``, :func:`~mcdepth_train.stages.pseudo.agrees_with_ground`).
    With ground truth in the dataset (synthetic), also reports the dynamic-region AbsRel
    (median-scaled per image) of the pseudo label against stage 1's on the same frames.
    """
    from ..eval.metrics import RegionMetrics, evaluate_image, protocol_crop
    from .dsa import fit_ground_plane, ground_contact_depth
    from .frames import load_frame
    from .pseudo import (PseudoLabelStore, agrees_with_ground, check_max_ratio, compose_pseudo_label, frame_key,
                         inspection_strip, write_inspection_strip)

    max_ratio = check_max_ratio(cfg.pseudo.max_ratio_to_ground, "pseudo.max_ratio_to_ground")
    run_dir = Path(run_dir)
    frames = dataset if dataset is not None else frames_dataset(cfg)
    records = [load_frame(run_dir / MASKS_DIR / "frames", i) for i in range(len(frames))]
    keys_by_index = [frame_key(str(r["sequence"]), int(r["frame"])) for r in records]
    store = PseudoLabelStore(run_dir / PSEUDO_DIR, cfg.pseudo.storage, expected=keys_by_index,
                             source={"stage1": str(stage_checkpoint(run_dir, "stage1")), "dsa": str(run_dir / DSA_DIR / "dsa.pt")})
    n_strips = min(max(cfg.pseudo.inspection_samples, 0), len(records))
    strip_indices = set(np.linspace(0, len(records) - 1, n_strips).round().astype(int).tolist()) if n_strips else set()
    label_metrics, stage1_metrics = RegionMetrics(), RegionMetrics()
    crop = protocol_crop(cfg.eval.protocol, cfg.eval.crop, cfg.data.dataset)
    guard = {"moving_objects": 0, "left_out_off_ground": 0, "no_ground_to_check": 0}
    for index, rec in enumerate(tqdm(records, desc="pseudo labels", disable=not cfg.run.progress)):
        scales = load_frame(run_dir / DSA_DIR / "frames", index)["scales"]
        chosen = np.flatnonzero(rec["moving"] & rec["usable"] & np.isfinite(scales))
        object_depth = load_frame(run_dir / OBJECTS_DIR / "frames", index)["object_depth"].astype(np.float32)
        stage1 = rec["stage1_depth"].astype(np.float32)
        plane = fit_ground_plane(stage1, rec["ground"])
        contact = np.array([ground_contact_depth(plane, rec["instances"][k]) for k in chosen], dtype=np.float64)
        labelled = np.array([np.median(scales[k] * object_depth[k][rec["instances"][k]]) for k in chosen], dtype=np.float64)
        keep = agrees_with_ground(labelled, contact, max_ratio)
        guard["moving_objects"] += len(chosen)
        guard["left_out_off_ground"] += int((~keep).sum())
        guard["no_ground_to_check"] += int((~np.isfinite(contact)).sum())
        chosen = chosen[keep]
        label, dynamic = compose_pseudo_label(stage1, object_depth[chosen], rec["instances"][chosen], scales[chosen])
        store.write(keys_by_index[index], label, dynamic)
        sample = frames[index]
        if keys.DEPTH_GT in sample:
            gt = sample[keys.DEPTH_GT][0].numpy()
            dyn_gt = sample[keys.DYNAMIC_MASK][0].numpy() > 0.5 if keys.DYNAMIC_MASK in sample else None
            for pred, acc in ((label, label_metrics), (stage1, stage1_metrics)):
                if pred.shape != gt.shape:
                    pred = torch.nn.functional.interpolate(torch.from_numpy(pred)[None, None], size=gt.shape, mode="nearest")[0, 0].numpy()
                acc.add(*evaluate_image(pred, gt, dyn_gt, cfg.eval.min_depth, cfg.eval.max_depth, True, crop))
        if index in strip_indices:
            image = sample[keys.color(0, 0)].permute(1, 2, 0).numpy()
            strip = inspection_strip(image, rec["dynamic_evidence"], rec["instances"], rec["moving"], stage1, label)
            write_inspection_strip(run_dir / PSEUDO_DIR / "inspect" / f"{index:06d}.png", strip)
    store.save_manifest()
    summary = {"frames": len(records), "complete": store.is_complete(verify=False), "scale_guard": guard}
    if guard["left_out_off_ground"]:
        log.warning("pseudo: %d of %d moving objects were more than %.2fx nearer or farther than the ground under "
                    "them and were left out of the labels", guard["left_out_off_ground"], guard["moving_objects"],
                    cfg.pseudo.max_ratio_to_ground)
    if stage1_metrics.counts["all"]:
        summary["label_vs_gt"] = {"pseudo_label": label_metrics.mean(), "stage1": stage1_metrics.mean()}
    _write_json(run_dir / PSEUDO_DIR / "summary.json", summary)
    return summary
