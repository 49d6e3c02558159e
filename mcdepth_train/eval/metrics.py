"""Depth metrics per image and per region (dynamic / static / all), ManyDepth/monodepth2 protocol.

Each image gets one median-scaling ratio, taken over its valid pixels in the whole evaluated area
(not per region), and that same ratio scales its region subsets. Averages are over images; an image
with no pixel in a region is skipped for that region's average. Further regions (the LiDAR road
regions ``ground`` and ``objects`` of :mod:`.road_regions`) come as extra masks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import CROPS, PROTOCOL_CROPS

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
REGIONS = ("dynamic", "static", "all")
ROAD_REGIONS = ("ground", "objects")  # eval.lidar_regions: from the LiDAR ground truth (road_regions.py)


def _as_2d(name: str, value) -> np.ndarray:
    array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    # Drop only the extra size-1 dims ([1,1,H,W], [H,W,1]); np.squeeze would also eat H or W = 1.
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected an HxW map (extra size-1 dims allowed), got shape {list(np.shape(value))}")
    return array


def depth_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The seven standard metrics over matched 1-D arrays of positive depths."""
    if gt.shape != pred.shape or gt.ndim != 1:
        raise ValueError(f"gt and pred: expected equal 1-D arrays, got {gt.shape} and {pred.shape}")
    if gt.size == 0:
        raise ValueError("gt: no valid pixels")
    gt = gt.astype(np.float64)
    pred = pred.astype(np.float64)
    thresh = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
    }


def shape_abs_rel(gt: np.ndarray, pred: np.ndarray) -> float:
    """AbsRel of ``pred`` scaled to ``gt``'s median (matched 1-D arrays of one object's positive
    depths): the error of its *shape*, whatever its scale (0 = the same shape)."""
    if gt.shape != pred.shape or gt.ndim != 1 or gt.size == 0:
        raise ValueError(f"gt and pred: expected equal non-empty 1-D arrays, got {gt.shape} and {pred.shape}")
    gt, pred = gt.astype(np.float64), pred.astype(np.float64)
    return float(np.mean(np.abs(pred * np.median(gt) / np.median(pred) - gt) / gt))


# eval.protocol=auto: the protocol of the evaluation data set (every other data set: 'synthetic').
DATASET_PROTOCOLS = {"kitti": "kitti_eigen", "cityscapes": "cityscapes"}


def crop_mask(height: int, width: int, crop: str) -> np.ndarray:
    """Boolean HxW evaluation crop: 'none', 'garg' (KITTI Eigen), 'eigen' or 'cityscapes'.

    'cityscapes' is ManyDepth's: on a map whose bottom quarter (the bonnet) is already cut off, it
    keeps rows from a third of the height down and the middle 1664 of 2048 columns
    (``gt[256:, 192:1856]`` at full resolution).
    """
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "garg":
        mask[int(0.40810811 * height) : int(0.99189189 * height), int(0.03594771 * width) : int(0.96405229 * width)] = True
    elif crop == "eigen":
        mask[int(0.3324324 * height) : int(0.91351351 * height), int(0.0359477 * width) : int(0.96405229 * width)] = True
    elif crop == "cityscapes":
        mask[int(round(height / 3)) :, int(round(width * 192 / 2048)) : int(round(width * 1856 / 2048))] = True
    else:
        raise ValueError(f"crop: expected one of {CROPS}, got {crop!r}")
    return mask


def protocol_crop(protocol: str, crop: str = "auto", dataset: str = "") -> str:
    """The crop to evaluate in: ``crop`` itself, or for 'auto' the one ``protocol`` uses.

    ``protocol`` 'auto' is the protocol of ``dataset`` (the evaluation data set's name).
    """
    if crop != "auto":
        return crop
    if protocol == "auto":
        protocol = DATASET_PROTOCOLS.get(dataset, "synthetic")
    if protocol not in PROTOCOL_CROPS:
        raise ValueError(f"protocol: expected one of {tuple(PROTOCOL_CROPS)}, got {protocol!r}")
    return PROTOCOL_CROPS[protocol]


