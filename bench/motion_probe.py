"""How much residual motion a stage-1 checkpoint's motion net finds on moving vs static pixels.

The masks stage calls a pixel dynamic when the motion, averaged over both source frames, is at
least ``masks.motion_threshold_px``. This reports, on frames with the generator's moving-object
masks (synthetic data), the mean of that motion on moving and on static pixels and the fraction of
moving pixels above the threshold: whether the motion net has learned enough for the masks stage.

    python bench/motion_probe.py runs/demo/stage1/checkpoints/best.pt --split test [KEY=VALUE ...]

Overrides change the checkpoint's saved data config (e.g. ``data.root=DIR data.dataset=synthetic``
when the run trained from a rosbag). Prints a table and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a stage-1 (or stage-3) checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the checkpoint's config")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--frames", type=int, default=12, help="frames, evenly spread over the split")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames: expected >= 1, got {args.frames}")

    from mcdepth_train.config import apply_overrides, config_from_dict
    from mcdepth_train.data import keys
    from mcdepth_train.engine.checkpoint import load_checkpoint
    from mcdepth_train.stages.frames import frames_dataset, load_stage1_model

    cfg = config_from_dict(load_checkpoint(args.checkpoint)["config"])
    apply_overrides(cfg, args.overrides)
    model, _ = load_stage1_model(args.checkpoint, cfg.run.device)
    dataset = frames_dataset(cfg, args.split)
    if len(dataset) == 0:
        parser.error(f"split '{args.split}' of dataset '{cfg.data.dataset}' is empty")
    threshold = cfg.masks.motion_threshold_px
    moving, static, above = [], [], []
    for i in np.unique(np.linspace(0, len(dataset) - 1, min(args.frames, len(dataset))).round().astype(int)):
        sample = dataset[int(i)]
        if keys.DYNAMIC_MASK not in sample:
            parser.error(f"dataset '{cfg.data.dataset}' has no dynamic_mask: the probe needs synthetic ground truth")
        batch = {k: (v[None].to(cfg.run.device) if torch.is_tensor(v) else v) for k, v in sample.items()}
        with torch.no_grad():
            flows = model.infer(batch)["flow"]
        magnitude = torch.stack([f[0].norm(dim=0) for f in flows.values()]).mean(0).cpu()
        dyn = torch.nn.functional.interpolate(sample[keys.DYNAMIC_MASK][None].float(), size=magnitude.shape,
                                              mode="nearest")[0, 0] > 0.5
        if dyn.any():
            moving.append(float(magnitude[dyn].mean()))
            above.append(float((magnitude[dyn] >= threshold).float().mean()))
        static.append(float(magnitude[~dyn].mean()))
    result = {"checkpoint": str(args.checkpoint), "split": args.split, "frames": len(static),
              "threshold_px": threshold, "motion_px_moving": float(np.mean(moving)) if moving else None,
              "motion_px_static": float(np.mean(static)),
              "moving_pixels_above_threshold": float(np.mean(above)) if above else None}
    print(f"mean residual motion (px): moving {result['motion_px_moving']}, static {result['motion_px_static']:.4f}; "
          f"moving pixels >= {threshold} px: {result['moving_pixels_above_threshold']}")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
