"""``mcdepth-train stage1``: train scene depth + pose + pixel-wise motion (paper 4.1).

Writes RUN/stage1/ (checkpoints/last.pt and best.pt, config.yaml, tb/, summary.json). Rerunning
the same command resumes from checkpoints/last.pt. Multi-GPU: ``torchrun --nproc_per_node N -m
mcdepth_train.cli stage1 ...``.
"""
from __future__ import annotations

import argparse
import sys

from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic kernels (same as run.deterministic=true; CPU runs reproduce bit for bit)")
    parser.add_argument("--eval-gt", action="store_true",
                        help="also report depth metrics against ground truth at each validation "
                             "(reported only; checkpoints are never chosen with ground truth)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.deterministic:
        cfg.run.deterministic = True
    try:
        from ..data import build_dataset  # noqa: F401 - checked here for a clear message
    except ImportError:
        print("mcdepth-train stage1: this version has no dataset loaders (mcdepth_train.data.build_dataset); "
              "install the data package or call mcdepth_train.stages.stage1.train_stage1 with a dataset.", file=sys.stderr)
        return 2
    from ..stages.stage1 import train_stage1

    if args.eval_gt:
        print("stage1: --eval-gt: ground-truth depth metrics are reported at each validation (gt/...); "
              "they are never used to choose checkpoints.", file=sys.stderr)
    summary = train_stage1(cfg, eval_gt=args.eval_gt)
    best = summary.get("best") or {}
    print(f"stage1: {summary['steps']} steps, {summary['epochs_completed']} epochs; last: {summary['last_checkpoint']}")
    if best:
        print(f"stage1: best (validation photometric {best['val_photometric']:.4f}, step {best['step']}): {summary['best_checkpoint']}")
    if args.eval_gt and summary["validation"]:
        last = summary["validation"][-1]
        static = last.get("gt/static/abs_rel")
        if static is not None:
            print(f"stage1: ground truth (reported only): static AbsRel {static:.4f} (median-scaled) at step {last['step']}")
    return 0
