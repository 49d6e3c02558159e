"""Backward warping: sample a source image at given pixel coordinates."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_batch, check_tensor


def pixels_to_grid(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B,2,H',W'] pixel coordinates of an HxW image -> [B,H',W',2] grid for grid_sample.

    Pixel centres are integers, matching ``align_corners=False``.
    """
    u = (pix[:, 0] + 0.5) / width * 2 - 1
    v = (pix[:, 1] + 0.5) / height * 2 - 1
    return torch.stack([u, v], dim=-1)


def backward_warp(image_src: torch.Tensor, pix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct the target view by sampling the source image where target pixels land.

    Bilinear sampling with zero padding outside the source image.

    Args:
        image_src: [B,C,Hs,Ws] source image.
        pix: [B,2,H,W] for each target pixel, its (u, v) position in the source image.
    Returns:
        warped: [B,C,H,W] the source resampled into the target view.
        inside: [B,1,H,W] 1 where the sample fell inside the source image, else 0.
    """
    check_tensor("image_src", image_src, "BCHW")
    check_tensor("pix", pix, "B2HW")
    check_batch(image_src=image_src, pix=pix)
    h, w = image_src.shape[-2:]
    grid = pixels_to_grid(pix, h, w)
    warped = F.grid_sample(image_src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = ((grid.abs() <= 1).all(dim=-1, keepdim=True)).permute(0, 3, 1, 2).to(image_src.dtype)
    return warped, inside
