"""The shared engine builder's file rules (no TensorRT needed; its calls: tests/train/export/test_export_tensorrt_calls.py)."""
from __future__ import annotations

import pytest

from mcdepth_ros.contract import EngineKey, EngineMismatchError
from mcdepth_ros.engine_build import check_engine, stale_engines

SHA = "0123456789abcdef"


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
