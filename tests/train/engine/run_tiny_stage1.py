"""Train stage 1 on the tiny scene in its own process (resume-after-kill and DDP tests).

usage: run_tiny_stage1.py OUT_DIR [--kill-at STEP] [--weights FILE]
With --kill-at the process SIGKILLs itself right after that optimiser step (a real kill -9).
With --weights every rank saves its final model state dict to FILE.rank<R>.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/train: scenes.py
from scenes import TinyScene, tiny_config  # noqa: E402

from mcdepth_train.engine.hooks import Hook  # noqa: E402
from mcdepth_train.stages.stage1 import train_stage1  # noqa: E402


class KillAt(Hook):
    def __init__(self, step: int):
        self.step = step

    def after_step(self, trainer, outputs):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SaveWeights(Hook):
    def __init__(self, path: str):
        self.path = path

    def after_train(self, trainer):
        torch.save(trainer.module.state_dict(), f"{self.path}.rank{trainer.ctx.rank}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--weights", default="")
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(1)
    # All three phases (the authors' schedule: motion net trained), unless the overrides say otherwise.
    cfg = tiny_config(args.out_dir, ["stage1.motion_only_epochs=1", "stage1.motion_lr_scale=1", *args.overrides])
    hooks = ([KillAt(args.kill_at)] if args.kill_at else []) + ([SaveWeights(args.weights)] if args.weights else [])
    data = TinyScene(args.samples)
    train_stage1(cfg, data, TinyScene(2), extra_hooks=hooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
