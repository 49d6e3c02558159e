"""``mcdepth-train``: the offline trainer's command line.

Each subcommand lives in its own module and is imported only when run, so ``--help`` is instant
and a missing optional part fails only the command that needs it. A subcommand module provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# A command whose module is STAGE runs that one stage of a run (commands.common.stage_command):
# they share their arguments and behaviour, so they need no module of their own.
STAGE = None

# name -> (module implementing it, or STAGE; one-line help). Order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("mcdepth_train.commands.config_cmd", "Print the resolved config of a run, or every default with its meaning."),
    "calibrate": ("mcdepth_train.commands.calibrate_cmd", "Camera intrinsics + distortion from chessboard images (for folder/video input)."),
    "synth": ("mcdepth_train.commands.synth_cmd", "Generate synthetic dynamic driving scenes (KITTI-like folder and rosbag2)."),
    "pretrain-motion": ("mcdepth_train.commands.pretrain_motion_cmd", "Pre-train the motion net on the generator's exact residual motion (weights for model.motion_weights)."),
    "stage1": ("mcdepth_train.commands.stage1_cmd", "Stage 1: train scene depth + pose + pixel-wise motion (paper 4.1)."),
    "masks": (STAGE, "Moving/static object instances and ground masks from stage 1 (paper 4.3)."),
    "objects": (STAGE, "Stage 2a: object network, per-object depth and rigid motion (paper 4.2)."),
    "dsa": (STAGE, "Stage 2b: depth scale alignment net, trained on static objects (paper 4.2)."),
    "pseudo": (STAGE, "Write scale-consistent pseudo depth labels (paper Eq. 5)."),
    "stage3": (STAGE, "Stage 3: final depth net with the pseudo-label loss, then self-training (paper 4.4, 5.3)."),
    "run": ("mcdepth_train.commands.run_cmd", "Run the whole pipeline, resumable, with a manifest of every stage."),
    "demo": ("mcdepth_train.commands.demo_cmd", "Synthetic rosbag -> whole pipeline -> evaluation -> export, on CPU."),
    "eval": ("mcdepth_train.commands.eval_cmd", "Per-region (dynamic/static/all) depth metrics of every stage."),
    "export": ("mcdepth_train.commands.export_cmd", "Export a depth checkpoint to model.onnx + model.json for the ROS node."),
    "build-engine": ("mcdepth_train.commands.build_engine_cmd", "Build a TensorRT engine from an exported model (on the target GPU)."),
}

DESCRIPTION = """\
mcdepth-train: scale-consistent self-supervised monocular depth, trained offline from video.

The pipeline (each step a subcommand; `run` chains them and resumes where it stopped):
  stage1 -> masks -> objects -> dsa -> pseudo -> stage3 -> eval -> export

Every subcommand takes --config FILE (repeatable) and dotted overrides such as
`model.encoder=resnet50 run.device=cuda`. `mcdepth-train config --defaults` lists every key.
Bad data or config is reported as one `error: ...` line (exit 2); `--debug` shows the traceback.
"""


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    return argparse.ArgumentParser(
        prog="mcdepth-train",
        description=DESCRIPTION,
        epilog="subcommands:\n" + "\n".join(lines) + "\n\n`mcdepth-train COMMAND --help` explains each one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _user_error(exc: BaseException) -> bool:
    """Bad input the user can fix (config, data): one line, no traceback. Anything else is a bug."""
    from .config import ConfigError
    from .data.errors import DataError

    return isinstance(exc, (ConfigError, DataError))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line: show the traceback of data and config errors
    argv = [a for a in argv if a != "--debug"]
    top = _top_parser()
    top.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command '{name}' (choose from: {', '.join(COMMANDS)})")
    module_name, help_ = COMMANDS[name]
    if module_name is STAGE:
        from .commands.common import stage_command

        add_arguments, run = stage_command(name)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                print(f"mcdepth-train {name}: not available in this version yet.", file=sys.stderr)
                return 2
            raise
        add_arguments, run = module.add_arguments, module.run
    parser = argparse.ArgumentParser(prog=f"mcdepth-train {name}", description=help_)
    add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print(f"\nmcdepth-train {name}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug or not _user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
