"""A small ground-segmentation net: RGB -> ground logit per pixel (paper 4.3).

Trained on the normal-based ground pseudo-mask (:func:`mcdepth_train.stages.masks.rules.ground_from_depth`),
it cleans that mask up: normals from a monocular depth map are noisy, a segmentation of the
image is not tied to the depth's errors.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_tensor


def _block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.GroupNorm(8, out_ch), nn.ELU(inplace=True))


class GroundNet(nn.Module):
    """Tiny U-Net (two downsamplings). [B,3,H,W] RGB in [0,1] -> [B,1,H,W] logits; H, W multiples of 4."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.enc0 = _block(3, width)
        self.enc1 = _block(width, 2 * width, 2)
        self.enc2 = _block(2 * width, 4 * width, 2)
        self.dec1 = _block(4 * width + 2 * width, 2 * width)
        self.dec0 = _block(2 * width + width, width)
        self.head = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_tensor("image", image, "B3HW")
        if image.shape[-2] % 4 or image.shape[-1] % 4:
            raise ValueError(f"image: height and width must be multiples of 4, got {list(image.shape[-2:])}")
        x0 = self.enc0(image - 0.5)
        x1 = self.enc1(x0)
        x2 = self.enc2(x1)
        y1 = self.dec1(torch.cat([F.interpolate(x2, scale_factor=2, mode="nearest"), x1], 1))
        y0 = self.dec0(torch.cat([F.interpolate(y1, scale_factor=2, mode="nearest"), x0], 1))
        return self.head(y0)
