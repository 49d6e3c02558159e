"""Where an object meets the road: a plane fitted to the ground's stage-1 depth, and the road's depth
under an object's bottom edge (paper Obs. 2: an object stands on the ground, so its lowest pixels
are as far away as the road they touch).

Per frame, in numpy (HxW arrays): DSA's fallback scale, the pseudo labels' contact depth and the
masks stage's contact rule all read the same plane.
"""
from __future__ import annotations

import numpy as np


def fit_ground_plane(depth: np.ndarray, ground: np.ndarray, min_pixels: int = 20, keep: float = 0.8) -> np.ndarray | None:
    """Fit a plane to the ground as inverse depth, 1/D = a·x + b·y + c (exact for any plane seen by a pinhole camera).

    Least squares on each pixel's relative error, (a·x + b·y + c)·D − 1, then once more over the
    ``keep`` fraction that fit best (a few pixels misclassified as ground must not tilt the road).
    The relative error weighs every row alike: on the plain inverse-depth error the near rows,
    whose inverse depth is largest, decide the fit, and on stage-1 depth that left the plane
    7–21% too near in the middle rows, where the cars stand (docs/stage2.md, "Do the labels'
    scales fix the cars found?").

    Args:
        depth: HxW stage-1 depth. ground: HxW bool ground mask.
    Returns:
        (a, b, c) in pixel coordinates, or None with fewer than ``min_pixels`` ground pixels.
    """
    depth = np.asarray(depth, np.float64)
    ground = np.asarray(ground, bool) & np.isfinite(depth) & (depth > 0)
    ys, xs = np.nonzero(ground)
    if len(ys) < max(min_pixels, 3):
        return None
    a = np.stack([xs + 0.5, ys + 0.5, np.ones(len(xs))], 1) * depth[ys, xs, None]  # rows of (x, y, 1)·D
    ones = np.ones(len(xs))
    coef = np.linalg.lstsq(a, ones, rcond=None)[0]
    residual = np.abs(a @ coef - 1.0)
    best = residual <= np.quantile(residual, keep)
    if best.sum() >= 3:
        coef = np.linalg.lstsq(a[best], ones[best], rcond=None)[0]
    return coef


def plane_under_bottom_edge(plane: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns, lowest object row in each, the plane's inverse depth at that row's lower edge) of a non-empty mask."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("mask: empty object mask")
    cols = np.flatnonzero(mask.any(0))
    bottoms = mask.shape[0] - 1 - np.argmax(mask[::-1, cols], axis=0)
    return cols, bottoms, plane[0] * (cols + 0.5) + plane[1] * (bottoms + 1.0) + plane[2]


def ground_contact_depth(plane: np.ndarray | None, mask: np.ndarray) -> float:
    """Depth of the ground where the object stands: the plane's depth under its bottom edge (median over columns).

    An object stands on the ground, so its lowest pixels are as far away as the road they touch
    (paper Obs. 2). Reading the fitted plane rather than the ground pixels right below the object
    works when the ground mask stops short of the object (at 64x192, usually a few rows).

    Returns:
        The depth, or NaN without a plane or when the plane lies behind the camera there.
    """
    if plane is None:
        return float("nan")
    inverse = float(np.median(plane_under_bottom_edge(plane, mask)[2]))
    return 1.0 / inverse if inverse > 0 else float("nan")


def ground_seen_below(ground: np.ndarray, mask: np.ndarray, rows: int | None = None) -> float:
    """Share of an object's columns with a ground pixel within ``rows`` rows under its lowest pixel.

    Where it is low, the object's real bottom edge is not in view: cut off by the image's lower
    edge (a near car; the lowest rows also carry no motion evidence, they leave the next frame's
    view) or standing on ground the mask does not see. Its lowest *visible* row then lies above
    the contact, and the road there is farther than the object: an upper bound, not its depth.

    Args:
        ground: HxW bool ground mask. mask: HxW bool object mask (non-empty).
        rows: how far below to look; default an eighth of the image height (8 at 64 rows: the
            ground mask usually stops about 4 rows short of an object there).
    """
    ground, mask = np.asarray(ground, bool), np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("mask: empty object mask")
    rows = max(1, ground.shape[0] // 8) if rows is None else int(rows)
    cols = np.flatnonzero(mask.any(0))
    bottoms = mask.shape[0] - 1 - np.argmax(mask[::-1, cols], axis=0)
    seen = [ground[b + 1 : b + 1 + rows, c].any() for b, c in zip(bottoms, cols)]
    return float(np.mean(seen))


def ground_contact_scale(depth: np.ndarray, ground: np.ndarray, object_depth: np.ndarray, mask: np.ndarray,
                         plane: np.ndarray | None = None) -> float:
    """Scale that puts an object's bottom edge on the ground (paper Obs. 2, without learning).

    s = median over the object's columns of (ground-plane depth under the column's lowest object
    pixel) / (o at that pixel). DSA's fallback when it has too few static objects to learn from;
    with stage 1's own depth as ``o``, the masks stage's contact rule (s > 1: nearer than the road).

    Args:
        depth: HxW stage-1 depth. ground: HxW bool. object_depth: HxW o_k. mask: HxW bool object mask.
        plane: the frame's :func:`fit_ground_plane`, to fit it once per frame (None: fitted here).
    Returns:
        The scale, or NaN when the frame has too little ground.
    """
    plane = fit_ground_plane(depth, ground) if plane is None else plane
    if plane is None:
        return float("nan")
    cols, bottoms, inverse = plane_under_bottom_edge(plane, mask)
    o = np.asarray(object_depth, np.float64)[bottoms, cols]
    ok = (inverse > 0) & (o > 0)
    if not ok.any():
        return float("nan")
    return float(np.median(1.0 / inverse[ok] / o[ok]))


def height_over_camera(plane: np.ndarray | None, mask: np.ndarray) -> float:
    """How tall an object would be, in camera heights, if it stood on the ground plane.

    For a pinhole camera over a road plane, the plane's inverse depth is zero on the horizon line
    (``a·x + b·y + c = 0``) and an upright object at depth Z spans, in one column, from its top
    row t to its contact row b with ``b - horizon = f·h/Z`` (h: the camera's height above the road)
    and ``b - t = f·H/Z`` (H: the object's height). So ``(b - t) / (b - horizon) = H / h``: no depth
    and no metric scale are needed. A car seen from a car camera is about 1; a region whose lowest
    row lies on or above the horizon cannot stand on the road at all (inf).

    Args:
        plane: the frame's :func:`fit_ground_plane` (inverse depth a·x + b·y + c), or None.
        mask: HxW bool object mask (non-empty).
    Returns:
        The median over the mask's columns; inf when most columns end on or above the horizon;
        NaN without a plane or when the plane's inverse depth does not grow down the image (no
        horizon above the road: a fit that is not a road seen from above).
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("mask: empty object mask")
    if plane is None or not plane[1] > 0:
        return float("nan")
    cols = np.flatnonzero(mask.any(0))
    tops = np.argmax(mask[:, cols], axis=0)
    bottoms = mask.shape[0] - np.argmax(mask[::-1, cols], axis=0)  # lower edge of the lowest pixel
    horizon = -(plane[0] * (cols + 0.5) + plane[2]) / plane[1]
    below = bottoms - horizon
    ratios = np.where(below > 0, (bottoms - tops) / np.where(below > 0, below, 1.0), np.inf)
    return float(np.median(ratios))
