"""Export a depth checkpoint to ``model.onnx`` + ``model.json`` (and ``model.int8.onnx``).

The graph is ``DepthInference``: RGB [1,3,H,W] in [0,1] -> depth [1,1,H,W], ImageNet
normalisation inside, opset 17, static shape. Nothing is written into the output folder until
the new files passed every check (onnx.checker, the TensorRT op allow-list, an ONNX Runtime run
matching PyTorch), so a failed export never replaces a good model. The same ``DepthInference``
is also written with ``torch.export`` (``model.pt2``) for the node's torch backend.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import torch

from mcdepth_ros.contract import PRECISIONS

from ..engine.checkpoint import load_checkpoint
from ..io import file_sha256
from ..networks.depth import DepthInference, DepthNet, build_depth_net
from .contract import SCALE_POLICIES, build_contract, git_commit, write_json_atomic
from .images import batched_inputs, synthetic_images

ONNX_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"
PROGRAM_NAME = "model.pt2"  # the same DepthInference, torch.export-ed, for the node's torch backend
CONTRACT_NAME = "model.json"
INPUT_NAME = "image"
OUTPUT_NAME = "depth"
PARITY_TOLERANCE = 1e-3  # max relative difference, ONNX Runtime fp32 vs PyTorch
ALLOWED_OPS_FILE = Path(__file__).with_name("trt_allowed_ops.txt")


class ExportError(RuntimeError):
    """An export that cannot be done or whose result failed a check (nothing was written)."""


# ----------------------------------------------------------------------------------- checks
def load_allowed_ops(path: str | Path = ALLOWED_OPS_FILE) -> set[str]:
    """ONNX op types TensorRT's ONNX parser supports and our graphs may use (one per line, '#' comments)."""
    ops = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ops.add(line)
    return ops


def graph_op_types(model: onnx.ModelProto) -> set[str]:
    """Every op type in the main graph and any subgraph, as 'Op' (default domain) or 'domain::Op'."""
    found: set[str] = set()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return found


def check_ops(model: onnx.ModelProto, allowed: set[str] | None = None, what: str = "graph") -> None:
    """Raise ExportError naming the op types TensorRT would reject (or that the allow-list excludes)."""
    allowed = load_allowed_ops() if allowed is None else allowed
    bad = sorted(graph_op_types(model) - allowed)
    if bad:
        raise ExportError(f"{what} uses op types outside the TensorRT allow-list ({ALLOWED_OPS_FILE.name}): {', '.join(bad)}")


