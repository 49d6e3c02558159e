"""Trainer-side TensorRT: cache names, calibration batching, the no-TensorRT path, a real build on a GPU.

Engine naming and staleness are the contract's and the shared builder's: tests/ros/test_contract.py
and tests/ros/test_engine_build.py.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mcdepth_train.data import keys
from mcdepth_train.export.tensorrt import (CalibrationBatcher, EngineKey, TensorRTUnavailable, calibration_cache_path,
                                           check_engine, import_tensorrt, timing_cache_path)

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
SHA = "0123456789abcdef"


def test_cache_paths_depend_on_gpu_and_version(tmp_path):
    assert timing_cache_path(tmp_path, "10.3.0", "NVIDIA GeForce RTX 4090").name == "trt10.3.0_NVIDIA-GeForce-RTX-4090.timing_cache"
    assert calibration_cache_path(tmp_path, SHA + "ffff", "10.3.0").name == f"{SHA}_trt10.3.0.calib_cache"


def test_calibration_batcher_batches_and_drops_the_partial_batch():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 100, 3), dtype=np.uint8) for _ in range(10)]
    batcher = CalibrationBatcher(images, 32, 64, batch_size=4)
    batches = list(batcher)
    assert len(batches) == 2 and batcher.images_used == 8
    for b in batches:
        assert b.shape == (4, 3, 32, 64) and b.dtype == np.float32 and b.flags["C_CONTIGUOUS"]
        assert 0.0 <= b.min() and b.max() <= 1.0
    assert batcher.nbytes == batches[0].nbytes
    flat = np.full((32, 64, 3), 255, np.uint8)
    samples = [{keys.color(0, 0): np.full((3, 32, 64), 0.5, np.float32)}, flat, flat]
    limited = list(CalibrationBatcher(samples, 32, 64, batch_size=1, limit=2))
    assert len(limited) == 2
    assert np.allclose(limited[0], 0.5) and np.allclose(limited[1], 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        CalibrationBatcher(images, 32, 64, batch_size=0)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here; this checks the message shown without it")
def test_without_tensorrt_the_error_says_how_to_install():
    with pytest.raises(TensorRTUnavailable) as info:
        import_tensorrt()
    text = str(info.value)
    assert "not installed" in text and "Jetson" in text and "python3-libnvinfer" in text and "pip install tensorrt" in text


@pytest.mark.skipif(not HAS_TRT, reason="TensorRT is not installed on this machine (no registry wheel installs here; "
                                        "build engines on a Jetson/desktop GPU with TensorRT)")
def test_build_fp16_engine_on_a_gpu(tmp_path):
    """The engine `build-engine` writes, run by the node's backend, agrees with ONNX Runtime."""
    from tests.train.export.export_helpers import make_checkpoint

    from mcdepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from mcdepth_ros.backends.tensorrt_backend import TensorRTBackend
    from mcdepth_ros.contract import load_contract
    from mcdepth_train.cli import main
    from mcdepth_train.export.onnx_export import export_onnx
    from mcdepth_train.export.tensorrt import current_gpu_name

    trt = import_tensorrt()
    model_dir = tmp_path / "m"
    paths = export_onnx(make_checkpoint(tmp_path / "c.pt"), model_dir)
    assert main(["build-engine", str(model_dir), "--precision", "fp16"]) == 0
    key = EngineKey.for_onnx(paths["onnx"], trt.__version__, current_gpu_name(), "fp16")
    engine = model_dir / key.filename
    assert check_engine(engine, key) == engine
    assert timing_cache_path(model_dir, trt.__version__, current_gpu_name()).is_file()
    contract = load_contract(model_dir)
    backend = TensorRTBackend(contract, precision="fp16")
    assert backend.engine_path == engine and not backend.built  # the node loads what build-engine wrote
    x = np.random.default_rng(0).random(contract.input_shape, dtype=np.float32)
    depth_trt = backend.infer(x)
    depth_ort = OnnxRuntimeBackend(contract, device="cpu").infer(x)
    assert depth_trt.shape == depth_ort.shape and np.isfinite(depth_trt).all()
    rel = np.abs(depth_trt - depth_ort) / depth_ort
    assert float(np.median(rel)) < 5e-3 and float(rel.max()) < 5e-2  # fp16 against fp32
