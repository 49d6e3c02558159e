"""``mcdepth-train run``: the whole method, resumable, with ``RUN/manifest.json``.

stage1 -> masks -> objects -> dsa -> pseudo -> stage3 (+ self-training) -> eval -> export.
Killed anywhere and rerun, it continues where it stopped; ``--from``/``--until`` re-run a part;
a changed config section re-runs the stage that reads it and every stage after it (and says so).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import RUN_CONFIG, add_run_arguments, run_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--from", dest="from_stage", metavar="STAGE", help="re-run from this stage on")
    parser.add_argument("--until", dest="until_stage", metavar="STAGE", help="stop after this stage")
    parser.add_argument("--plan", action="store_true", help="only print what would run and why")
    parser.add_argument("--no-eval", action="store_true", help="skip evaluation (no ground truth)")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export")


def run(args: argparse.Namespace) -> int:
    from ..config import save_config
    from ..data.errors import DataError
    from ..stages.workflow import method_pipeline

    cfg = run_config(args)
    run_dir = Path(cfg.run.out_dir)
    pipeline = method_pipeline(with_eval=not args.no_eval, with_export=not args.no_export)
    try:
        if args.plan:
            for name, reason in pipeline.plan(cfg, run_dir, args.from_stage, args.until_stage):
                print(f"{name:<8} {reason}")
            return 0
        save_config(cfg, run_dir / RUN_CONFIG)
        pipeline.run(cfg, run_dir, args.from_stage, args.until_stage)
    except DataError:
        raise  # bad input: the command line prints it as one 'error:' line and exits 2
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"mcdepth-train run: {exc}", file=sys.stderr)
        return 1
    print(f"done: {run_dir}/manifest.json")
    return 0
