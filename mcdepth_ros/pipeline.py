"""One camera frame -> published depth: preprocess, backend, postprocess, scale (shared by the node and the bag tool).

:func:`build_pipeline` is the one place that turns settings into contract -> backend -> scaler ->
pipeline, for ``depth_node`` and ``mcdepth-bag-depth`` alike; :func:`resolve_scale` is the one
place that says what an empty ``scale_mode`` / zero ``scale_factor`` mean.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .contract import ModelContract, load_contract
from .postprocess import raw_to_depth, resize_depth, scale_intrinsics
from .preprocess import prepare_input
from .scale import DepthScaler

OUTPUT_RESOLUTIONS = ("input", "model")


class InferenceError(RuntimeError):
    """The backend ran but its output is unusable (wrong shape, no finite value)."""


class ScaleUnavailable(RuntimeError):
    """The scale policy cannot make this frame metric (camera_height without the camera's intrinsics).

    The frame is held, not published: unscaled depth on a topic that promises metres is worse than none.
    """


@dataclass
class DepthResult:
    depth: np.ndarray            # [H,W] float32, metres (model units when relative), NaN invalid
    k: np.ndarray | None         # 3x3 intrinsics of ``depth``'s size, when the camera's were given
    p: np.ndarray | None         # 3x4 projection of ``depth``'s size
    inference_s: float           # backend time alone
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage: resize, infer, scale_fit, upsample


def resolve_scale(contract: ModelContract, scale_mode: str, scale_factor: float) -> tuple[str, float]:
    """(mode, factor) from the settings: '' and 0 mean model.json's ``scale.policy`` / ``scale.factor``."""
    return scale_mode or contract.scale_policy, float(scale_factor or contract.scale_factor)


class DepthPipeline:
    """Runs one model on RGB frames.

    Args:
        contract: the model folder's contract.
        backend: a loaded backend for it.
        scaler: the scale policy (default: the contract's policy and factor).
        output_resolution: "input" (the camera's size) or "model" (the network's size).
        reuse_buffers: write the network input and the upsampled depth into buffers kept between
            frames (no allocation per frame); a result's ``depth`` is then overwritten by the next
            :meth:`run`, so copy or serialise it first (the node does).
    """

    def __init__(self, contract: ModelContract, backend: Backend, scaler: DepthScaler | None = None,
                 output_resolution: str = "input", reuse_buffers: bool = False):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution: expected 'input' or 'model', got {output_resolution!r}")
        self.contract, self.backend = contract, backend
        self.scaler = scaler or DepthScaler(*resolve_scale(contract, "", 0.0))
        self.output_resolution = output_resolution
        self.reuse_buffers = reuse_buffers
        self._input = np.empty(contract.input_shape, np.float32) if reuse_buffers else None
        self._upsampled: np.ndarray | None = None

    def model_depth(self, rgb: np.ndarray, stages: dict | None = None) -> tuple[np.ndarray, float]:
        """[H,W,3] RGB -> ([h,w] depth in model units at the network size, NaN invalid; inference seconds)."""
        stages = {} if stages is None else stages
        start = time.perf_counter()
        x = prepare_input(rgb, self.contract, out=self._input)
        stages["resize"] = time.perf_counter() - start
        start = time.perf_counter()
        raw = self.backend.infer(x)
        elapsed = stages["infer"] = time.perf_counter() - start
        expected = (1, 1, self.contract.height, self.contract.width)
        if tuple(raw.shape) != expected:
            raise InferenceError(f"backend {self.backend.name} returned shape {list(raw.shape)}, expected {list(expected)}")
        depth = raw_to_depth(raw, self.contract.output_kind, self.contract.depth_range)
        if not np.isfinite(depth).any():
            raise InferenceError(f"backend {self.backend.name} returned no finite positive depth inside depth_range "
                                 f"{list(self.contract.depth_range)} (NaN/inf/<=0 or saturated at its bounds everywhere)")
        return depth, elapsed

    def run(self, rgb: np.ndarray, k=None, p=None) -> DepthResult:
        """[H,W,3] RGB (+ the camera's K 3x3 / P 3x4 at H×W) -> depth at the chosen resolution.

        Raises:
            ScaleUnavailable: the scale mode needs intrinsics and ``k`` is None (checked before inference).
            InferenceError: the backend's output is unusable.
        """
        if k is None and self.scaler.needs_intrinsics:
            raise ScaleUnavailable(f"scale_mode {self.scaler.mode} needs the camera's intrinsics (camera_info)")
        stages: dict[str, float] = {}
        depth, elapsed = self.model_depth(rgb, stages)
        in_hw = rgb.shape[:2]
        model_hw = depth.shape
        start = time.perf_counter()
        k_model = None
        if k is not None:
            k_model, _ = scale_intrinsics(k, np.zeros((3, 4)) if p is None else p, in_hw, model_hw)
        # Scale is estimated at the network size (cheaper, and what the net saw).
        depth = self.scaler.apply(depth, k_model)
        stages["scale_fit"] = time.perf_counter() - start
        start = time.perf_counter()
        out_k = out_p = None
        if self.output_resolution == "input":
            depth = resize_depth(depth, *in_hw, out=self._upsample_buffer(in_hw))
            if k is not None:
                out_k = np.asarray(k, np.float64).reshape(3, 3)
                out_p = None if p is None else np.asarray(p, np.float64).reshape(3, 4)
        elif k is not None:
            out_k, out_p = scale_intrinsics(k, np.zeros((3, 4)) if p is None else p, in_hw, model_hw)
            out_p = None if p is None else out_p
        stages["upsample"] = time.perf_counter() - start
        return DepthResult(depth=depth.astype(np.float32, copy=False), k=out_k, p=out_p, inference_s=elapsed,
                           stages=stages)

    def _upsample_buffer(self, hw: tuple[int, int]) -> np.ndarray | None:
        if not self.reuse_buffers:
            return None
        if self._upsampled is None or self._upsampled.shape != tuple(hw):
            self._upsampled = np.empty(hw, np.float32)
        return self._upsampled

    def close(self) -> None:
        self.backend.close()


def build_pipeline(model_dir: str | Path, *, backend: str = "auto", device: str = "auto", threads: int = 0,
                   precision: str = "", engine_dir: str = "", build_engine: bool = True, checkpoint: str = "",
                   scale_mode: str = "", scale_factor: float = 0.0, camera_height: float = 1.5,
                   ground_region: float = 0.35, scale_smoothing: float = 0.9, output_resolution: str = "input",
                   reuse_buffers: bool = False) -> tuple[DepthPipeline, str]:
    """contract -> backend -> scaler -> pipeline from settings (the node's parameters, the bag tool's options).

    Returns (pipeline, reason the backend was chosen). Raises ContractError (model folder),
    ModelLoadError (the model fails to load), BackendUnavailable (no backend here) or ValueError.
    """
    contract = load_contract(model_dir, require_onnx=backend != "torch")
    engine, reason = create_backend(backend, contract, device=device, threads=threads, precision=precision,
                                    engine_dir=engine_dir, build_engine=build_engine, checkpoint=checkpoint)
    try:
        mode, factor = resolve_scale(contract, scale_mode, scale_factor)
        scaler = DepthScaler(mode, factor, camera_height, region=ground_region, smoothing=scale_smoothing)
        return DepthPipeline(contract, engine, scaler, output_resolution, reuse_buffers), reason
    except Exception:
        engine.close()
        raise
