"""TensorRT engine naming, staleness, calibration batching and the no-TensorRT path (no GPU needed)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mcdepth_train.data import keys
from mcdepth_train.export.tensorrt import (CalibrationBatcher, EngineKey, EngineMismatchError, TensorRTUnavailable,
                                           calibration_cache_path, check_engine, import_tensorrt, sanitize_gpu_name,
                                           stale_engines, timing_cache_path)

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
SHA = "0123456789abcdef"


def test_gpu_names_are_sanitised():
    assert sanitize_gpu_name("NVIDIA GeForce RTX 4090") == "NVIDIA-GeForce-RTX-4090"
    assert sanitize_gpu_name(" Orin (nvgpu) ") == "Orin-nvgpu"
    assert sanitize_gpu_name("NVIDIA H200_NVL") == "NVIDIA-H200-NVL"
    with pytest.raises(ValueError, match="gpu name"):
        sanitize_gpu_name(" () ")


def test_engine_name_round_trip_and_every_component_changes_it():
    key = EngineKey(SHA, "10.3.0", "Orin", "fp16")
    assert key.filename == f"{SHA}_trt10.3.0_Orin_fp16.engine"
    assert EngineKey.parse(key.filename) == key
    names = {key.filename, EngineKey("f" * 16, "10.3.0", "Orin", "fp16").filename,
             EngineKey(SHA, "10.4.0", "Orin", "fp16").filename, EngineKey(SHA, "10.3.0", "NVIDIA-H200", "fp16").filename,
             EngineKey(SHA, "10.3.0", "Orin", "int8").filename}
    assert len(names) == 5
    with pytest.raises(ValueError, match="precision"):
        EngineKey(SHA, "10.3.0", "Orin", "int4")
    with pytest.raises(ValueError, match="onnx_sha"):
        EngineKey("xyz", "10.3.0", "Orin", "fp16")


def test_engine_key_follows_the_onnx_bytes(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"graph v1")
    a = EngineKey.for_onnx(onnx_path, "10.3.0", "NVIDIA GeForce RTX 4090", "fp16")
    assert a.gpu == "NVIDIA-GeForce-RTX-4090" and len(a.onnx_sha) == 16
    onnx_path.write_bytes(b"graph v2")
    b = EngineKey.for_onnx(onnx_path, "10.3.0", "NVIDIA GeForce RTX 4090", "fp16")
    assert a.onnx_sha != b.onnx_sha and a.filename != b.filename


def test_check_engine_names_what_differs(tmp_path):
    here = EngineKey(SHA, "10.3.0", "Orin", "fp16")
    good = tmp_path / here.filename
    good.write_bytes(b"engine")
    assert check_engine(good, here) == good
    other_gpu = tmp_path / EngineKey(SHA, "10.3.0", "NVIDIA-H200", "fp16").filename
    other_gpu.write_bytes(b"engine")
    with pytest.raises(EngineMismatchError, match=r"GPU 'NVIDIA-H200' \(this machine/model: 'Orin'\).*rebuild"):
        check_engine(other_gpu, here)
    other_trt = tmp_path / EngineKey(SHA, "8.6.1", "Orin", "fp16").filename
    other_trt.write_bytes(b"engine")
    with pytest.raises(EngineMismatchError, match=r"TensorRT version '8.6.1'"):
        check_engine(other_trt, here)
    foreign = tmp_path / "model.engine"
    foreign.write_bytes(b"engine")
    with pytest.raises(EngineMismatchError, match="not an mcdepth engine name"):
        check_engine(foreign, here)
    with pytest.raises(FileNotFoundError, match="engine not found"):
        check_engine(tmp_path / "none.engine", here)
    assert stale_engines(tmp_path, here) == sorted([other_gpu, other_trt, foreign])


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
    from tests.train.export.export_helpers import make_checkpoint

    from mcdepth_train.export.onnx_export import export_onnx
    from mcdepth_train.export.tensorrt import build_engine, current_gpu_name

    trt = import_tensorrt()
    paths = export_onnx(make_checkpoint(tmp_path / "c.pt"), tmp_path / "m")
    key = EngineKey.for_onnx(paths["onnx"], trt.__version__, current_gpu_name(), "fp16")
    engine = build_engine(paths["onnx"], tmp_path / "m" / key.filename, "fp16",
                          timing_cache=timing_cache_path(tmp_path / "m", trt.__version__, current_gpu_name()))
    assert engine.stat().st_size > 0 and check_engine(engine, key) == engine
