"""``mcdepth-train export``: a depth checkpoint -> model.onnx + model.json (+ model.int8.onnx)."""
from __future__ import annotations

import argparse
import sys

from mcdepth_ros.contract import PRECISIONS, SCALE_POLICIES

from ..config import ConfigError, config_from_dict
from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint holding a depth net (e.g. runs/x/stage3/last.pt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="model folder to write, by convention trt_engines/NAME/")
    parser.add_argument("--height", type=int, default=None, help="static input height (multiple of 32); default: the checkpoint's export.height")
    parser.add_argument("--width", type=int, default=None, help="static input width (multiple of 32); default: the checkpoint's export.width")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="engine precision written to model.json; int8 also writes the QDQ model.int8.onnx "
                             "(default: the config's export.precision)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the config's export.opset, 17)")
    parser.add_argument("--calib-dir", metavar="DIR", default=None,
                        help="INT8 calibration frames (PNG/JPEG, searched recursively); default: the data loaders' train split")
    parser.add_argument("--calib-count", type=int, default=64, help="INT8 calibration images (default 64)")
    parser.add_argument("--calib-method", choices=("entropy", "minmax", "percentile"), default="entropy",
                        help="INT8 activation range calibration (default entropy, like TensorRT's)")
    parser.add_argument("--parity-dir", metavar="DIR", default=None,
                        help="real frames for the ONNX Runtime vs PyTorch check (default: --calib-dir, plus synthetic images)")
    parser.add_argument("--scale-policy", choices=SCALE_POLICIES, default="relative",
                        help="how the node scales depth (model.json scale.policy)")
    parser.add_argument("--scale-factor", type=float, default=1.0, help="fixed scale, or the camera_height policy's starting value")
    parser.add_argument("--model-key", default="depth", help="name of the depth net in the checkpoint (default 'depth')")
    add_config_arguments(parser)


def _config(args: argparse.Namespace, payload: dict):
    """The data/export config: --config/overrides when given, else the one saved in the checkpoint."""
    if args.config or args.overrides:
        return config_from_args(args)
    try:
        return config_from_dict(payload["config"])
    except ConfigError as exc:
        raise ConfigError(f"{args.checkpoint}: its saved config does not fit this version ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import CheckpointError, load_checkpoint
    from ..export.contract import ContractError
    from ..export.images import dataset_samples, folder_images
    from ..export.onnx_export import ExportError, export_onnx

    try:
        payload = load_checkpoint(args.checkpoint)
        cfg = _config(args, payload)
        precision = args.precision or cfg.export.precision
        calibration = eval_images = None
        if precision == "int8":
            if args.calib_dir:
                calibration = folder_images(args.calib_dir, args.calib_count)
            else:
                calibration = dataset_samples(cfg, "train", args.calib_count)
                try:
                    eval_images = list(dataset_samples(cfg, "val", max(8, args.calib_count // 4)))
                except (FileNotFoundError, ValueError, KeyError):
                    eval_images = None  # no validation split: hold out calibration frames instead
        parity_dir = args.parity_dir or args.calib_dir
        parity_images = folder_images(parity_dir, 4) if parity_dir else None
        del payload  # export_onnx reloads it; no need to keep two copies of the weights
        paths = export_onnx(
            args.checkpoint, args.out, height=args.height or cfg.export.height, width=args.width or cfg.export.width,
            opset=args.opset or cfg.export.opset, precision=precision, calibration_images=calibration, eval_images=eval_images,
            parity_images=parity_images, scale_policy=args.scale_policy, scale_factor=args.scale_factor,
            model_key=args.model_key, calibration_limit=args.calib_count, calibrate_method=args.calib_method)
    except (CheckpointError, ExportError, ContractError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"mcdepth-train export: error: {exc}", file=sys.stderr)
        return 2
    import json

    contract = json.loads(paths["json"].read_text(encoding="utf-8"))
    h, w = contract["input"]["shape"][2:]
    par = contract["onnx"]["parity"]
    print(f"wrote {paths['onnx']} ({h}x{w}, opset {contract['onnx']['opset']}) and {paths['json']}")
    print(f"parity ONNX Runtime vs PyTorch: max relative difference {par['max_rel_diff']:.2e} over {par['images']} images")
    if "int8_onnx" in paths:
        acc = contract["int8"]["accuracy"]
        line = f"wrote {paths['int8_onnx']}: AbsRel vs fp32 {acc['abs_rel_vs_fp32']:.4f} on {acc['eval_images']} images"
        if "abs_rel_change" in acc:
            line += f"; AbsRel vs ground truth {acc['abs_rel_fp32']:.4f} -> {acc['abs_rel_int8']:.4f} ({100 * acc['abs_rel_change']:+.2f}%)"
        print(line)
    print(f"next, on the target GPU: mcdepth-train build-engine {paths['dir']} --precision {precision}")
    return 0
