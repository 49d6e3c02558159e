"""INT8 for ONNX Runtime (CPU) and TensorRT from one artefact: a statically quantised QDQ ONNX.

Activations are int8 symmetric per tensor and weights int8 symmetric per output channel: the
form TensorRT builds as an explicitly quantised engine (it requires zero points of 0) and ONNX
Runtime's CPU provider fuses into integer kernels. The depth head (last conv, sigmoid and the
disparity-to-depth arithmetic) stays in float: an 8-bit sigmoid would quantise disparity to
1/127 steps, a large depth error far away, for almost no speed.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import onnx
import onnx.numpy_helper
from tqdm import tqdm

from ..data import keys
from ..eval.metrics import evaluate_image
from .images import to_network_input

CALIBRATE_METHODS = ("entropy", "minmax", "percentile")


def float_head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes from the graph output back to (and including) the nearest Conv."""
    producers = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    frontier = [o.name for o in model.graph.output]
    seen: set[str] = set()
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if not node.name:
            raise ValueError(f"model: node of type {node.op_type} has no name; cannot exclude it from quantisation")
        names.append(node.name)
        if node.op_type != "Conv":
            frontier.extend(node.input)
    return names


def untie_shared_quantizers(model: onnx.ModelProto) -> int:
    """Give each duplicate activation QuantizeLinear (same input, scale, zero point) its own scale.

    Why: ONNX Runtime's x86 CPU provider runs int8 convolutions as u8s8, converting each Q->DQ
    pair from int8 to uint8; it can only convert a Q that feeds a single DQ. A ResNet block
    output feeds both the next conv and the residual Add, and even with ``DedicatedQDQPair``
    ONNX Runtime's common-subexpression elimination merges the identical Q nodes back into one,
    leaving 11 of 30 convolutions in float. A scale one float32 ulp apart per duplicate (a
    1e-7 relative change) keeps the pairs separate; TensorRT treats every pair on its own anyway.
    Returns the number of quantizers changed.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    groups: dict[tuple, list] = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            groups.setdefault((node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else ""), []).append(node)
    changed = 0
    for (_, scale_name, _), nodes in groups.items():
        value = onnx.numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        for k, q in enumerate(nodes[1:], start=1):
            value = np.nextafter(value, np.float32(np.inf), dtype=np.float32)
            name = f"{scale_name}_untied{changed}"
            graph.initializer.append(onnx.numpy_helper.from_array(value.copy(), name))
            q.input[1] = name
            for dq in consumers.get(q.output[0], []):
                if dq.op_type == "DequantizeLinear":
                    dq.input[1] = name
            changed += 1
    return changed


def _reader(inputs: list[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class ImageReader(CalibrationDataReader):
        """Feeds prepared [1,3,H,W] inputs to ONNX Runtime's calibrator, with a progress bar."""

        def __init__(self):
            self._it = iter(tqdm(inputs, desc="int8 calibration", unit="img", leave=False))

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    return ImageReader()


