"""Where does DSA's scale hold? Its scale for every usable object, static and moving, by kind and by place.

    python bench/dsa_reach.py --run RUN [--synth DIR] [--json OUT] [--every N]

DSA learns, on the static objects, the scale that gives an object stage 1's depth, and applies
it to the moving ones. For a synthetic run whose DSA was trained (``RUN/dsa/dsa.pt``; not the
ground-contact fallback), this bench runs the trained net on every N-th frame's usable objects
(as ``stages/dsa/run.py`` builds them) and reports, per group of objects — static or moving, the
generator's kind most of the object's pixels belong to (``bg`` = background), and whether it
touches the central strip (``masks.central_strip_fraction``; the rule calls every object there
moving, so DSA never trains on one) — p10 / p50 / p90 over objects of:

* ``dsa_over_stage1``: DSA's scale over the one that gives the object stage 1's median depth
  (on static objects this is what DSA is trained to be: 1);
* ``dsa_over_true``: DSA's scale over the one that gives it its true median depth (the
  generator's depth scaled into stage 1's units by the frame's median ratio, as the evaluation
  scales).

Ground truth is used for this analysis only; nothing here is trained or tuned.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MIN_PIXELS = 5  # as masks_quality scores an instance
MAX_DEPTH = 80.0  # the evaluation's range


def object_row(moving: bool, kind: str, in_strip: bool, dsa_scale: float, stage1: np.ndarray, object_depth: np.ndarray,
               mask: np.ndarray, true_depth: np.ndarray) -> dict | None:
    """One object's row, or None with under ``MIN_PIXELS`` pixels that have o_k and ground truth.

    ``true_depth``: HxW, already in stage 1's units (0 = none).
    """
    o, g = np.asarray(object_depth, np.float64), np.asarray(true_depth, np.float64)
    mask = np.asarray(mask, bool)
    scored = mask & (g > 0) & (o > 0)
    if scored.sum() < MIN_PIXELS:
        return None
    stage1_scale = np.median(np.asarray(stage1, np.float64)[mask]) / np.median(o[mask])
    true_scale = np.median(g[scored]) / np.median(o[scored])
    return {"moving": bool(moving), "kind": kind, "in_strip": bool(in_strip),
            "dsa_over_stage1": float(dsa_scale / stage1_scale), "dsa_over_true": float(dsa_scale / true_scale)}


def summarise(rows: list[dict], min_objects: int = 1) -> list[dict]:
    """Groups (static/moving, kind, in strip) with their count and p10/p50/p90 of both ratios, static first."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["moving"], r["kind"], r["in_strip"]), []).append(r)
    out = []
    for (moving, kind, in_strip), items in sorted(groups.items()):
        if len(items) < min_objects:
            continue
        out.append({"moving": moving, "kind": kind, "in_strip": in_strip, "objects": len(items),
                    **{key: np.percentile([r[key] for r in items], [10, 50, 90]).tolist()
                       for key in ("dsa_over_stage1", "dsa_over_true")}})
    return out


def evaluate_run(run: Path, synth: Path, every: int = 2) -> dict:
    import torch

    from masks_quality import majority_kind, truth_in_stage1_units
    from mcdepth_train.config import load_config
    from mcdepth_train.networks.dsa import DSANet
    from mcdepth_train.stages.dsa.fit import predict_scales
    from mcdepth_train.stages.dsa.run import object_records
    from mcdepth_train.stages.frames import frames_dataset, load_frame
    from mcdepth_train.stages.masks.rules import central_strip

    net_path = run / "dsa" / "dsa.pt"
    if not net_path.is_file():
        raise FileNotFoundError(f"{net_path}: no trained DSA (the run used the ground-contact fallback, or its dsa stage has not run)")
    cfg = load_config([str(run / "config.yaml")])
    frames = frames_dataset(cfg)
    net = DSANet.from_config(cfg)
    net.load_state_dict(torch.load(net_path, map_location="cpu", weights_only=True))
    rows = []
    for i in range(0, len(frames), max(1, every)):
        _, records = object_records(frames, run, i)
        if not records:
            continue
        r = load_frame(run / "masks" / "frames", i)
        ids, kind_of, true_depth = truth_in_stage1_units(synth, r, MAX_DEPTH)
        stage1 = r["stage1_depth"].astype(np.float64)
        strip = central_strip(*stage1.shape, cfg.masks.central_strip_fraction)
        scales = predict_scales(net, [rec for _, rec in records], cfg.dsa.crop_size, device=cfg.run.device, context=cfg.dsa.context)
        for (_, rec), scale in zip(records, scales.tolist()):
            mask = rec.mask[0].numpy()
            row = object_row(rec.moving, majority_kind(ids, mask, kind_of), bool((mask & strip).any()), scale, stage1,
                             rec.object_depth[0].numpy(), mask, true_depth)
            if row is not None:
                rows.append(row)
    return {"run": str(run), "every": every, "groups": summarise(rows)}


def format_table(result: dict) -> str:
    lines = [f"DSA's scale over stage 1's level and over the true one, p10 / p50 / p90 (every {result['every']}. frame)",
             f"{'objects':<8}{'kind':<10}{'in strip':<10}{'n':>5}  {'dsa / stage 1':<20}{'dsa / true':<20}"]
    for g in result["groups"]:
        cells = ["/".join(f"{x:.2f}" for x in g[key]) for key in ("dsa_over_stage1", "dsa_over_true")]
        lines.append(f"{'moving' if g['moving'] else 'static':<8}{g['kind']:<10}{str(g['in_strip']):<10}{g['objects']:>5}  {cells[0]:<20}{cells[1]:<20}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from masks_quality import synth_run_main

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--every", type=int, default=2)
    known, rest = parser.parse_known_args(argv)
    return synth_run_main(rest, __doc__, lambda run, synth: evaluate_run(run, synth, known.every), format_table,
                          "a synthetic run whose DSA was trained on static objects")


if __name__ == "__main__":
    sys.exit(main())
