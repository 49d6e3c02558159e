"""TensorRT 10 backend: a serialized engine, built on the target from model.onnx when missing.

Engines are not portable, so the file name holds the ONNX hash, the TensorRT version, the GPU name
and the precision (``contract.EngineKey``); any change selects (or builds) another file. The engine
is built by ``engine_build.build_engine``, the same builder as ``mcdepth-train build-engine``.
CUDA buffers come from whichever of cuda-python, CuPy or torch is importable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import engine_build
from ..contract import EngineKey, ModelContract, timing_cache_file_name
from .base import Backend, BackendUnavailable, ModelLoadError


def import_tensorrt():
    """``import tensorrt`` or a BackendUnavailable that says how to get it."""
    try:
        return engine_build.import_tensorrt()
    except engine_build.TensorRTUnavailable as exc:
        raise BackendUnavailable(
            f"tensorrt is not installed ({exc.__cause__}): install TensorRT 10 for this GPU (JetPack on Jetson, "
            "or NVIDIA's tensorrt wheels), or use backend:=onnxruntime"
        ) from exc


class _CudaPython:
    """Device buffers and a stream through cuda-python's runtime bindings."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6 layout
        self.rt = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())

    def _ok(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else rest

    def gpu_name(self) -> str:
        name = self._ok(self.rt.cudaGetDeviceProperties(0)).name
        return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)

    def alloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(nbytes)))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._ok(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))

    def stream_handle(self) -> int:
        return int(self.stream)

    def synchronize(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)


class _ArrayLibrary:
    """Device buffers through CuPy or torch (same shape of API: empty arrays + a stream)."""

    def __init__(self, which: str):
        self.which = which
        self.arrays: dict[int, object] = {}
        if which == "cupy":
            import cupy

            self.lib = cupy
            self.stream = cupy.cuda.Stream(non_blocking=True)
        else:
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("torch has no CUDA device")
            self.lib = torch
            self.stream = torch.cuda.Stream()

    def gpu_name(self) -> str:
        if self.which == "cupy":
            name = self.lib.cuda.runtime.getDeviceProperties(0)["name"]
            return name.decode() if isinstance(name, bytes) else str(name)
        return self.lib.cuda.get_device_name(0)

    def alloc(self, nbytes: int) -> int:
        if self.which == "cupy":
            buf = self.lib.empty(nbytes, dtype=self.lib.uint8)
            ptr = int(buf.data.ptr)
        else:
            buf = self.lib.empty(nbytes, dtype=self.lib.uint8, device="cuda")
            ptr = int(buf.data_ptr())
        self.arrays[ptr] = buf
        return ptr

    def _view(self, ptr: int, nbytes: int):
        return self.arrays[ptr][:nbytes]

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        flat = host.reshape(-1).view(np.uint8)
        if self.which == "cupy":
            with self.stream:
                self._view(ptr, flat.nbytes).set(flat, stream=self.stream)
        else:
            with self.lib.cuda.stream(self.stream):
                self._view(ptr, flat.nbytes).copy_(self.lib.from_numpy(flat), non_blocking=False)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        flat = host.reshape(-1).view(np.uint8)
        if self.which == "cupy":
            self._view(ptr, flat.nbytes).get(stream=self.stream, out=flat)
        else:
            with self.lib.cuda.stream(self.stream):
                flat[:] = self._view(ptr, flat.nbytes).cpu().numpy()

    def stream_handle(self) -> int:
        return int(self.stream.ptr) if self.which == "cupy" else int(self.stream.cuda_stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, ptr: int) -> None:
        self.arrays.pop(ptr, None)


