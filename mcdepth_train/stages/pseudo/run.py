"""The pseudo stage (paper Eq. 5): scale-consistent pseudo depth labels for stage 3.

Inputs: the masks, objects and DSA stages' records. Outputs: ``RUN/pseudo/`` (one label and
moving-object mask per frame, ``manifest.json``, inspection strips under ``inspect/``) and
``RUN/pseudo/summary.json``. Composition, storage and the ground check are :mod:`.labels`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...config import Config
from ...data import keys
from ...eval.metrics import RegionMetrics, evaluate_image, protocol_crop
from ...geometry.ground_contact import fit_ground_plane, ground_contact_depth
from ..dsa.run import DSA_DIR
from ..frames import frames_dataset, load_frame, stage_checkpoint, write_json
from ..masks.run import MASKS_DIR
from ..objects.run import OBJECTS_DIR
from .labels import (PseudoLabelStore, agrees_with_ground, check_max_ratio, compose_pseudo_label, frame_key,
                     inspection_strip, write_inspection_strip)

log = logging.getLogger(__name__)

PSEUDO_DIR = "pseudo"


def run_pseudo(cfg: Config, run_dir: Path, dataset=None) -> dict:
    """Compose D_bar (Eq. 5) for every frame into ``RUN/pseudo/`` (store + manifest + inspection strips).

    A moving object whose label is far off the ground it stands on is left out
    (``pseudo.max_ratio_to_ground``, :func:`~mcdepth_train.stages.pseudo.labels.agrees_with_ground`).
    With ground truth in the dataset (synthetic), also reports the dynamic-region AbsRel
    (median-scaled per image) of the pseudo label against stage 1's on the same frames.
    """

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
    write_json(run_dir / PSEUDO_DIR / "summary.json", summary)
    return summary
