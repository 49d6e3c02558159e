"""INT8 QDQ export: runs on ONNX Runtime CPU, fits TensorRT explicit quantisation, accuracy cost measured."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from tests.train.export.export_helpers import HEIGHT, KITTI_FRAMES, WIDTH, make_checkpoint
from onnx import numpy_helper

from mcdepth_train.data import keys
from mcdepth_train.io import file_sha256
from mcdepth_train.export.contract import read_contract
from mcdepth_train.export.images import folder_images, synthetic_images
from mcdepth_train.export.int8 import float_head_nodes, int8_accuracy
from mcdepth_train.export.onnx_export import export_onnx, graph_op_types, load_allowed_ops, ort_session


@pytest.fixture(scope="module")
def exported_int8(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("int8")
    ckpt = make_checkpoint(root / "ckpt.pt", seed=3)
    calib = list(folder_images(shared_data / KITTI_FRAMES, 8))
    paths = export_onnx(ckpt, root / "m", precision="int8", calibration_images=calib, calibrate_method="minmax")
    return paths


def test_int8_model_is_qdq_within_the_allow_list(exported_int8):
    model = onnx.load(str(exported_int8["int8_onnx"]))
    onnx.checker.check_model(model, full_check=True)
    ops = graph_op_types(model)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert ops <= load_allowed_ops(), sorted(ops - load_allowed_ops())
    # TensorRT explicit quantisation needs int8 with zero points of 0 (symmetric).
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_int8_keeps_the_depth_head_in_float(exported_int8):
    model = onnx.load(str(exported_int8["int8_onnx"]))
    producers = {o: n for n in model.graph.node for o in n.output}
    sigmoid = next(n for n in model.graph.node if n.op_type == "Sigmoid")
    head_conv = producers[sigmoid.input[0]]
    assert head_conv.op_type == "Conv"  # not a DequantizeLinear: the head's output stays float
    head = float_head_nodes(onnx.load(str(exported_int8["onnx"])))
    assert head[-1].endswith("Conv") and any("Sigmoid" in name for name in head)


def test_int8_runs_on_onnxruntime_cpu_close_to_fp32(exported_int8):
    x = np.random.default_rng(0).random((1, 3, HEIGHT, WIDTH), dtype=np.float32)
    d8 = ort_session(exported_int8["int8_onnx"]).run(None, {"image": x})[0]
    d32 = ort_session(exported_int8["onnx"]).run(None, {"image": x})[0]
    assert d8.shape == d32.shape == (1, 1, HEIGHT, WIDTH)
    rel = np.abs(d8 - d32) / d32
    assert np.median(rel) < 0.05


def test_contract_records_int8_accuracy(exported_int8):
    c = read_contract(exported_int8["dir"])
    assert c["precision"] == "int8"
    q = c["int8"]
    assert q["file"] == "model.int8.onnx" and q["sha256"] == file_sha256(exported_int8["int8_onnx"])
    assert q["quant_format"] == "QDQ" and q["calibration_images"] == 6  # 8 frames, every 4th held out
    acc = q["accuracy"]
    print(f"int8 AbsRel vs fp32: {acc['abs_rel_vs_fp32']:.5f} on {acc['eval_images']} held-out KITTI frames")
    assert acc["eval_images"] == 2 and acc["held_out_from_calibration"]
    assert 0.0 <= acc["abs_rel_vs_fp32"] < 0.05


def test_int8_accuracy_against_ground_truth(exported_int8):
    s32 = ort_session(exported_int8["onnx"])
    samples = []
    for i, image in enumerate(synthetic_images(HEIGHT, WIDTH, 2, seed=7)):
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        d32 = s32.run(None, {"image": x[None].numpy()})[0][0]
        ramp = np.linspace(0.8, 1.2, WIDTH, dtype=np.float32)[None, None]
        samples.append({keys.color(0, 0): x, keys.DEPTH_GT: torch.from_numpy(d32 * 3.0 * ramp)})
    acc = int8_accuracy(exported_int8["onnx"], exported_int8["int8_onnx"], samples, HEIGHT, WIDTH)
    assert acc["gt_images"] == 2 and acc["eval_images"] == 2
    assert 0.0 < acc["abs_rel_fp32"] < 0.2  # the ramp is what median scaling cannot remove
    assert abs(acc["abs_rel_int8"] - acc["abs_rel_fp32"]) < 0.02
    assert acc["abs_rel_change"] == pytest.approx((acc["abs_rel_int8"] - acc["abs_rel_fp32"]) / acc["abs_rel_fp32"])


def test_onnxruntime_runs_every_int8_conv_as_an_integer_kernel(exported_int8, tmp_path):
    """Shared quantizers would leave the ResNet blocks' convolutions in float on x86 (see int8.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.log_severity_level = 3
    ort.InferenceSession(str(exported_int8["int8_onnx"]), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearConv") == 30
    assert ops.count("Conv") + ops.count("FusedConv") == 1  # only the float depth head
