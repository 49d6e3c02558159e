"""The DSA stage (paper 4.2): depth-scale alignment trained on static objects, applied to moving ones.

Inputs: the masks and objects stages' records. Outputs: ``RUN/dsa/dsa.pt``, ``RUN/dsa/frames/*.npz``
(``scales`` s_k per object) and ``RUN/dsa/summary.json`` with the held-out static objects' scale
error. With too few static objects, moving objects are scaled to the ground under them instead
(:func:`ground_contact_fallback`). The training and the geometry are in :mod:`.fit`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...config import Config
from ...data import keys
from ...engine.checkpoint import atomic_torch_save
from ...geometry.ground_contact import fit_ground_plane, ground_contact_scale, ground_seen_below
from ...networks.dsa import DSANet, ObjectRecord
from ..frames import frames_dataset, load_frame, save_frame, write_json
from ..masks.run import MASKS_DIR
from ..objects.run import OBJECTS_DIR
from .fit import evaluate_dsa, predict_scales, split_held_out, train_dsa

log = logging.getLogger(__name__)

DSA_DIR = "dsa"


def object_records(frames, run_dir: Path, index: int) -> tuple[int, list[tuple[int, "ObjectRecord"]]]:
    """(number of instances, [(instance id, ObjectRecord)] for every usable object, static and moving) of a frame."""

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

    run_dir = Path(run_dir)
    frames = dataset if dataset is not None else frames_dataset(cfg)
    d = cfg.dsa
    per_frame = {i: object_records(frames, run_dir, i) for i in range(len(frames))}
    static = [r for _, recs in per_frame.values() for _, r in recs if not r.moving]
    moving = sum(r.moving for _, recs in per_frame.values() for _, r in recs)
    if len(static) < d.min_static_objects:
        # Too few static objects to learn from: align each moving object to the ground under it.
        log.warning("dsa: %d usable static objects (< dsa.min_static_objects=%d); using the ground-contact "
                    "fallback for %d moving objects", len(static), d.min_static_objects, moving)
        return ground_contact_fallback(run_dir, per_frame, len(static), int(moving), d.min_contact_share, d.contact_depth)
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
    write_json(run_dir / DSA_DIR / "summary.json", summary)
    return summary


def ground_contact_fallback(run_dir: Path, per_frame: dict, static: int, moving: int, min_contact_share: float,
                            contact_depth: str = "bottom") -> dict:
    """Scale each moving object onto the road under it when there are too few static objects for DSA.

    Where the ground is seen under less than ``min_contact_share`` of the object's columns
    (:func:`~mcdepth_train.geometry.ground_contact.ground_seen_below`), its contact is out of view and the road under its lowest
    visible row only bounds its depth from above: the scale is then the smaller of that and the
    scale that gives the object stage 1's depth (its median over the object). So a car that stage 1
    sends towards infinity is still brought to the road, and one that stage 1 already has nearer
    than the road keeps stage 1's level.

    ``contact_depth`` (``dsa.contact_depth``): ``"bottom"`` puts o_k's lowest pixel in each column
    on the road; ``"median"`` puts o_k's median over the object there (o_k's lowest pixels blend
    into the road behind them, 9% too far against its body on the three-drive run,
    ``bench/label_scales.py``'s ``shape``).

    Writes ``RUN/dsa/frames/<index>`` scales (NaN where no ground contact is found) and
    ``RUN/dsa/summary.json``; returns that summary. ``per_frame``: {frame index: (objects, [(k, record)])}.
    """

    found = bounded = 0
    for index, (n, recs) in per_frame.items():
        scales = np.full(n, np.nan, dtype=np.float32)
        movers = [(k, r) for k, r in recs if r.moving]
        if movers:  # one road plane per frame: every record of a frame shares its depth and ground
            depth, ground = movers[0][1].depth[0].numpy(), movers[0][1].ground[0].numpy()
            plane = fit_ground_plane(depth, ground)
        for k, r in movers:
            object_depth, mask = r.object_depth[0].numpy(), r.mask[0].numpy()
            covered = mask & (object_depth > 0)
            if contact_depth == "median" and covered.any():
                object_depth = np.full(object_depth.shape, float(np.median(object_depth[covered])))
            scales[k] = ground_contact_scale(depth, ground, object_depth, mask, plane)
            if np.isfinite(scales[k]) and ground_seen_below(ground, mask) < min_contact_share:
                stage1_level = float(np.median(depth[mask]) / np.median(object_depth[mask]))
                bounded += int(stage1_level < scales[k])
                scales[k] = min(scales[k], stage1_level)
            found += int(np.isfinite(scales[k]))
        save_frame(run_dir / DSA_DIR / "frames", index, scales=scales)
    summary = {"static_objects": static, "moving_objects": moving, "method": "ground_contact_fallback",
               "moving_objects_scaled": found, "kept_stage1_level_contact_unseen": bounded, "held_out_median_rel_error": None}
    write_json(run_dir / DSA_DIR / "summary.json", summary)
    return summary
