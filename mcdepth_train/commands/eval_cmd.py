"""``mcdepth-train eval``: per-region metrics of every stage and round of a run, against ground truth.

Ground truth is used here only, never to choose checkpoints. Writes ``RUN/eval/metrics.{md,json,csv}``
and plots (error by stage, per-image histogram, qualitative grid); another split than ``test`` goes
to ``RUN/eval_<split>/``, so it never overwrites the held-out report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_run_arguments, run_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)  # --run reads RUN/config.yaml: the data and sizes the run trained with
    parser.add_argument("--split", default="test",
                        help="dataset split to evaluate (default: test, into RUN/eval; another split into RUN/eval_SPLIT)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="evaluate these checkpoints instead of the run's stages (repeatable)")
    parser.add_argument("--max-images", type=int, default=0, help="stop after this many images (0 = all)")


def run(args: argparse.Namespace) -> int:
    from ..eval.run import evaluate_run, run_checkpoints

    cfg = run_config(args)
    run_dir = Path(args.run or cfg.run.out_dir)
    if args.checkpoint:
        checkpoints = {}
        for item in args.checkpoint:
            if "=" not in item:
                print(f"--checkpoint: expected NAME=PATH, got {item!r}", file=sys.stderr)
                return 2
            name, path = item.split("=", 1)
            checkpoints[name] = Path(path)
    else:
        checkpoints = run_checkpoints(run_dir)
        if not checkpoints:
            print(f"no stage checkpoints found under {run_dir} (expected stage1/, stage3/...)", file=sys.stderr)
            return 2
    out = run_dir / ("eval" if args.split == "test" else f"eval_{args.split}")
    report = evaluate_run(cfg, checkpoints, out, split=args.split, max_images=args.max_images)
    print(report["markdown"])
    print(f"report: {report['paths']['md']}")
    return 0
