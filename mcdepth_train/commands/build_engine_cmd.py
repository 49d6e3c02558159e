"""``mcdepth-train build-engine``: a TensorRT engine from an exported model folder, on the target GPU."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcdepth_ros.contract import PRECISIONS

from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `mcdepth-train export` (model.onnx + model.json)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="engine precision (default: model.json's precision)")
    parser.add_argument("--height", type=int, default=None, help="expected input height; an error if the ONNX differs")
    parser.add_argument("--width", type=int, default=None, help="expected input width; an error if the ONNX differs")
    parser.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit in MiB (default 1024; less on small Jetsons)")
    parser.add_argument("--implicit-int8", action="store_true",
                        help="int8 from model.onnx with the entropy calibrator instead of the QDQ model.int8.onnx")
    parser.add_argument("--calib-dir", metavar="DIR", default=None, help="calibration frames for --implicit-int8 (default: data loaders' train split)")
    parser.add_argument("--calib-count", type=int, default=64, help="calibration images for --implicit-int8")
    parser.add_argument("--gpu-name", default=None, help="GPU name for the engine file name (default: asked from CUDA)")
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date engine exists")
    parser.add_argument("--prune", action="store_true", help="delete engines of other ONNX/TensorRT/GPU/precision in MODEL_DIR")
    add_config_arguments(parser)


def select_onnx(model_dir: Path, contract: dict, precision: str, implicit_int8: bool) -> Path:
    """The ONNX to build from, checked against the contract's hash (a stale model.json is an error)."""
    from ..io import file_sha256
    from ..export.contract import ContractError
    from ..export.onnx_export import INT8_NAME, ONNX_NAME

    use_qdq = precision == "int8" and not implicit_int8
    if use_qdq and not contract.get("int8"):
        raise ContractError(f"{model_dir}: no INT8 model; export with --precision int8 (or pass --implicit-int8 with --calib-dir)")
    name = INT8_NAME if use_qdq else ONNX_NAME
    path = model_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (export the model first: mcdepth-train export CKPT --out {model_dir})")
    expected = contract["int8"]["sha256"] if use_qdq else contract["onnx"]["sha256"]
    if file_sha256(path) != expected:
        raise ContractError(f"{path} does not match {model_dir / 'model.json'} (SHA-256 differs); re-export the model")
    return path


def run(args: argparse.Namespace) -> int:
    from ..export import tensorrt as trt_build
    from ..export.contract import ContractError, read_contract
    from ..export.onnx_export import ExportError, check_onnx_input_size

    model_dir = Path(args.model_dir)
    try:
        contract = read_contract(model_dir)
        precision = args.precision or contract.get("precision", "fp16")
        onnx_path = select_onnx(model_dir, contract, precision, args.implicit_int8)
        h, w = contract["input"]["shape"][2:]
        if (args.height and args.height != h) or (args.width and args.width != w):
            raise ExportError(f"{model_dir / 'model.json'} describes {h}x{w} input but {args.height or h}x{args.width or w} "
                              f"was requested; re-export at that size")
        check_onnx_input_size(onnx_path, h, w)
    except (ContractError, ExportError, FileNotFoundError) as exc:
        print(f"mcdepth-train build-engine: error: {exc}", file=sys.stderr)
        return 2

    try:
        trt = trt_build.import_tensorrt()
        gpu = args.gpu_name or trt_build.current_gpu_name()
    except trt_build.TensorRTUnavailable as exc:
        print(f"mcdepth-train build-engine: {exc}", file=sys.stderr)
        return 3
    key = trt_build.EngineKey.for_onnx(onnx_path, trt.__version__, gpu, precision)
    engine_path = model_dir / key.filename
    for stale in trt_build.stale_engines(model_dir, key):
        if args.prune:
            stale.unlink()
            print(f"removed stale engine {stale.name}")
        else:
            print(f"note: {stale.name} is for another ONNX/TensorRT/GPU/precision and will not be loaded (--prune removes it)")
    if engine_path.is_file() and not args.force:
        print(f"up to date: {engine_path}")
        return 0
    calibrator = None
    if precision == "int8" and args.implicit_int8:
        from ..export.images import dataset_samples, folder_images

        images = folder_images(args.calib_dir, args.calib_count) if args.calib_dir else \
            dataset_samples(config_from_args(args), "train", args.calib_count)
        cache = trt_build.calibration_cache_path(model_dir, key.onnx_sha, trt.__version__)
        calibrator = trt_build.make_entropy_calibrator(
            trt, trt_build.CalibrationBatcher(images, h, w, batch_size=1, limit=args.calib_count), cache)
        print(f"int8: entropy calibration (cache {cache})")
    try:
        trt_build.build_engine(
            onnx_path, engine_path, precision, workspace_mib=args.workspace_mib,
            timing_cache=trt_build.timing_cache_path(model_dir, trt.__version__, gpu),
            calibrator=calibrator, expected_hw=(h, w))
    except (RuntimeError, ValueError) as exc:  # EngineBuildError, EngineMismatchError, implicit int8 without images
        print(f"mcdepth-train build-engine: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {engine_path}")
    return 0
