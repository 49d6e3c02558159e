"""The contract's engine names: one rule for the node and ``mcdepth-train build-engine`` (stdlib only)."""
from __future__ import annotations

import pytest

from mcdepth_ros.contract import EngineKey, engine_file_name, sanitize_gpu_name, timing_cache_file_name

SHA = "0123456789abcdef"


def test_engine_file_name_holds_hash_version_gpu_precision():
    name = engine_file_name("AB" * 32, "10.3.0", "NVIDIA GeForce RTX 4090", "fp16")
    assert name == "abababababababab_trt10.3.0_NVIDIA-GeForce-RTX-4090_fp16.engine"
    assert engine_file_name("cd" * 32, "10.3.0", " Orin (nvgpu) ", "int8").endswith("_trt10.3.0_Orin-nvgpu_int8.engine")
    with pytest.raises(ValueError, match="precision"):
        engine_file_name("ab" * 32, "10", "gpu", "fp8")
    with pytest.raises(ValueError, match="onnx_sha256"):
        engine_file_name("xyz", "10", "gpu", "fp16")


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


def test_engine_file_name_is_the_engine_keys_and_timing_caches_share_the_gpu_rule():
    assert engine_file_name("AB" * 32, "10.3.0", "Orin (nvgpu)", "fp16") == EngineKey.create("ab" * 32, "10.3.0", "Orin (nvgpu)", "fp16").filename
    assert EngineKey.parse(engine_file_name("AB" * 32, "10.3.0", "Orin (nvgpu)", "fp16")).gpu == "Orin-nvgpu"
    assert timing_cache_file_name("10.3.0", "NVIDIA GeForce RTX 4090") == "trt10.3.0_NVIDIA-GeForce-RTX-4090.timing_cache"
    with pytest.raises(ValueError, match="gpu name"):  # no "unknown-GPU" placeholder name
        engine_file_name("ab" * 32, "10.3.0", " () ", "fp16")