def evaluate_image(
    pred: np.ndarray,
    gt: np.ndarray,
    dynamic_mask: np.ndarray | None = None,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    median_scaling: bool = True,
    crop: str = "none",
    eval_mask: np.ndarray | None = None,
    regions: dict[str, np.ndarray | None] | None = None,
) -> tuple[dict[str, dict[str, float] | None], float]:
    """Metrics of one prediction, per region.

    Args:
        pred: HxW predicted depth, already at the ground truth's size.
        gt: HxW ground-truth depth; 0 or non-finite means no measurement.
        dynamic_mask: HxW bool of moving-object pixels, or None (then only 'all' and 'static').
        min_depth, max_depth: ground-truth range kept; predictions are clipped to it after scaling.
        median_scaling: scale pred by median(gt)/median(pred) over the image's valid pixels.
        crop: evaluation crop name (see :func:`crop_mask`).
        eval_mask: optional extra HxW bool restricting the evaluated area.
        regions: further named HxW bool regions (None = the region is absent from this image),
            scored inside the evaluated area with the same ratio.
    Returns:
        ({region: metrics dict, or None when the region has no valid pixel}, the scale ratio used).
    """
    pred = _as_2d("pred", pred).astype(np.float64)
    gt = _as_2d("gt", gt).astype(np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt: sizes differ, {list(pred.shape)} vs {list(gt.shape)} (resize pred first)")
    valid = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth) & np.isfinite(pred) & (pred > 0)
    valid &= crop_mask(*gt.shape, crop)
    if eval_mask is not None:
        valid &= _as_2d("eval_mask", eval_mask).astype(bool)
    dyn = np.zeros_like(valid) if dynamic_mask is None else _as_2d("dynamic_mask", dynamic_mask).astype(bool)
    if dyn.shape != gt.shape:
        raise ValueError(f"dynamic_mask: size {list(dyn.shape)} differs from gt {list(gt.shape)}")
    if not valid.any():
        return {r: None for r in (*REGIONS, *(regions or {}))}, float("nan")
    ratio = float(np.median(gt[valid]) / np.median(pred[valid])) if median_scaling else 1.0
    scaled = np.clip(pred * ratio, min_depth, max_depth)
    base = {"all": valid, "static": valid & ~dyn, "dynamic": valid & dyn}
    out: dict[str, dict[str, float] | None] = {}
    for name in REGIONS:
        sel = base[name]
        if name == "dynamic" and dynamic_mask is None:
            out[name] = None
        else:
            out[name] = depth_errors(gt[sel], scaled[sel]) if sel.any() else None
    for name, mask in (regions or {}).items():
        sel = None if mask is None else valid & _as_2d(name, mask).astype(bool)
        out[name] = depth_errors(gt[sel], scaled[sel]) if sel is not None and sel.any() else None
    return out, ratio


@dataclass
class RegionMetrics:
    """Running per-image averages for each region; images without a region's pixels are skipped for it."""

    sums: dict = field(default_factory=lambda: {r: {m: 0.0 for m in METRIC_NAMES} for r in REGIONS})
    counts: dict = field(default_factory=lambda: {r: 0 for r in REGIONS})
    ratios: list = field(default_factory=list)
    per_image: list = field(default_factory=list)  # per image: {region: abs_rel or None}
    unscaled: "RegionMetrics | None" = None  # the same images without median scaling (eval.unscaled_row)

    def add(self, per_region: dict, ratio: float = float("nan")) -> None:
        for region, metrics in per_region.items():
            self.counts.setdefault(region, 0)
            self.sums.setdefault(region, {m: 0.0 for m in METRIC_NAMES})
            if metrics is None:
                continue
            self.counts[region] += 1
            for name in METRIC_NAMES:
                self.sums[region][name] += metrics[name]
        self.ratios.append(ratio)
        self.per_image.append({r: (m["abs_rel"] if m else None) for r, m in per_region.items()})

    def mean(self) -> dict[str, dict[str, float] | None]:
        return {
            r: ({m: self.sums[r][m] / self.counts[r] for m in METRIC_NAMES} | {"images": self.counts[r]} if self.counts[r] else None)
            for r in self.counts
        }
