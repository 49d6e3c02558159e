"""``mcdepth-train pretrain-motion --out FILE``: supervised pre-training of the motion net.

Renders motion pairs on the fly from the synthetic generator (the reference forward-splatted into
the source view next to the real source frame; the exact residual motion as the target) and trains
``model.motion_net`` on them; writes the RAFT weights to FILE, which ``model.motion_weights=FILE``
loads at the start of stage 1. Keys: ``pretrain_motion.*`` (``mcdepth-train config --defaults``).
Checkpoints go to ``FILE.run/`` (or ``--run DIR``); rerunning the same command resumes there.
The net starts from ``model.motion_weights`` (default: the shipped file); ``model.motion_weights=""``
trains from scratch.
"""
from __future__ import annotations

import argparse
import sys

from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="motion-net weights to write (a torchvision RAFT state dict)")
    parser.add_argument("--run", metavar="DIR", default=None, help="folder of the resumable checkpoints (default: FILE.run)")
    parser.add_argument("--export-only", action="store_true",
                        help="write FILE from the latest checkpoint without training (a stopped or still running pre-training)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..stages.motion_pretrain import export_latest, pretrain_motion

    cfg = config_from_args(args)
    try:
        if args.export_only:
            written = export_latest(args.out, args.run)
            print(f"pretrain-motion: weights of step {written['steps']} written to {written['weights']}")
            return 0
        summary = pretrain_motion(cfg, args.out, args.run)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mcdepth-train pretrain-motion: {exc}", file=sys.stderr)
        return 1
    scalars = summary.get("final_train_scalars", {})
    last_val = (summary.get("validation") or [{}])[-1]
    print(f"pretrain-motion: {summary['steps']} steps ({'resumed' if summary['resumed'] else 'fresh'}); "
          f"last train EPE {scalars.get('epe', float('nan')):.3f} px (moving {scalars.get('epe_moving', float('nan')):.3f} px)"
          + (f", validation loss {last_val['val/loss']:.3f}" if "val/loss" in last_val else ""))
    print(f"pretrain-motion: weights {summary['weights']} (use model.motion_weights={summary['weights']})")
    return 0