def onnx_input_hw(path: str | Path) -> tuple[int, int]:
    """The static (H, W) of an exported graph's input; ExportError for a dynamic or non-image input."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    model = onnx.load(str(path), load_external_data=False)
    if len(model.graph.input) != 1:
        raise ExportError(f"{path}: expected one input, got {[i.name for i in model.graph.input]}")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(values) != 4 or None in values or values[:2] != [1, 3]:
        raise ExportError(f"{path}: input must have the static shape [1,3,H,W], got {values}")
    return values[2], values[3]


def check_onnx_input_size(path: str | Path, height: int | None, width: int | None) -> tuple[int, int]:
    """(H, W) of the ONNX at ``path``; ExportError when it differs from a requested size."""
    h, w = onnx_input_hw(path)
    if (height is not None and height != h) or (width is not None and width != w):
        raise ExportError(
            f"{path} takes {h}x{w} images but {height or h}x{width or w} was requested; "
            f"re-export at that size (mcdepth-train export CKPT --height {height or h} --width {width or w})")
    return h, w


def check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ExportError(f"--height/--width: must be positive multiples of 32 (the encoder's stride), got {height}x{width}")


# ------------------------------------------------------------------------------------ graph
def export_depth_graph(net: DepthNet, path: str | Path, height: int, width: int, opset: int = 17) -> onnx.ModelProto:
    """Trace ``DepthInference(net)`` to an ONNX file at ``path`` and fold its constant subgraphs.

    The TorchScript exporter is used: torch 2.14's dynamo exporter only writes opset >= 18 for
    this net (its opset-17 down-conversion has no adapter for reflection Pad).
    """
    model = DepthInference(net).eval()
    example = torch.rand(1, 3, height, width)
    with warnings.catch_warnings():
        # The shape checks in DepthNet.forward become trace constants; the shape is static anyway.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(model, (example,), str(path), opset_version=opset, dynamo=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
    graph = onnx.load(str(path))
    try:
        from onnxscript import optimizer

        # Folds the index arithmetic the tracer writes for each reflection pad into constants.
        graph = optimizer.optimize(graph)
    except Exception as exc:  # an optimiser bug must not block the export; the raw graph is valid
        warnings.warn(f"onnxscript optimiser skipped ({type(exc).__name__}: {exc}); keeping the traced graph")
    # The tracer annotates the output (and some intermediates) with symbolic, partly wrong dims
    # (it names N and H alike); drop them and state the static output shape the net produces.
    del graph.graph.value_info[:]
    out = graph.graph.output[0].type.tensor_type
    out.ClearField("shape")
    for size in (1, 1, height, width):
        out.shape.dim.add().dim_value = size
    graph = onnx.shape_inference.infer_shapes(graph)
    graph.doc_string = "mcdepth DepthInference: RGB [1,3,H,W] in [0,1] -> depth [1,1,H,W] (see model.json)"
    onnx.save(graph, str(path))
    return graph


def export_program(net: DepthNet, path: str | Path, height: int, width: int) -> dict:
    """``torch.export`` ``DepthInference(net)`` to a ``.pt2`` file at ``path``; check it against eager PyTorch.

    The node's torch backend runs this file with ``torch.export.load`` alone, so it needs no
    trainer code, config or checkpoint format (TorchScript, the older way, is deprecated in torch
    2.14). Returns ``{"max_rel_diff", "images"}`` of the check.
    """
    model = DepthInference(net).eval()
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(False), torch.no_grad():
        torch.export.save(torch.export.export(model, (example,)), str(path))
        expected, got = model(example), torch.export.load(str(path)).module()(example)
    max_rel = float(((got - expected).abs() / expected.abs().clamp_min(1e-12)).max())
    if got.shape != expected.shape or not max_rel <= PARITY_TOLERANCE:
        raise ExportError(f"the exported program differs from PyTorch by {max_rel:.3g} relative (tolerance {PARITY_TOLERANCE})")
    return {"max_rel_diff": max_rel, "images": 1}


def ort_session(path: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """An ONNX Runtime session (CPU unless ``providers`` says otherwise)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def parity(net: DepthNet, session, inputs: Iterable[np.ndarray]) -> dict:
    """ONNX Runtime vs PyTorch on each input: max relative and absolute depth difference."""
    model = DepthInference(net).eval()
    max_rel = max_abs = 0.0
    count = 0
    for x in inputs:
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {list(got.shape)} differs from PyTorch's {list(expected.shape)}")
        diff = np.abs(got.astype(np.float64) - expected)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(expected), 1e-12)).max()))
        count += 1
    return {"max_rel_diff": max_rel, "max_abs_diff": max_abs, "images": count}


def load_depth_checkpoint(checkpoint_path: str | Path, model_key: str = "depth"):
    """(DepthNet in eval mode, its config, the checkpoint payload); CheckpointError when unusable."""
    payload = load_checkpoint(checkpoint_path)
    net, cfg = build_depth_net(payload, model_key)
    return net.eval(), cfg, payload