def cuda_memory():
    """The first usable CUDA buffer provider: cuda-python, then CuPy, then torch."""
    reasons = []
    for name, factory in (("cuda-python", _CudaPython), ("cupy", lambda: _ArrayLibrary("cupy")),
                          ("torch", lambda: _ArrayLibrary("torch"))):
        try:
            return factory()
        except Exception as exc:  # ImportError, or a library present without a usable GPU
            reasons.append(f"{name}: {type(exc).__name__}: {exc}")
    raise BackendUnavailable("tensorrt backend needs CUDA buffers from cuda-python, cupy or torch; " + "; ".join(reasons))


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, contract: ModelContract, precision: str = "fp16", engine_dir: str | Path = "",
                 build: bool = True, log=None):
        """Args: precision: "fp32", "fp16" or "int8" (int8 builds from model.int8.onnx); engine_dir:
        where engines live ("" = the model folder); build: build the engine when it is missing;
        log: a callable for the builder's progress lines (None = quiet)."""
        super().__init__(contract)
        trt = import_tensorrt()
        self.trt = trt
        self.memory = cuda_memory()
        onnx_path = contract.model_dir / ("model.int8.onnx" if precision == "int8" else "model.onnx")
        if not onnx_path.is_file():
            raise BackendUnavailable(f"tensorrt backend: {onnx_path} not found (precision {precision})")
        gpu = self.memory.gpu_name()
        try:
            key = EngineKey.for_onnx(onnx_path, trt.__version__, gpu, precision)
        except ValueError as exc:  # a precision outside the contract's, or a GPU name with nothing usable
            raise BackendUnavailable(f"tensorrt backend: {exc}") from exc
        self.engine_path = Path(engine_dir or contract.model_dir) / key.filename
        timing_cache = self.engine_path.parent / timing_cache_file_name(trt.__version__, gpu)
        self.built = False
        trt_logger = trt.Logger(trt.Logger.WARNING)
        if not self.engine_path.is_file():
            if not build:
                raise BackendUnavailable(f"tensorrt backend: engine {self.engine_path} not found and building is off")
            try:
                engine_build.build_engine(onnx_path, self.engine_path, precision, workspace_mib=2048,
                                          timing_cache=timing_cache, expected_hw=(contract.height, contract.width),
                                          log=log or (lambda message: None))
            except (engine_build.EngineBuildError, ValueError) as exc:  # ValueError: an ONNX of another size
                # The library is there and the model does not build: an error, never a reason to fall back.
                raise ModelLoadError(f"tensorrt backend: {exc}") from exc
            self.built = True
        self.runtime = trt.Runtime(trt_logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"tensorrt backend: cannot deserialize {self.engine_path} (built by another TensorRT?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        for wanted in (contract.input_name, contract.output_name):
            if wanted not in names:
                raise BackendUnavailable(f"{self.engine_path}: no tensor '{wanted}' (it has {names})")
        self.context.set_input_shape(contract.input_name, contract.input_shape)
        self.host_out = np.empty(tuple(self.context.get_tensor_shape(contract.output_name)),
                                 dtype=trt.nptype(self.engine.get_tensor_dtype(contract.output_name)))
        in_dtype = trt.nptype(self.engine.get_tensor_dtype(contract.input_name))
        self.in_dtype = np.dtype(in_dtype)
        self.d_in = self.memory.alloc(int(np.prod(contract.input_shape)) * self.in_dtype.itemsize)
        self.d_out = self.memory.alloc(self.host_out.nbytes)
        self.context.set_tensor_address(contract.input_name, self.d_in)
        self.context.set_tensor_address(contract.output_name, self.d_out)

    def infer(self, x: np.ndarray) -> np.ndarray:
        x = self.check_input(x).astype(self.in_dtype, copy=False)
        self.memory.to_device(self.d_in, x)
        if not self.context.execute_async_v3(self.memory.stream_handle()):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.memory.to_host(self.host_out, self.d_out)
        self.memory.synchronize()
        return self.host_out.astype(np.float32).reshape(1, 1, self.contract.height, self.contract.width)

    def describe(self) -> str:
        return f"tensorrt {self.trt.__version__} ({self.engine_path.name}{', built now' if self.built else ''})"

    def close(self) -> None:
        for ptr in (getattr(self, "d_in", None), getattr(self, "d_out", None)):
            if ptr is not None:
                self.memory.free(ptr)
        self.d_in = self.d_out = None
