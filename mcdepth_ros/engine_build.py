"""The one TensorRT engine builder: the node (backend tensorrt) and ``mcdepth-train build-engine`` use it.

An engine only runs on the GPU model and TensorRT version that built it, so its file name holds
everything it depends on (``contract.EngineKey``); a changed ONNX, TensorRT upgrade, other GPU or
other precision gives another name, so a stale engine is never loaded: it is rebuilt.

Precisions: fp32; fp16 (``BuilderFlag.FP16``); int8 either *explicit* from a QDQ ONNX
(``model.int8.onnx``: the scales come from the graph) or *implicit* from a float ONNX with a
calibrator the caller makes (the trainer's entropy calibrator over its data). TensorRT is imported
only inside :func:`import_tensorrt`; this module imports neither torch nor rclpy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .contract import PRECISIONS, EngineKey, EngineMismatchError
from .files import write_bytes_atomic

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


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX or build an engine from it; the message says which file."""


def import_tensorrt():
    """``import tensorrt``, or TensorRTUnavailable with install instructions for Jetson and desktop."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional, only on the target
    except ImportError as exc:
        raise TensorRTUnavailable(INSTALL_HELP.format(reason=f"import tensorrt failed: {exc}")) from exc
    return trt


# ------------------------------------------------------------------------------- engine files
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


# ---------------------------------------------------------------------------------- building
def network_flags(trt) -> int:
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
    calibrator=None,
    expected_hw: tuple[int, int] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Parse ``onnx_path``, build a serialised engine in ``precision`` and write it atomically.

    Args:
        precision: 'fp32', 'fp16' or 'int8'. INT8 from a QDQ ONNX is explicit (scales from the
            graph, no calibrator); from a float ONNX it needs ``calibrator``.
        workspace_mib: builder workspace limit (``MemoryPoolType.WORKSPACE``).
        timing_cache: file read before and written after the build (faster rebuilds). An
            optimisation only: a cache TensorRT refuses is left out, and failing to write it back
            does not fail the build.
        calibrator: a TensorRT ``IInt8Calibrator`` for implicit INT8 from a float ONNX.
        expected_hw: the (H, W) the network input must have (the contract's), checked after parsing.
    Raises:
        TensorRTUnavailable: no TensorRT here. EngineBuildError: parsing or building failed.
        EngineMismatchError: the ONNX input is not ``expected_hw``. ValueError: bad precision, or
        implicit INT8 without a calibrator.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    trt = import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}:\n  {errors}")
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
        elif calibrator is None:
            raise ValueError("int8 from a float ONNX needs calibration images (--calib-dir), or use the QDQ model.int8.onnx")
        else:
            config.int8_calibrator = calibrator
            log("int8: implicit quantisation with the given calibrator")

    if timing_cache is not None:
        timing_cache = Path(timing_cache)
        try:
            cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
        except Exception as exc:  # a cache from another TensorRT/GPU: build without it
            log(f"warning: timing cache {timing_cache} not used ({exc})")
            timing_cache = None

    log(f"building {precision} engine from {onnx_path.name} (workspace {workspace_mib} MiB); this takes minutes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build a {precision} engine from {onnx_path} (see the TensorRT log above)")
    write_bytes_atomic(engine_path, bytes(serialized))
    if timing_cache is not None:
        try:
            write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
        except Exception as exc:  # the engine is what matters; the cache only speeds up the next build
            log(f"warning: timing cache {timing_cache} not written ({exc})")
    return engine_path
