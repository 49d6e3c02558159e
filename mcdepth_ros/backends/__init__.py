"""Inference backends behind one interface (``base.Backend``); each imports its library lazily.

``create_backend("auto", ...)`` tries TensorRT, then ONNX Runtime, then torch, and returns the
first that loads together with a sentence saying which was picked and why the others were not.
It skips a backend whose library (or hardware) is missing, never one that is there but cannot load
the model (:class:`ModelLoadError`): a broken ``model.onnx`` stops the node instead of silently
running another model.
"""
from __future__ import annotations

import importlib.util

from ..contract import ModelContract
from .base import Backend, BackendUnavailable, ModelLoadError

BACKENDS = ("tensorrt", "onnxruntime", "torch")
AUTO_ORDER = BACKENDS


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules, or a half-installed one
        return False


def _make(name: str, contract: ModelContract, options: dict) -> Backend:
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(contract, device=options.get("device", "auto"), threads=int(options.get("threads", 0)))
    if name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(contract, precision=options.get("precision") or contract.precision,
                               engine_dir=options.get("engine_dir", ""), build=bool(options.get("build_engine", True)))
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(contract, checkpoint=options.get("checkpoint", ""), device=options.get("device", "auto"))
    raise ValueError(f"backend: expected auto or one of {', '.join(BACKENDS)}, got {name!r}")


def create_backend(name: str, contract: ModelContract, **options) -> tuple[Backend, str]:
    """Build backend ``name`` ("auto" = the best that loads here).

    Options: device ("auto"/"cpu"/"cuda"/"tensorrt"), threads, precision, engine_dir, build_engine,
    checkpoint. Returns (backend, reason). Raises ModelLoadError (the model file fails to load in a
    backend that is installed; auto does not try the next one), BackendUnavailable (naming every
    backend tried and why it failed) or ValueError for an unknown name.
    """
    if name != "auto":
        backend = _make(name, contract, options)
        return backend, f"{backend.describe()} (requested)"
    skipped = []
    for candidate in AUTO_ORDER:
        module = {"tensorrt": "tensorrt", "onnxruntime": "onnxruntime", "torch": "torch"}[candidate]
        if not _installed(module):
            skipped.append(f"{candidate}: not installed")
            continue
        if candidate == "torch" and not options.get("checkpoint") and not (contract.raw.get("torch_program") or {}).get("file"):
            skipped.append("torch: no exported model.pt2 (torch_program in model.json)")
            continue
        try:
            backend = _make(candidate, contract, options)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc} (backend auto: {candidate} is installed but cannot load the model; "
                                 "not falling back to another backend)") from exc
        except BackendUnavailable as exc:
            skipped.append(f"{candidate}: {exc}")
            continue
        why = f"; skipped {'; '.join(skipped)}" if skipped else ""
        return backend, f"{backend.describe()} (auto: best available{why})"
    raise BackendUnavailable("no backend could load the model: " + "; ".join(skipped))


__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "ModelLoadError", "create_backend"]
