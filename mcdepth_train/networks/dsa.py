"""Depth Scale Alignment net (paper 4.2, Eqs. 15-16): one positive scale per object.

The object network gives each object a depth map ô with a consistent shape but an arbitrary
scale. DSA predicts the factor ŝ that puts ô on the background's scale: ŝ·ô ≈ stage-1 depth.
It is trained on *static* objects only, whose stage-1 depth already has the right scale, and
applied to moving ones (one frame cannot tell them apart, so what it learns carries over).

Input, 5 channels on a square crop around the object:
    0-2  RGB in [0, 1]
    3    combined depth: stage-1 depth of the ground outside the object's box, plus ô normalised
         to mean 1 inside the object's mask (0 elsewhere)
    4    ô alone inside the mask (its raw, arbitrary scale: the factor to undo)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from ..checks import check_same_hw, check_tensor

IN_CHANNELS = 5


class DSANet(nn.Module):
    """ResNet18 (5-channel input, GroupNorm) + FC 512->256->128->1 with a positive (softplus) output.

    Args:
        groups: GroupNorm groups (every ResNet18 width, 64..512, divides by 32).
    """

    def __init__(self, groups: int = 32):
        super().__init__()
        backbone = torchvision.models.resnet18(weights=None, norm_layer=lambda ch: nn.GroupNorm(groups, ch))
        backbone.conv1 = nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3, bias=False)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(512, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 128), nn.ReLU(inplace=True),
            nn.Linear(128, 1),
        )
        # Start near scale 1: softplus(0.5413) = 1.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.constant_(self.head[-1].bias, math.log(math.e - 1))

    @classmethod
    def from_config(cls, cfg) -> "DSANet":
        return cls(groups=cfg.dsa.groups)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B,5,S,S] DSA input -> [B,512] pooled backbone features."""
        check_tensor("x", x, "BCHW", channels=IN_CHANNELS)
        return self.backbone(x)

    def scale(self, features: torch.Tensor) -> torch.Tensor:
        """[B,512] features -> [B] positive scale ŝ."""
        return F.softplus(self.head(features)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,5,S,S] DSA input -> [B] positive scale ŝ."""
        return self.scale(self.features(x))


@dataclass
class ObjectRecord:
    """One object in one frame, full-frame maps (all [1,H,W] but the image, [3,H,W]).

    Attributes:
        image: RGB in [0, 1].
        depth: stage-1 depth D (its scale is right for static objects).
        ground: ground mask (bool or 0/1).
        object_depth: the object net's depth ô (arbitrary scale).
        mask: the object's mask (bool or 0/1).
        true_scale: the factor s with s·ô = true depth when known (synthetic data), else None.
        moving: whether the object moves (DSA trains on static ones only).
    """

    image: torch.Tensor
    depth: torch.Tensor
    ground: torch.Tensor
    object_depth: torch.Tensor
    mask: torch.Tensor
    true_scale: float | None = None
    moving: bool = False


def object_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a [1,H,W] or [H,W] mask, bottom/right exclusive."""
    rows = mask.reshape(mask.shape[-2:]).any(1).nonzero().flatten()
    cols = mask.reshape(mask.shape[-2:]).any(0).nonzero().flatten()
    if rows.numel() == 0:
        raise ValueError("mask: empty object mask")
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def _crop_resize(x: torch.Tensor, window: tuple[int, int, int, int], size: int, mode: str) -> torch.Tensor:
    """Crop [C,H,W] to window (top, left, bottom, right; may leave the image: zero padded), resize to size x size."""
    top, left, bottom, right = window
    h, w = x.shape[-2:]
    pad = (max(-left, 0), max(right - w, 0), max(-top, 0), max(bottom - h, 0))
    x = F.pad(x, pad)
    x = x[:, top + pad[2] : bottom + pad[2], left + pad[0] : right + pad[0]]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x[None], size=(size, size), mode=mode, **kwargs)[0]


def crop_window(mask: torch.Tensor, context: float = 2.0) -> tuple[int, int, int, int]:
    """A square window centred on the object's box, ``context`` x its longer side (room for ground)."""
    top, left, bottom, right = object_box(mask)
    side = max(int(math.ceil(context * max(bottom - top, right - left))), 2)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    t, l = int(round(cy - side / 2)), int(round(cx - side / 2))
    return t, l, t + side, l + side


def build_dsa_input(record: ObjectRecord, crop_size: int = 128, context: float = 2.0) -> dict[str, torch.Tensor]:
    """The DSA input and the loss targets of one object, on a square crop around it.

    Returns:
        dict with "input" [5,S,S], "object_depth" [1,S,S] (ô), "depth" [1,S,S] (stage-1 D),
        "mask" [1,S,S] (0/1 float).
    """
    check_tensor("record.image", record.image, "3HW")
    for name in ("depth", "ground", "object_depth", "mask"):
        check_tensor(f"record.{name}", getattr(record, name), "1HW", floating=False)
    check_same_hw(image=record.image, depth=record.depth, ground=record.ground, object_depth=record.object_depth, mask=record.mask)
    mask = record.mask > 0
    obj = record.object_depth.float() * mask
    area = mask.sum().clamp_min(1)
    if not (obj[mask] > 0).all():
        raise ValueError("record.object_depth: must be positive inside the mask")
    top, left, bottom, right = object_box(mask)
    outside_box = torch.ones_like(mask)
    outside_box[:, top:bottom, left:right] = False
    ground_depth = record.depth.float() * (record.ground > 0) * outside_box
    combined = ground_depth + obj / (obj.sum() / area)
    window = crop_window(mask, context)
    rgb = _crop_resize(record.image.float(), window, crop_size, "bilinear")
    # Nearest for depth and masks: interpolating across an object's edge makes depths that exist nowhere.
    maps = _crop_resize(torch.cat([combined, obj, record.depth.float(), mask.float()], 0), window, crop_size, "nearest")
    return {"input": torch.cat([rgb, maps[:2]], 0), "object_depth": maps[1:2], "depth": maps[2:3], "mask": maps[3:4]}


def dsa_loss(scale: torch.Tensor, object_depth: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, delta: float = 0.005) -> torch.Tensor:
    """Huber(δ) between ŝ·ô and stage-1 depth over each object's pixels, averaged per object then over the batch.

    Args:
        scale: [B] ŝ. object_depth, depth, mask: [B,1,S,S].
    """
    check_tensor("scale", scale, "B")
    check_tensor("object_depth", object_depth, "B1HW")
    area = mask.flatten(1).sum(1).clamp_min(1)
    # Both sides are divided by the object's mean stage-1 depth, so delta is a relative error and
    # does not depend on the run's (arbitrary) depth unit, and near and far objects weigh the same.
    unit = ((depth * mask).flatten(1).sum(1) / area).clamp_min(1e-6).view(-1, 1, 1, 1)
    per_pixel = F.huber_loss(scale.view(-1, 1, 1, 1) * object_depth / unit, depth / unit, reduction="none", delta=delta)
    return ((per_pixel * mask).flatten(1).sum(1) / area).mean()


def reference_scale(sample: dict[str, torch.Tensor]) -> float:
    """The factor that puts ô on stage-1 depth: median(D / ô) over the object's pixels."""
    m = sample["mask"] > 0
    return float((sample["depth"][m] / sample["object_depth"][m].clamp_min(1e-6)).median())
