"""Does stage 1 keep the motion net's evidence? The motion net's per-kind scores during stage 1's training.

    python bench/motion_in_stage1.py --config RUN/config.yaml --out DIR [--init CKPT] [--every N] [--seeds S ...] [--frames F] [KEY=VALUE ...]

Trains stage 1 into ``DIR/stage1`` with a run's config (e.g. a demo run's ``RUN/config.yaml``,
which names its training drive) and the overrides, and, before the first step and every ``--every``
steps of the motion phases, scores the motion net being trained with ``bench/motion_eval.py``'s
analysis on held-out drives (``--seeds``; exact depth and poses, so the score is the motion net's
own, not the depth net's): mean motion, EPE, the share of pixels at or above
``masks.motion_threshold_px`` and the flagged share, per kind of region. ``--init CKPT`` starts depth
and pose from a stage-1 checkpoint (``stage1.init_checkpoint``); the motion net starts from
``model.motion_weights`` (default: the shipped pre-trained weights), not from the checkpoint's.

It answers where the pre-trained motion is lost or kept: in the motion-only phase (photometric
loss alone) or in the ``all`` phase (with sparsity, and depth free to explain motion). Ground truth
is used for this analysis only. Prints a table per probe and writes DIR/motion_in_stage1.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mcdepth_train.data.synthetic_motion import REGION_KINDS  # noqa: E402
from mcdepth_train.engine.hooks import Hook  # noqa: E402


class MotionProbe(Hook):
    """Scores the motion net (``motion_eval.evaluate`` with exact depth and pose) every ``every``
    steps outside the depth+pose phase, and once before training; rows go to ``self.rows``."""

    def __init__(self, cfg, seeds: list[int], frames: int, every: int, reset_motion: bool = False):
        self.cfg, self.seeds, self.frames, self.every = cfg, seeds, frames, every
        self.reset_motion = reset_motion
        self.rows: list[dict] = []

    def probe(self, trainer, phase: str) -> None:
        from motion_eval import evaluate

        module = trainer.module
        was_training = module.training
        module.eval()
        per_kind = evaluate(module, self.cfg, self.seeds, self.frames, exact=True)
        module.train(was_training)
        row = {"step": trainer.step, "phase": phase, "per_kind": per_kind}
        self.rows.append(row)
        print(format_row(row), flush=True)

    def before_train(self, trainer) -> None:
        # The trainer has resumed by now: only a fresh run (step 0) gets model.motion_weights back
        # in place of the motion net that stage1.init_checkpoint loaded with depth and pose.
        if self.reset_motion and trainer.step == 0:
            from mcdepth_train.networks.motion import load_raft_state, resolve_motion_weights

            raft = trainer.module.motion.raft
            raft.load_state_dict(load_raft_state(resolve_motion_weights(self.cfg.model.motion_weights),
                                                 trainer.module.motion.name, raft))
        self.probe(trainer, "start")

    def after_step(self, trainer, outputs: dict) -> None:
        phase = trainer.module.phase
        if phase != "depth_pose" and trainer.step % self.every == 0:
            self.probe(trainer, phase)


def format_row(row: dict) -> str:
    """One line: step, phase, then mean motion px / flagged share per kind (pixel share for the background)."""
    cells = []
    for kind in REGION_KINDS:
        r = row["per_kind"].get(kind)
        if not r or not r["instances"]:
            cells.append(f"{kind} -")
        elif kind == "background":
            cells.append(f"{kind} {r['mean_motion_px']:.3f}px {100 * r['pixel_share']:.1f}%")
        else:
            cells.append(f"{kind} {r['mean_motion_px']:.2f}px/{r['epe_px']:.2f}/{r['flagged_share']:.2f}")
    return f"step {row['step']:>4} {row['phase']:<10} " + "  ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="a run's config.yaml (data, model, schedule)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (stage 1 goes to OUT/stage1)")
    parser.add_argument("--init", default="", help="stage-1 checkpoint for depth and pose (its motion net is replaced)")
    parser.add_argument("--every", type=int, default=6, help="probe every N steps of the motion phases")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000], help="held-out drives to score on")
    parser.add_argument("--frames", type=int, default=6, help="reference frames per drive")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides (stage1.*, loss.*, model.*)")
    args = parser.parse_args(argv)
    if args.every < 1 or args.frames < 1:
        parser.error("--every and --frames: expected >= 1")

    from mcdepth_train.config import load_config, save_config
    from mcdepth_train.stages import stage1 as stage1_mod

    cfg = load_config([args.config], [f"run.out_dir={args.out}", *args.overrides])
    if args.init and not cfg.model.motion_weights:
        parser.error("--init: replaces the checkpoint's motion net by model.motion_weights, which is empty")
    save_config(cfg, args.out / "config.yaml")

    cfg.stage1.init_checkpoint = args.init or cfg.stage1.init_checkpoint
    probe = MotionProbe(cfg, args.seeds, args.frames, args.every, reset_motion=bool(args.init))
    started = time.time()
    stage1_mod.train_stage1(cfg, extra_hooks=[probe])
    result = {"rows": probe.rows, "seeds": args.seeds, "frames_per_seed": args.frames, "init": args.init,
              "overrides": args.overrides, "minutes": round((time.time() - started) / 60, 2),
              "command": " ".join(["python bench/motion_in_stage1.py", *(argv if argv is not None else sys.argv[1:])])}
    (args.out / "motion_in_stage1.json").write_text(json.dumps(result, indent=2))
    print("\n".join(format_row(r) for r in probe.rows))
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
