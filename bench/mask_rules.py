"""The masks stage's rules again, with other settings, on a finished masks stage: seconds, not a rerun.

    python bench/mask_rules.py --run RUN [--synth DIR] [--json OUT] [KEY=VALUE ...]

    e.g. python bench/mask_rules.py --run R masks.far_explains=true masks.grow_depth_tolerance=0.25

Reads what the masks stage stored (``RUN/masks/stage1``: stage-1 depth, poses, residual motion;
``RUN/masks/frames``: the ground), applies the run's ``config.yaml`` with the overrides
(dynamic evidence, the relative rule, ``far_explains``, connected components, ground removal, the
size filter, the road-user rule, the moving rule, growth), and scores the moving masks against the generator as
``bench/masks_quality.py`` does (IoU, precision, recall; per kind the pixels called moving and
the instances at least half covered). Only the rules are re-run: the residual motion
(``masks.motion_source``, ``dis_*``), the ground (``ground_*``) and the instances of a
Mask R-CNN or folder source are what the run stored, so those keys are refused, and so is a run
whose instances were not the evidence's connected components (``masks.source=self_supervised``
with ``masks.maskrcnn_steps=0``). The records hold the motion in float16, so a pixel right at a
threshold can come out otherwise than in the stage (on the three-drive runs of docs/stage2.md the
unchanged rules gave the stage's own scores).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from masks_quality import (  # noqa: E402
    add_mask_scores, default_synth, drive_folder, generator_truth, mask_scores, mask_summary, mask_table, record_motion,
)

STORED_KEYS = ("masks.motion_source", "masks.dis_", "masks.ground", "masks.source", "masks.maskrcnn", "masks.instance_folder")


def frame_moving_mask(stage1_record: dict, ground: np.ndarray, cfg) -> np.ndarray:
    """HxW bool union of the moving instances the masks stage's rules give on one stored stage-1 record."""
    from mcdepth_train.stages.masks import rules

    m = cfg.masks
    flows, relative = record_motion(stage1_record, m.far_explains)
    evidence = rules.dynamic_evidence(flows, m.motion_threshold_px, relative, m.min_relative_motion)[0, 0].numpy()
    depth = stage1_record["stage1_depth"].astype(np.float32)
    found = rules.clean_instances_from_config(rules.components_to_instances(evidence), evidence, ground, cfg, depth)
    return found.dynamic_mask


def evaluate_rules(run: Path, synth: Path, overrides: list[str]) -> dict:
    from mcdepth_train.config import load_config
    from mcdepth_train.stages.frames import MASKS_DIR, load_frame

    refused = [o for o in overrides if o.split("=", 1)[0].startswith(STORED_KEYS)]
    if refused:
        raise ValueError(f"{', '.join(refused)}: fixed by what the masks stage stored; rerun the masks stage to change it")
    cfg = load_config([run / "config.yaml"], overrides)
    if cfg.masks.source != "self_supervised" or cfg.masks.maskrcnn_steps > 0:
        raise ValueError(f"{run}: its instances are not the evidence's components (masks.source={cfg.masks.source}, "
                         f"maskrcnn_steps={cfg.masks.maskrcnn_steps}); only their rules could be re-run")
    frames = sorted((run / MASKS_DIR / "frames").glob("*.npz"))
    if not frames:
        raise FileNotFoundError(f"{run / MASKS_DIR / 'frames'}: no masks frames (run the masks stage first)")
    totals: dict = {}
    kinds: dict = {}
    for i in range(len(frames)):
        record = load_frame(run / MASKS_DIR / "stage1", i)
        ground = load_frame(run / MASKS_DIR / "frames", i)["ground"].astype(bool)
        ids, _, kind_of, dynamic = generator_truth(drive_folder(synth, str(record["sequence"])), int(record["frame"]))
        add_mask_scores(totals, kinds, mask_scores(frame_moving_mask(record, ground, cfg), ids, kind_of, dynamic))
    return {"run": str(run), "frames": len(frames), "overrides": list(overrides), "masks": mask_summary(totals, kinds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run whose masks stage finished (RUN/masks/stage1, RUN/masks/frames)")
    parser.add_argument("--synth", type=Path, default=None, help="the synthetic dataset it trained on (default: RUN/data, else RUN/cache/synthetic-*)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("overrides", nargs="*", help="masks.KEY=VALUE for the rules, over the run's config.yaml")
    args = parser.parse_args(argv)
    synth = args.synth or default_synth(args.run)
    if not (synth / "synth").is_dir():
        parser.error(f"--synth: {synth} has no synth/ folder (a `mcdepth-train synth --format both` output)")
    try:
        result = evaluate_rules(args.run, synth, args.overrides)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        parser.error(f"--run {args.run}: {exc}")
    print("\n".join(mask_table(result["masks"], result["frames"])))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
