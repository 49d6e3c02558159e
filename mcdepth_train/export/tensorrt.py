"""TensorRT engines from the exported ONNX, built on the target GPU (``mcdepth-train build-engine``).

An engine only runs on the GPU model and TensorRT version that built it, so its file name holds
everything it depends on: ``<onnx sha256[:16]>_trt<version>_<gpu>_<precision>.engine`` (see
docs/contract.md). A changed ONNX, TensorRT upgrade, other GPU or other precision gives another
name, so a stale engine is never loaded: it is rebuilt.

Precisions: fp32; fp16 (``BuilderFlag.FP16``); int8 either *explicit* from the QDQ
``model.int8.onnx`` (the scales come from the ONNX, the same artefact ONNX Runtime runs), or
*implicit* from ``model.onnx`` with an ``IInt8EntropyCalibrator2`` fed by the data loaders and a
calibration cache. TensorRT is imported only inside the functions that need it; everything else
here (naming, staleness, calibration batching) is plain Python and tested without a GPU.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..config import ENGINE_PRECISIONS
from ..engine.checkpoint import file_sha256
from .contract import write_bytes_atomic
from .images import to_network_input

HASH_CHARS = 16
_ENGINE_RE = re.compile(
    r"^(?P<onnx_sha>[0-9a-f]{%d})_trt(?P<trt_version>[0-9][0-9A-Za-z.]*)_(?P<gpu>[A-Za-z0-9.-]+)_(?P<precision>fp32|fp16|int8)\.engine$"
    % HASH_CHARS)

INSTALL_HELP = """\
TensorRT's Python bindings are not installed here ({reason}).
Engines must be built on the GPU that will run them (they are not portable across GPUs or TensorRT versions):
  Jetson (JetPack 6.x): TensorRT comes with JetPack; install its Python bindings with
      sudo apt install python3-libnvinfer python3-libnvinfer-dev
    and, in a virtual environment, create it with --system-site-packages so `import tensorrt` finds them.
  Desktop / x86_64 with an NVIDIA driver and CUDA 12:
      pip install tensorrt-cu12        (or: pip install tensorrt)
    see https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/installing.html
Then rerun: mcdepth-train build-engine MODEL_DIR --precision fp16
Without TensorRT the node runs model.onnx (or model.int8.onnx) with ONNX Runtime."""


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or the CUDA memory it needs) is not installed; the message says how to install it."""


class EngineMismatchError(ValueError):
    """An engine file built for another ONNX, TensorRT version, GPU or precision."""


def import_tensorrt():
    """``import tensorrt``, or TensorRTUnavailable with install instructions for Jetson and desktop."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional, only on the target
    except ImportError as exc:
        raise TensorRTUnavailable(INSTALL_HELP.format(reason=f"import tensorrt failed: {exc}")) from exc
    return trt


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) or (False, the reason with install instructions)."""
    try:
        return True, import_tensorrt().__version__
    except TensorRTUnavailable as exc:
        return False, str(exc)


# ------------------------------------------------------------------------------- engine names
def sanitize_gpu_name(name: str) -> str:
    """A GPU name as it appears in engine file names: 'NVIDIA GeForce RTX 4090' -> 'NVIDIA-GeForce-RTX-4090'."""
    clean = re.sub(r"[^A-Za-z0-9.]+", "-", name.strip()).strip("-")
    if not clean:
        raise ValueError(f"gpu name: nothing usable in {name!r}")
    return clean


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; its file name is made from these and parsed back."""

    onnx_sha: str  # first HASH_CHARS hex digits of the SHA-256 of the ONNX file it was built from
    trt_version: str
    gpu: str  # sanitised GPU name
    precision: str

    def __post_init__(self):
        if self.precision not in ENGINE_PRECISIONS:
            raise ValueError(f"precision: expected one of {ENGINE_PRECISIONS}, got {self.precision!r}")
        if not re.fullmatch(r"[0-9a-f]{%d}" % HASH_CHARS, self.onnx_sha):
            raise ValueError(f"onnx_sha: expected {HASH_CHARS} lowercase hex digits, got {self.onnx_sha!r}")

    @classmethod
    def for_onnx(cls, onnx_path: str | Path, trt_version: str, gpu_name: str, precision: str) -> "EngineKey":
        return cls(file_sha256(onnx_path)[:HASH_CHARS], trt_version, sanitize_gpu_name(gpu_name), precision)

    @property
    def filename(self) -> str:
        return f"{self.onnx_sha}_trt{self.trt_version}_{self.gpu}_{self.precision}.engine"

    @classmethod
    def parse(cls, filename: str | Path) -> "EngineKey":
        match = _ENGINE_RE.match(Path(filename).name)
        if not match:
            raise EngineMismatchError(
                f"{Path(filename).name}: not an mcdepth engine name (<onnx sha256[:{HASH_CHARS}]>_trt<version>_<gpu>_<precision>.engine)")
        return cls(**match.groupdict())


def check_engine(engine_path: str | Path, expected: EngineKey) -> Path:
    """Return ``engine_path`` if it exists and was built for ``expected``; else a clear error."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise FileNotFoundError(f"engine not found: {engine_path}")
    got = EngineKey.parse(engine_path)
    differences = [f"{label} {getattr(got, field)!r} (this machine/model: {getattr(expected, field)!r})"
                   for field, label in (("onnx_sha", "ONNX hash"), ("trt_version", "TensorRT version"),
                                        ("gpu", "GPU"), ("precision", "precision"))
                   if getattr(got, field) != getattr(expected, field)]
    if differences:
        raise EngineMismatchError(
            f"{engine_path.name} was built for another setup: " + "; ".join(differences)
            + f". Engines are not portable; rebuild it here: mcdepth-train build-engine {engine_path.parent}")
    return engine_path


