"""Losses as per-pixel maps; stages reduce them so masking stays visible."""
from .photometric import min_reprojection, photometric_error, ssim
from .pseudo_label import label_scale, masked_mean, pseudo_label_loss
from .regularizers import edge_aware_smoothness, motion_sparsity

__all__ = [
    "edge_aware_smoothness", "label_scale", "masked_mean", "min_reprojection", "motion_sparsity",
    "photometric_error", "pseudo_label_loss", "ssim",
]
