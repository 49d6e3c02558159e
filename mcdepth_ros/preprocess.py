"""Camera image -> network input, as the contract says (pure numpy + OpenCV)."""
from __future__ import annotations

import cv2
import numpy as np

from .contract import ModelContract


def prepare_input(rgb: np.ndarray, contract: ModelContract) -> np.ndarray:
    """[H,W,3] RGB (uint8, uint16 or float in [0,1]) -> [1,3,h,w] float32 for the graph.

    Resizes to the contract's h×w (area filter when shrinking, linear when growing), orders the
    channels per ``color_order``, maps [0,1] to ``input.range`` and applies ``(x - mean) / std``
    unless the normalisation is inside the graph.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb: expected [H,W,3] with H, W > 0, got {list(rgb.shape)}")
    h, w = contract.height, contract.width
    if rgb.shape[:2] != (h, w):
        shrink = rgb.shape[0] > h or rgb.shape[1] > w
        rgb = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if rgb.dtype == np.uint8:
        x = rgb.astype(np.float32) * (1.0 / 255.0)
    elif rgb.dtype == np.uint16:
        x = rgb.astype(np.float32) * (1.0 / 65535.0)
    else:
        x = rgb.astype(np.float32, copy=False)
    if contract.color_order == "bgr":
        x = x[..., ::-1]
    lo, hi = contract.input_range
    if (lo, hi) != (0.0, 1.0):
        x = x * (hi - lo) + lo
    if not contract.normalization_in_graph:
        x = (x - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
