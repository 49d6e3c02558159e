"""Camera image -> network input, as the contract says (pure numpy + OpenCV)."""
from __future__ import annotations

import cv2
import numpy as np

from .contract import ModelContract


def prepare_input(rgb: np.ndarray, contract: ModelContract, out: np.ndarray | None = None) -> np.ndarray:
    """[H,W,3] RGB (uint8, uint16 or float in [0,1]) -> [1,3,h,w] float32 for the graph.

    Resizes once to the contract's h×w on the camera's own pixels (area filter when shrinking,
    linear when growing), then, in one pass at the network size, orders the channels per
    ``color_order``, scales to [0,1] and writes planar float32 into ``out`` (a preallocated
    [1,3,h,w] float32 buffer, or a new one); maps [0,1] to ``input.range`` and applies
    ``(x - mean) / std`` unless the normalisation is inside the graph.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb: expected [H,W,3] with H, W > 0, got {list(rgb.shape)}")
    h, w = contract.height, contract.width
    if rgb.shape[:2] != (h, w):
        shrink = rgb.shape[0] > h or rgb.shape[1] > w
        rgb = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((1, 3, h, w), np.float32)
    elif out.shape != (1, 3, h, w) or out.dtype != np.float32:
        raise ValueError(f"out: expected float32 [1, 3, {h}, {w}], got {out.dtype} {list(out.shape)}")
    planes = rgb.transpose(2, 0, 1)
    if contract.color_order == "bgr":
        planes = planes[::-1]
    if rgb.dtype == np.uint8:
        np.multiply(planes, np.float32(1.0 / 255.0), out=out[0], dtype=np.float32)
    elif rgb.dtype == np.uint16:
        np.multiply(planes, np.float32(1.0 / 65535.0), out=out[0], dtype=np.float32)
    else:
        out[0] = planes
    lo, hi = contract.input_range
    if (lo, hi) != (0.0, 1.0):
        out *= np.float32(hi - lo)
        out += np.float32(lo)
    if not contract.normalization_in_graph:
        out -= np.asarray(contract.mean, np.float32).reshape(1, 3, 1, 1)
        out /= np.asarray(contract.std, np.float32).reshape(1, 3, 1, 1)
    return out
