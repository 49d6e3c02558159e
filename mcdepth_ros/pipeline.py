"""One camera frame -> published depth: preprocess, backend, postprocess, scale (shared by the node and the bag tool)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend
from .contract import ModelContract
from .postprocess import raw_to_depth, resize_depth, scale_intrinsics
from .preprocess import prepare_input
from .scale import DepthScaler


class InferenceError(RuntimeError):
    """The backend ran but its output is unusable (wrong shape, no finite value)."""


@dataclass
class DepthResult:
    depth: np.ndarray            # [H,W] float32, metres (model units when relative), NaN invalid
    k: np.ndarray | None         # 3x3 intrinsics of ``depth``'s size, when the camera's were given
    p: np.ndarray | None         # 3x4 projection of ``depth``'s size
    inference_s: float           # backend time alone


class DepthPipeline:
    """Runs one model on RGB frames.

    Args:
        contract: the model folder's contract.
        backend: a loaded backend for it.
        scaler: the scale policy (default: the contract's policy and factor).
        output_resolution: "input" (the camera's size) or "model" (the network's size).
    """

    def __init__(self, contract: ModelContract, backend: Backend, scaler: DepthScaler | None = None,
                 output_resolution: str = "input"):
        if output_resolution not in ("input", "model"):
            raise ValueError(f"output_resolution: expected 'input' or 'model', got {output_resolution!r}")
        self.contract, self.backend = contract, backend
        self.scaler = scaler or DepthScaler(contract.scale_policy, contract.scale_factor)
        self.output_resolution = output_resolution

    def model_depth(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """[H,W,3] RGB -> ([h,w] depth in model units at the network size, inference seconds)."""
        x = prepare_input(rgb, self.contract)
        start = time.perf_counter()
        raw = self.backend.infer(x)
        elapsed = time.perf_counter() - start
        expected = (1, 1, self.contract.height, self.contract.width)
        if tuple(raw.shape) != expected:
            raise InferenceError(f"backend {self.backend.name} returned shape {list(raw.shape)}, expected {list(expected)}")
        depth = raw_to_depth(raw, self.contract.output_kind)
        if not np.isfinite(depth).any():
            raise InferenceError(f"backend {self.backend.name} returned no finite positive depth (NaN/inf/<=0 everywhere)")
        return depth, elapsed

    def run(self, rgb: np.ndarray, k=None, p=None) -> DepthResult:
        """[H,W,3] RGB (+ the camera's K 3x3 / P 3x4 at H×W) -> depth at the chosen resolution."""
        depth, elapsed = self.model_depth(rgb)
        in_hw = rgb.shape[:2]
        model_hw = depth.shape
        k_model = None
        if k is not None:
            k_model, _ = scale_intrinsics(k, np.zeros((3, 4)) if p is None else p, in_hw, model_hw)
        # Scale is estimated at the network size (cheaper, and what the net saw).
        depth = self.scaler.apply(depth, k_model)
        out_k = out_p = None
        if self.output_resolution == "input":
            depth = resize_depth(depth, *in_hw)
            if k is not None:
                out_k = np.asarray(k, np.float64).reshape(3, 3)
                out_p = None if p is None else np.asarray(p, np.float64).reshape(3, 4)
        elif k is not None:
            out_k, out_p = scale_intrinsics(k, np.zeros((3, 4)) if p is None else p, in_hw, model_hw)
            out_p = None if p is None else out_p
        return DepthResult(depth=depth.astype(np.float32, copy=False), k=out_k, p=out_p, inference_s=elapsed)
