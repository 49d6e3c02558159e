"""Held-out depth error by the generator's kind of car: which cars a stage helps and which it hurts.

    python bench/depth_by_kind.py --run RUN [--synth DIR] [--json OUT]

For each checkpoint the run's eval scores (stage 1, stage 3, each self-training round; each stage's
selected checkpoint), on the held-out synthetic split, with the eval's own per-image median scaling
(``mcdepth_train.eval.metrics.evaluate_image``): AbsRel (mean over the images that have the region)
and the median depth ratio (scaled prediction / truth, median over the images; below 1 = too
near) of the regions ``dynamic``, ``static``, each kind of car (``lead``, ``oncoming``,
``crossing``: moving; ``parked``: static) and ``static_not_car`` (road, buildings, sky). The
dynamic and static rows are the eval's (``RUN/eval/metrics.md``); the kinds split them. A net
cannot tell a parked car from an oncoming one by its look, so what pseudo labels teach about the
cars they cover shows up on the parked ones too.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

KINDS = ("lead", "oncoming", "crossing", "parked")
NOT_CAR = "static_not_car"


def kind_regions(ids: np.ndarray, kinds: dict[int, str], dynamic_mask: np.ndarray) -> dict[str, np.ndarray | None]:
    """HxW bool regions of one frame: each kind of car (None where the frame has none) and the
    static pixels that belong to no car."""
    out: dict[str, np.ndarray | None] = {}
    for kind in KINDS:
        mask = np.isin(ids, [i for i, k in kinds.items() if k == kind])
        out[kind] = mask if mask.any() else None
    out[NOT_CAR] = (ids == 0) & ~dynamic_mask
    return out


def evaluate_checkpoint(checkpoint: Path, dataset, eval_cfg, synth: Path) -> dict:
    """{region: {"abs_rel", "depth_ratio", "images"}} of one checkpoint on ``dataset``."""
    import torch
    import torch.nn.functional as F

    from masks_quality import _drive_objects, drive_folder, median_depth_ratio
    from mcdepth_train.data import keys
    from mcdepth_train.eval.metrics import evaluate_image
    from mcdepth_train.eval.run import depth_predictor

    predict = depth_predictor(checkpoint)
    abs_rel: dict[str, list] = {}
    ratios: dict[str, list] = {}
    with torch.inference_mode():
        for index in range(len(dataset)):
            sample = dataset[index]
            gt = sample[keys.DEPTH_GT][0].numpy().astype(np.float64)
            pred = predict({keys.color(0, 0): sample[keys.color(0, 0)][None]}).float()
            pred = F.interpolate(pred, size=gt.shape, mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float64)
            dyn = sample[keys.DYNAMIC_MASK][0].numpy() > 0.5
            ids = sample[keys.INSTANCE_MAP][0].numpy().astype(np.int64)
            kinds, _ = _drive_objects(drive_folder(synth, sample[keys.SEQUENCE]))
            regions = kind_regions(ids, kinds, dyn)
            per_region, ratio = evaluate_image(pred, gt, dynamic_mask=dyn, min_depth=eval_cfg.min_depth,
                                               max_depth=eval_cfg.max_depth, median_scaling=eval_cfg.median_scaling,
                                               regions=regions)
            if not np.isfinite(ratio):
                continue
            valid = np.isfinite(gt) & (gt > eval_cfg.min_depth) & (gt < eval_cfg.max_depth) & (pred > 0)
            scaled = np.clip(pred * ratio, eval_cfg.min_depth, eval_cfg.max_depth)
            masks = {"dynamic": dyn, "static": ~dyn} | regions
            for name, metrics in per_region.items():
                if name not in masks or metrics is None:
                    continue
                abs_rel.setdefault(name, []).append(metrics["abs_rel"])
                r = median_depth_ratio(scaled, gt, valid & masks[name])
                if r is not None:
                    ratios.setdefault(name, []).append(r)
    order = ["dynamic", "static", *KINDS, NOT_CAR]
    return {name: {"abs_rel": statistics.fmean(abs_rel[name]), "depth_ratio": statistics.median(ratios[name]),
                   "images": len(abs_rel[name])} for name in order if abs_rel.get(name)}


def evaluate_run(run: Path, synth: Path | None = None) -> dict:
    """{checkpoint name: evaluate_checkpoint(...)} for the run's eval checkpoints on its held-out split."""
    from masks_quality import default_synth
    from mcdepth_train.config import load_config
    from mcdepth_train.data import build_dataset
    from mcdepth_train.eval.run import evaluation_config, run_checkpoints

    cfg = load_config([run / "config.yaml"])
    cfg.run.out_dir = str(run)
    dataset = build_dataset(evaluation_config(cfg), "test")
    synth = synth or default_synth(run)
    return {name: evaluate_checkpoint(path, dataset, cfg.eval, synth) for name, path in run_checkpoints(run).items()}


def format_table(result: dict) -> str:
    """Markdown: one row per checkpoint, one column per region, cells 'AbsRel (ratio x)'."""
    regions = list(dict.fromkeys(r for rows in result.values() for r in rows))
    lines = ["| checkpoint | " + " | ".join(regions) + " |", "|---|" + "---|" * len(regions)]
    for name, rows in result.items():
        cells = [f"{rows[r]['abs_rel']:.3f} ({rows[r]['depth_ratio']:.2f}x)" if r in rows else "–" for r in regions]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nAbsRel (median depth ratio, scaled prediction / truth: below 1 = too near)\n"


def main(argv=None) -> int:
    from masks_quality import synth_run_main

    return synth_run_main(argv, __doc__, evaluate_run, format_table, "a finished run (RUN/config.yaml, stage checkpoints)")


if __name__ == "__main__":
    sys.exit(main())
