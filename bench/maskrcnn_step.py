"""Seconds per training step of the self-supervised Mask R-CNN, at torchvision's sampling and at smaller ones.

    python bench/maskrcnn_step.py                                   # 64x192 (the demo's size), batch 4
    python bench/maskrcnn_step.py --height 192 --width 640 --settings 2000,512 300,64 --json OUT

Each setting is ``PROPOSALS,ROIS`` = ``masks.maskrcnn_proposals`` (region proposals kept per image
before and after NMS) and ``masks.maskrcnn_rois_per_image`` (proposals sampled for the box and mask
heads); 2000,512 are torchvision's defaults. Every step is a real ``train_maskrcnn`` step (the
stages' Trainer, SGD) on random frames with two box-shaped pseudo masks each; the time is the
median over the timed steps after warm-up. Prints a table and JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcdepth_train.config import Config  # noqa: E402
from mcdepth_train.engine.hooks import Hook  # noqa: E402
from mcdepth_train.stages.masks import instances  # noqa: E402


class StepTimes(Hook):
    def __init__(self):
        self.times: list[float] = []
        self.last = None

    def before_train(self, trainer) -> None:
        self.last = time.perf_counter()

    def after_step(self, trainer, outputs: dict) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def frames(count: int, height: int, width: int) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, height, width, generator=g) for _ in range(count)]
    masks = []
    for _ in range(count):
        m = np.zeros((2, height, width), bool)
        m[0, height // 2: height // 2 + height // 4, width // 10: width // 4] = True
        m[1, height // 2 - height // 8: height // 2 + height // 8, width // 2: width // 2 + width // 8] = True
        masks.append(m)
    return images, masks


def time_setting(proposals: int, rois: int, args) -> dict:
    images, masks = frames(16, args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config()
        cfg.run.out_dir, cfg.run.progress, cfg.run.tensorboard = tmp, False, False
        m = cfg.masks
        m.maskrcnn_min_size, m.maskrcnn_max_size = min(args.height, args.width), max(args.height, args.width)
        m.maskrcnn_proposals, m.maskrcnn_rois_per_image = proposals, rois
        m.maskrcnn_steps, m.maskrcnn_batch_size = args.warmup + args.steps, args.batch
        m.maskrcnn_checkpoint_every = 10**9  # the checkpoint at the end only: not part of a step's time
        torch.manual_seed(0)
        model = instances.maskrcnn_from_config(cfg)
        hook = StepTimes()
        instances.train_maskrcnn(cfg, model, images, masks, "maskrcnn", hooks=[hook])
    timed = hook.times[args.warmup:]
    return {"proposals": proposals, "rois_per_image": rois, "median_s_per_step": statistics.median(timed),
            "steps_timed": len(timed)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settings", nargs="+", default=["2000,512", "300,64"], help="PROPOSALS,ROIS pairs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pairs = []
    for text in args.settings:
        try:
            proposals, rois = (int(v) for v in text.split(","))
        except ValueError:
            ap.error(f"--settings: expected PROPOSALS,ROIS (two integers), got {text!r}")
        if proposals < 1 or rois < 1:
            ap.error(f"--settings: PROPOSALS and ROIS must be at least 1, got {text!r}")
        pairs.append((proposals, rois))
    rows = [time_setting(p, r, args) for p, r in pairs]
    base = rows[0]["median_s_per_step"]
    print(f"Mask R-CNN training step, {args.height}x{args.width}, batch {args.batch}, {torch.get_num_threads()} threads")
    print("| proposals | RoIs per image | s per step (median) | vs first |")
    print("|---|---|---|---|")
    for row in rows:
        row["ratio_to_first"] = row["median_s_per_step"] / base
        print(f"| {row['proposals']} | {row['rois_per_image']} | {row['median_s_per_step']:.3f} | {row['ratio_to_first']:.2f} |")
    result = {"height": args.height, "width": args.width, "batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