def stale_engines(model_dir: str | Path, current: EngineKey) -> list[Path]:
    """Engine files in ``model_dir`` other than ``current``'s (other ONNX, TensorRT, GPU or precision)."""
    return sorted(p for p in Path(model_dir).glob("*.engine") if p.name != current.filename)


def timing_cache_path(model_dir: str | Path, trt_version: str, gpu_name: str) -> Path:
    """Timing caches are per GPU and TensorRT version too (their content is tactic timings)."""
    return Path(model_dir) / f"trt{trt_version}_{sanitize_gpu_name(gpu_name)}.timing_cache"


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


# ---------------------------------------------------------------------------------- building
def _network_flags(trt) -> int:
    """TensorRT 10 networks are always explicit-batch (the flag is deprecated); 8.x must ask for it."""
    major = int(trt.__version__.split(".")[0])
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if major >= 10 or flag is None else 1 << int(flag)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str,
    *,
    workspace_mib: int = 1024,
    timing_cache: str | Path | None = None,
    calibrator_images: CalibrationBatcher | None = None,
    calibration_cache: str | Path | None = None,
    expected_hw: tuple[int, int] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Parse ``onnx_path``, build a serialised engine in ``precision`` and write it atomically.

    Args:
        precision: 'fp32', 'fp16' or 'int8'. INT8 from a QDQ ONNX is explicit (scales from the
            graph, no calibrator); from a float ONNX it needs ``calibrator_images``.
        workspace_mib: builder workspace limit (``MemoryPoolType.WORKSPACE``).
        timing_cache: file read before and written after the build (faster rebuilds).
        calibration_cache: INT8 calibration cache file for the entropy calibrator.
        expected_hw: the (H, W) the network input must have (the contract's), checked after parsing.
    """
    trt = import_tensorrt()
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision: expected one of {ENGINE_PRECISIONS}, got {precision!r}")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}:\n  {errors}")
    shape = tuple(network.get_input(0).shape)
    if expected_hw is not None and tuple(shape[2:]) != tuple(expected_hw):
        raise EngineMismatchError(f"{onnx_path} has input shape {list(shape)}, expected H×W {expected_hw}")
    is_qdq = any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in TensorRT 10
            log("warning: this GPU has no fast FP16; the build may fall back to FP32 kernels")
        config.set_flag(trt.BuilderFlag.FP16)  # int8 builds: layers left in float run in fp16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if is_qdq:
            log("int8: explicit quantisation from the QDQ graph's scales")
        else:
            if calibrator_images is None:
                raise ValueError("int8 from a float ONNX needs calibration images (--calib-dir), or use the QDQ model.int8.onnx")
            cache = calibration_cache or engine_path.with_suffix(".calib_cache")
            config.int8_calibrator = make_entropy_calibrator(trt, calibrator_images, cache)
            log(f"int8: implicit quantisation, entropy calibration (cache {cache})")

    cache_obj = None
    if timing_cache is not None:
        timing_cache = Path(timing_cache)
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache_obj = config.create_timing_cache(data)
        config.set_timing_cache(cache_obj, ignore_mismatch=False)

    log(f"building {precision} engine from {onnx_path.name} (workspace {workspace_mib} MiB); this takes minutes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    write_bytes_atomic(engine_path, bytes(serialized))
    if timing_cache is not None:
        write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return engine_path


# ----------------------------------------------------------------------------------- running
class EngineRunner:
    """Runs a serialised engine on CUDA tensors from torch (the benchmark's TensorRT backend).

    The ROS node has its own runner (mcdepth_ros/backends); this one exists so the trainer side
    can check and time an engine. TensorRT 10 I/O: tensors by name, ``execute_async_v3``.
    """

    def __init__(self, engine_path: str | Path):
        import torch

        trt = import_tensorrt()
        self._torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"{engine_path}: TensorRT cannot load it (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.inputs, self.outputs = {}, {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = torch.from_numpy(np.zeros(1, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            tensor = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, tensor.data_ptr())
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs)[name] = tensor

    def __call__(self, image):
        """image: [1,3,H,W] float32 (numpy or torch, any device) -> {output name: CUDA tensor}."""
        torch = self._torch
        (name, buf), = self.inputs.items()
        buf.copy_(torch.as_tensor(image))
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return self.outputs
