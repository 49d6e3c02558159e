"""Photometric reconstruction error: SSIM + L1, minimum reprojection over sources, auto-masking."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_same_hw, check_tensor

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def ssim(x: torch.Tensor, y: torch.Tensor, luminance: bool = True) -> torch.Tensor:
    """Per-pixel SSIM over 3x3 windows (reflection padded), images in [0, 1].

    Args:
        x, y: [B,C,H,W].
        luminance: keep the luminance term; without it this is SSIM's contrast-structure part
            ``(2 sxy + C2) / (sx^2 + sy^2 + C2)`` (the authors' variant).
    Returns:
        [B,C,H,W] similarity in [-1, 1]; 1 for identical images.
    """
    check_tensor("x", x, "BCHW")
    check_tensor("y", y, "BCHW")
    if x.shape != y.shape:
        raise ValueError(f"x and y: shapes differ, {list(x.shape)} vs {list(y.shape)}")
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    cs = (2 * sigma_xy + SSIM_C2) / (sigma_x + sigma_y + SSIM_C2)
    if not luminance:
        return cs
    return cs * (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)


def photometric_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    ssim_weight: float = 0.85,
    l1_weight: float = 0.15,
    luminance: bool = True,
) -> torch.Tensor:
    """``ssim_weight * (1 - SSIM) / 2 + l1_weight * |pred - target|``, averaged over channels.

    Args:
        pred, target: [B,C,H,W] images in [0, 1].
    Returns:
        [B,1,H,W] error map.
    """
    check_tensor("pred", pred, "BCHW")
    check_tensor("target", target, "BCHW")
    check_same_hw(pred=pred, target=target)
    l1 = (pred - target).abs().mean(1, keepdim=True)
    if ssim_weight == 0:
        return l1_weight * l1
    dssim = ((1 - ssim(pred, target, luminance)) / 2).clamp(0, 1).mean(1, keepdim=True)
    return ssim_weight * dssim + l1_weight * l1


def min_reprojection(
    warped_errors: torch.Tensor,
    identity_errors: torch.Tensor | None = None,
    tie_margin: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over source frames, with auto-masking (monodepth2).

    A pixel is masked out when some *unwarped* source already matches the target better than
    every warped source: a static camera, or an object moving with the camera.

    Args:
        warped_errors: [B,S,H,W] photometric error of each warped source against the target.
        identity_errors: [B,S,H,W] error of each unwarped source, or None to disable auto-masking.
        tie_margin: added to the identity errors so an exact tie keeps the pixel.
    Returns:
        loss: [B,1,H,W] minimum warped error (0 where masked out).
        mask: [B,1,H,W] 1 where the pixel counts.
    """
    check_tensor("warped_errors", warped_errors, "BSHW")
    min_warped = warped_errors.min(1, keepdim=True).values
    if identity_errors is None:
        return min_warped, torch.ones_like(min_warped)
    check_tensor("identity_errors", identity_errors, "BSHW")
    min_identity = (identity_errors + tie_margin).min(1, keepdim=True).values
    mask = (min_warped < min_identity).to(warped_errors.dtype)
    return min_warped * mask, mask
