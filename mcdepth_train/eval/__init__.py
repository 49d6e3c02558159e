"""Evaluation: per-region depth metrics and reports."""
from .metrics import METRIC_NAMES, REGIONS, RegionMetrics, crop_mask, depth_errors, evaluate_image, protocol_crop

__all__ = ["METRIC_NAMES", "REGIONS", "RegionMetrics", "crop_mask", "depth_errors", "evaluate_image", "protocol_crop"]
