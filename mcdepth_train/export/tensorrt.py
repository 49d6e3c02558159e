"""TensorRT on the trainer side (``mcdepth-train build-engine``): the GPU's name and INT8 calibration.

Building and naming engines is the vehicle's code, used by the node too: ``mcdepth_ros.engine_build``
(one builder) and ``mcdepth_ros.contract`` (``EngineKey``, the file names of docs/contract.md).
They are re-exported here. What only the trainer has lives here: the GPU's name from CUDA torch,
cuda-python or nvidia-smi, and the entropy calibrator fed by its data loaders for *implicit* INT8
from ``model.onnx`` (explicit INT8 from the QDQ ``model.int8.onnx`` needs no calibrator).
TensorRT is imported only inside the functions that need it; everything else here (naming,
calibration batching) is plain Python and tested without a GPU.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mcdepth_ros.contract import (HASH_CHARS, EngineKey, EngineMismatchError, sanitize_gpu_name,  # noqa: F401 - re-exported
                                  timing_cache_file_name)
from mcdepth_ros.engine_build import (EngineBuildError, TensorRTUnavailable, build_engine, check_engine,  # noqa: F401
                                      import_tensorrt, stale_engines)
from mcdepth_ros.files import write_bytes_atomic

from ..config import ENGINE_PRECISIONS  # noqa: F401 - re-exported
from .images import to_network_input


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) or (False, the reason with install instructions)."""
    try:
        return True, import_tensorrt().__version__
    except TensorRTUnavailable as exc:
        return False, str(exc)


# ------------------------------------------------------------------------------- cache names
def timing_cache_path(model_dir: str | Path, trt_version: str, gpu_name: str) -> Path:
    """Timing caches are per GPU and TensorRT version too (their content is tactic timings)."""
    return Path(model_dir) / timing_cache_file_name(trt_version, gpu_name)


def calibration_cache_path(model_dir: str | Path, onnx_sha: str, trt_version: str) -> Path:
    return Path(model_dir) / f"{onnx_sha[:HASH_CHARS]}_trt{trt_version}.calib_cache"


# ------------------------------------------------------------------------------------ the GPU
def current_gpu_name(device: int = 0) -> str:
    """Name of CUDA device ``device`` from torch, cuda-python or nvidia-smi, whichever is here."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device)
    except ImportError:
        pass
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = props.name
            return (name.decode() if isinstance(name, bytes) else name).rstrip("\x00")
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", f"--id={device}"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    raise TensorRTUnavailable(
        "cannot find the GPU's name (no CUDA torch, cuda-python or nvidia-smi here); pass --gpu-name NAME")


# ------------------------------------------------------------------------------- calibration
class CalibrationBatcher:
    """Batches of network inputs for TensorRT's INT8 calibrator, from any iterable of images.

    Yields float32, C-contiguous ``[batch_size,3,H,W]`` arrays of RGB in [0,1] (the exported
    graph's input). A last partial batch is dropped: TensorRT calibrates at the engine's static
    batch size. ``limit`` caps the number of images read.
    """

    def __init__(self, images: Iterable, height: int, width: int, batch_size: int = 1, limit: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.images, self.height, self.width = images, height, width
        self.batch_size, self.limit = batch_size, limit
        self.images_used = 0

    @property
    def nbytes(self) -> int:
        return self.batch_size * 3 * self.height * self.width * 4

    def __iter__(self) -> Iterator[np.ndarray]:
        from ..data import keys

        pending: list[np.ndarray] = []
        for i, item in enumerate(self.images):
            if self.limit is not None and i >= self.limit:
                break
            image = item[keys.color(0, 0)] if isinstance(item, dict) else item
            pending.append(to_network_input(image, self.height, self.width))
            if len(pending) == self.batch_size:
                self.images_used += len(pending)
                yield np.ascontiguousarray(np.concatenate(pending, axis=0))
                pending = []


def _device_buffer(nbytes: int):
    """(device pointer, copy function host->device) from torch CUDA or cuda-python."""
    try:
        import torch

        if torch.cuda.is_available():
            buf = torch.empty(nbytes, dtype=torch.uint8, device="cuda")

            def copy(array: np.ndarray) -> None:
                buf.copy_(torch.from_numpy(array.view(np.uint8).reshape(-1)))
                torch.cuda.synchronize()

            return buf.data_ptr(), copy, buf
    except ImportError:
        pass
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
    except ImportError as exc:
        raise TensorRTUnavailable(
            "INT8 calibration needs GPU memory from CUDA torch or cuda-python (pip install cuda-python)") from exc
    err, ptr = cudart.cudaMalloc(nbytes)
    if int(err) != 0:
        raise RuntimeError(f"cudaMalloc({nbytes}) failed: {err}")

    def copy(array: np.ndarray) -> None:
        (err,) = cudart.cudaMemcpy(ptr, array.ctypes.data, array.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
        if int(err) != 0:
            raise RuntimeError(f"cudaMemcpy failed: {err}")

    return int(ptr), copy, ptr


def make_entropy_calibrator(trt, batcher: CalibrationBatcher, cache_path: str | Path):
    """An ``IInt8EntropyCalibrator2`` over ``batcher`` that reads/writes ``cache_path``.

    With a cache present TensorRT reads the scales from it and asks for no batches, so the data
    is only needed on the first build of an ONNX.
    """
    cache_path = Path(cache_path)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()  # pybind11 trampolines need the base constructor called
            self._batches = None
            self._device = None

        def get_batch_size(self) -> int:
            return batcher.batch_size

        def get_batch(self, names):  # noqa: ARG002 - one input
            if self._batches is None:
                self._batches = iter(batcher)
                self._device = _device_buffer(batcher.nbytes)
            batch = next(self._batches, None)
            if batch is None:
                return None
            ptr, copy, _keepalive = self._device
            copy(batch)
            return [ptr]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            write_bytes_atomic(cache_path, bytes(cache))

    return EntropyCalibrator()