# ----------------------------------------------------------------------------------- export
def export_onnx(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    height: int | None = None,
    width: int | None = None,
    opset: int = 17,
    precision: str = "fp32",
    calibration_images: Iterable | None = None,
    eval_images: Iterable | None = None,
    parity_images: Iterable | None = None,
    scale_policy: str = "relative",
    scale_factor: float = 1.0,
    model_key: str = "depth",
    calibration_limit: int = 64,
    calibrate_method: str = "entropy",
) -> dict[str, Path]:
    """Export a checkpoint's depth net to ``out_dir`` (model.onnx, model.json, model.int8.onnx for int8).

    Args:
        checkpoint_path: an mcdepth checkpoint holding a ``model_key`` depth net.
        out_dir: the model folder, by convention ``trt_engines/NAME/``; created if missing.
        height, width: static input size (multiples of 32); default: the checkpoint's ``export`` config.
        opset: ONNX opset (17 is what the contract and TensorRT 8.6+/10 expect).
        precision: engine precision recorded in the contract; 'int8' also writes the QDQ model.
        calibration_images: images (HxWx3 uint8/float RGB, [3,H,W] tensors or data-loader samples)
            for INT8 calibration; required for 'int8'.
        eval_images: images (or samples with ``depth_gt``) to measure the INT8 accuracy cost on;
            default: every 4th calibration image, held out of calibration.
        parity_images: extra real images for the ONNX Runtime vs PyTorch check (two synthetic
            textured images are always used).
        scale_policy, scale_factor: written to ``scale`` in model.json (see docs/contract.md).
    Returns:
        {"onnx": path, "json": path, "torch_program": path} plus "int8_onnx" for int8, and "dir".
    """
    if precision not in PRECISIONS:
        raise ExportError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if scale_policy not in SCALE_POLICIES or not scale_factor > 0:
        raise ExportError(f"scale: policy must be one of {SCALE_POLICIES} and factor > 0, got {scale_policy!r}, {scale_factor}")
    if precision == "int8" and calibration_images is None:
        raise ExportError("precision int8 needs calibration images (--calib-dir DIR, or a data config for the loaders)")
    checkpoint_path = Path(checkpoint_path)
    net, cfg, payload = load_depth_checkpoint(checkpoint_path, model_key)
    height = int(height or cfg.export.height)
    width = int(width or cfg.export.width)
    check_size(height, width)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--out: {out_dir} exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        onnx_tmp = staging / ONNX_NAME
        graph = export_depth_graph(net, onnx_tmp, height, width, opset)
        onnx.checker.check_model(graph, full_check=True)
        check_ops(graph, what=str(onnx_tmp.name))
        check_onnx_input_size(onnx_tmp, height, width)
        session = ort_session(onnx_tmp)
        checks = synthetic_images(height, width, 2, seed=1234)
        parity_inputs = list(batched_inputs(checks, height, width))
        if parity_images is not None:
            parity_inputs += list(batched_inputs(parity_images, height, width))
        match = parity(net, session, parity_inputs)
        if match["max_rel_diff"] > PARITY_TOLERANCE:
            raise ExportError(f"ONNX Runtime differs from PyTorch by {match['max_rel_diff']:.3g} relative "
                              f"(tolerance {PARITY_TOLERANCE}); nothing was written")
        match["tolerance"] = PARITY_TOLERANCE

        int8_info = None
        if precision == "int8":
            from .int8 import quantize_and_measure

            int8_info = quantize_and_measure(
                onnx_tmp, staging / INT8_NAME, calibration_images, eval_images, height, width,
                limit=calibration_limit, method=calibrate_method)
            check_ops(onnx.load(str(staging / INT8_NAME)), what=INT8_NAME)

        program_check = export_program(net, staging / PROGRAM_NAME, height, width)
        program = {"file": PROGRAM_NAME, "sha256": file_sha256(staging / PROGRAM_NAME),
                   "torch_version": torch.__version__.split("+")[0], "parity": program_check}

        contract = build_contract(
            height=height, width=width, min_depth=net.min_depth, max_depth=net.max_depth,
            checkpoint=str(checkpoint_path), checkpoint_sha256=file_sha256(checkpoint_path),
            stage=str(payload.get("stage", "")), opset=opset, onnx_sha256=file_sha256(onnx_tmp),
            git_commit=git_commit(), input_name=INPUT_NAME, output_name=OUTPUT_NAME,
            scale_policy=scale_policy, scale_factor=scale_factor, precision=precision,
            parity=match, int8=int8_info, torch_program=program)
        write_json_atomic(staging / CONTRACT_NAME, contract)

        # Every check passed: move the files in, the contract last (it names the ONNX's hash).
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"dir": out_dir, "onnx": out_dir / ONNX_NAME, "json": out_dir / CONTRACT_NAME,
                 "torch_program": out_dir / PROGRAM_NAME}
        os.replace(onnx_tmp, paths["onnx"])
        os.replace(staging / PROGRAM_NAME, paths["torch_program"])
        if int8_info is not None:
            paths["int8_onnx"] = out_dir / INT8_NAME
            os.replace(staging / INT8_NAME, paths["int8_onnx"])
        elif (out_dir / INT8_NAME).exists():
            (out_dir / INT8_NAME).unlink()  # an INT8 model of the previous export no longer matches model.onnx
        os.replace(staging / CONTRACT_NAME, paths["json"])
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_run(cfg, run_dir: Path) -> dict:
    """The pipeline's export step: the final stage-3 net of ``run_dir`` -> ``RUN/export/``."""
    final = json.loads((Path(run_dir) / "stage3" / "summary.json").read_text())["final"]
    e = cfg.export
    return {k: str(v) for k, v in export_onnx(final, Path(run_dir) / "export", e.height, e.width, e.opset, e.precision).items()}