def quantize_qdq(fp32_path: str | Path, int8_path: str | Path, calibration_inputs: list[np.ndarray],
                 input_name: str = "image", method: str = "entropy") -> dict:
    """Write the QDQ INT8 model of ``fp32_path`` to ``int8_path``, calibrated on ``calibration_inputs``.

    Args:
        calibration_inputs: float32 [1,3,H,W] network inputs (see images.to_network_input).
        method: ONNX Runtime calibration: 'entropy' (like TensorRT's), 'minmax' or 'percentile'.
    Returns: a description for model.json's ``int8`` field (without accuracy).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATE_METHODS:
        raise ValueError(f"method: expected one of {CALIBRATE_METHODS}, got {method!r}")
    if not calibration_inputs:
        raise ValueError("calibration_inputs: no calibration images")
    model = onnx.load(str(fp32_path))
    head = float_head_nodes(model)
    calibrate = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                 "percentile": CalibrationMethod.Percentile}[method]
    # ONNX Runtime's calibrator prints progress to stdout; keep stdout for our own tables/JSON.
    with contextlib.redirect_stdout(sys.stderr):
        quantize_static(
            str(fp32_path), str(int8_path), _reader(calibration_inputs, input_name),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=calibrate, nodes_to_exclude=head,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           # One Q/DQ pair per consumer (see untie_shared_quantizers).
                           "DedicatedQDQPair": True,
                           # Bound the calibrator's memory: flush collected activations every 4 images.
                           "CalibMaxIntermediateOutputs": 4},
        )
    quantized = onnx.load(str(int8_path))
    untie_shared_quantizers(quantized)
    onnx.checker.check_model(quantized, full_check=True)
    onnx.save(quantized, str(int8_path))
    return {"file": Path(int8_path).name, "quant_format": "QDQ",
            "activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel",
            "calibration_method": method, "calibration_images": len(calibration_inputs),
            "float_nodes": head, "dedicated_qdq_pairs": True}


def _gt_of(item) -> np.ndarray | None:
    if isinstance(item, dict) and keys.DEPTH_GT in item:
        gt = item[keys.DEPTH_GT]
        return np.squeeze(gt.detach().cpu().numpy() if hasattr(gt, "detach") else np.asarray(gt)).astype(np.float32)
    return None


def int8_accuracy(fp32_path: str | Path, int8_path: str | Path, eval_items: Iterable, height: int, width: int,
                  input_name: str = "image") -> dict:
    """AbsRel cost of INT8: against the fp32 model's depth, and against ground truth where given.

    Args:
        eval_items: images, or data-loader samples (``("color",0,0)`` and optional ``depth_gt``).
    Returns: ``abs_rel_vs_fp32`` (median-scaled AbsRel of INT8 depth taking fp32 depth as truth,
        averaged over images), ``eval_images``, and with ground truth ``abs_rel_fp32``,
        ``abs_rel_int8`` and ``abs_rel_change`` ((int8 - fp32) / fp32).
    """
    from .onnx_export import ort_session

    s32, s8 = ort_session(fp32_path), ort_session(int8_path)
    vs_fp32, gt_32, gt_8 = [], [], []
    for item in eval_items:
        image = item[keys.color(0, 0)] if isinstance(item, dict) else item
        x = to_network_input(image, height, width)
        d32 = s32.run(None, {input_name: x})[0][0, 0]
        d8 = s8.run(None, {input_name: x})[0][0, 0]
        metrics, _ = evaluate_image(d8, d32, min_depth=0.0, max_depth=np.inf)
        vs_fp32.append(metrics["all"]["abs_rel"])
        gt = _gt_of(item)
        if gt is not None:
            size = (gt.shape[1], gt.shape[0])
            m32, _ = evaluate_image(cv2.resize(d32, size, interpolation=cv2.INTER_LINEAR), gt)
            m8, _ = evaluate_image(cv2.resize(d8, size, interpolation=cv2.INTER_LINEAR), gt)
            if m32["all"] is not None and m8["all"] is not None:
                gt_32.append(m32["all"]["abs_rel"])
                gt_8.append(m8["all"]["abs_rel"])
    if not vs_fp32:
        raise ValueError("eval_items: no evaluation images")
    out = {"eval_images": len(vs_fp32), "abs_rel_vs_fp32": float(np.mean(vs_fp32))}
    if gt_32:
        a32, a8 = float(np.mean(gt_32)), float(np.mean(gt_8))
        out.update(abs_rel_fp32=a32, abs_rel_int8=a8, abs_rel_change=(a8 - a32) / a32, gt_images=len(gt_32))
    return out


def quantize_and_measure(fp32_path: str | Path, int8_path: str | Path, calibration_images: Iterable,
                         eval_images: Iterable | None, height: int, width: int, limit: int = 64, method: str = "entropy") -> dict:
    """Quantise with up to ``limit`` calibration images and measure the accuracy cost.

    Without ``eval_images`` every 4th calibration image is held out of calibration and used to
    measure (all of them when there are fewer than 4, flagged ``eval_on_calibration_images``).
    Returns model.json's ``int8`` field.
    """
    items = []
    for i, item in enumerate(calibration_images):
        if i >= limit:
            break
        items.append(item)
    if not items:
        raise ValueError("calibration_images: the calibration source yielded no images")
    inputs = [to_network_input(it[keys.color(0, 0)] if isinstance(it, dict) else it, height, width) for it in items]
    held_out = False
    if eval_images is None:
        if len(items) >= 4:
            eval_images = items[::4]
            inputs = [x for i, x in enumerate(inputs) if i % 4]
            held_out = True
        else:
            eval_images = items
    info = quantize_qdq(fp32_path, int8_path, inputs, method=method)
    info["accuracy"] = int8_accuracy(fp32_path, int8_path, eval_images, height, width)
    info["accuracy"]["eval_on_calibration_images"] = eval_images is items
    info["accuracy"]["held_out_from_calibration"] = held_out
    from ..io import file_sha256

    info["sha256"] = file_sha256(int8_path)
    return info
