"""Network output -> REP-118 depth, colour map, camera info and point cloud (pure numpy + OpenCV)."""
from __future__ import annotations

import cv2
import numpy as np

# PointCloud2 field datatype codes (sensor_msgs/PointField).
FLOAT32 = 7


def raw_to_depth(raw: np.ndarray, kind: str, depth_range: tuple[float, float] | None = None,
                 saturation_tol: float = 1e-3) -> np.ndarray:
    """Graph output [1,1,h,w] or [h,w] -> [h,w] float32 depth in model units, NaN where invalid.

    ``kind`` is the contract's ``output.kind``: "depth" or "inv_depth" (inverted here). Invalid:
    non-finite and non-positive values and, with ``depth_range`` (model.json's, model units), values
    outside it or within ``saturation_tol`` (relative) of its bounds: the depth head's sigmoid
    saturates there, so the value says only "at least max" (sky, far beyond the range) or "at most
    min", not a depth.
    """
    out = np.asarray(raw, dtype=np.float32)
    out = out.reshape(out.shape[-2:])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = 1.0 / out if kind == "inv_depth" else out.copy()
        invalid = ~(np.isfinite(depth) & (depth > 0))
        if depth_range is not None:
            lo, hi = depth_range
            invalid |= (depth <= lo * (1.0 + saturation_tol)) | (depth >= hi * (1.0 - saturation_tol))
        depth[invalid] = np.nan
    return depth


def resize_depth(depth: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """[h,w] -> [height,width] by bilinear interpolation (a NaN spreads only to its neighbours).

    ``out``: a preallocated float32 [height,width] buffer to write into (no allocation per frame).
    """
    if depth.shape == (height, width):
        return depth
    return cv2.resize(depth, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)


def colorize(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """[H,W] depth (metres) -> [H,W,3] bgr8 turbo colour map, near red, far blue, invalid black."""
    if not far > near:
        raise ValueError(f"colour map range: need far > near, got near={near}, far={far}")
    # Four passes at the output size (it may be 1920x1080): clip, scale to 0..255 (far -> 0), colour map, mask.
    clipped = np.clip(depth, near, far)
    levels = cv2.convertScaleAbs(clipped, alpha=-255.0 / (far - near), beta=255.0 * far / (far - near))
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)
    bgr[~np.isfinite(depth)] = 0
    return bgr


def scale_intrinsics(k: np.ndarray, p: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]):
    """Scale CameraInfo K (3x3) and P (3x4) from image size ``src_hw`` to ``dst_hw`` (H, W).

    Pixel centres stay aligned: ``c' = (c + 0.5) * s - 0.5``.
    """
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    k = np.array(k, dtype=np.float64).reshape(3, 3).copy()
    p = np.array(p, dtype=np.float64).reshape(3, 4).copy()
    for m in (k, p):
        m[0, 0] *= sx
        m[1, 1] *= sy
        m[0, 2] = (m[0, 2] + 0.5) * sx - 0.5
        m[1, 2] = (m[1, 2] + 0.5) * sy - 0.5
    p[0, 3] *= sx  # P's Tx = -fx * baseline scales with fx
    p[1, 3] *= sy
    return k, p


def depth_to_points(depth: np.ndarray, k: np.ndarray, stride: int = 1, rgb: np.ndarray | None = None) -> np.ndarray:
    """Back-project every ``stride``-th pixel with valid depth into the camera frame.

    Args:
        depth: [H,W] metres (NaN invalid).
        k: 3x3 intrinsics for this image size.
        stride: keep every stride-th row and column.
        rgb: optional [H,W,3] uint8 RGB of the same size, packed into an "rgb" float field.

    Returns:
        a structured array with float32 fields x, y, z (and rgb), one row per valid point.
    """
    if stride < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    z = depth[::stride, ::stride]
    vs, us = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    valid = np.isfinite(z)
    z = z[valid].astype(np.float64)
    fields = [("x", np.float32), ("y", np.float32), ("z", np.float32)]
    if rgb is not None:
        fields.append(("rgb", np.float32))
    points = np.empty(z.size, dtype=fields)
    points["x"] = (us[valid] - k[0, 2]) / k[0, 0] * z
    points["y"] = (vs[valid] - k[1, 2]) / k[1, 1] * z
    points["z"] = z
    if rgb is not None:
        c = rgb[::stride, ::stride][valid].astype(np.uint32)
        # PCL convention: 0x00RRGGBB reinterpreted as a float32.
        points["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)
    return points


def point_fields(points: np.ndarray) -> list[tuple[str, int, int, int]]:
    """(name, offset, datatype, count) for each field of a :func:`depth_to_points` array."""
    return [(name, points.dtype.fields[name][1], FLOAT32, 1) for name in points.dtype.names]
