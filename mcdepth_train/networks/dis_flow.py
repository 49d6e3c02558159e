"""A classical residual-motion source for the masks stage: OpenCV's DIS optical flow on the motion net's input.

The masks stage needs to know where the reference image, forward-splatted into a source view
through stage 1's depth and pose, still differs from the real source frame by a shift: that shift
is the residual motion m of ``p_s = project(p) + m(p)``. A learned RAFT must be trained to see
it (docs/motion_pretraining.md); dense inverse search (Kroeger et al., ECCV 2016) needs no
training and, measured on held-out drives, finds more of the moving cars (docs/stage2.md,
"Motion from DIS flow"). It replaces the motion net in the masks stage only: stage 1's training
and the exported depth net do not change.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from ..checks import check_same_hw, check_tensor
from ..config import DIS_PRESET_NAMES

DIS_PRESETS = {name: getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name.upper()}") for name in DIS_PRESET_NAMES}


def dis_scale(width: int, min_width: int) -> float:
    """Upsampling factor that gives DIS an image at least ``min_width`` pixels wide (never below 1).

    DIS matches 8x8 patches: at 192 pixels a car is a few patches wide, and upsampling first lets
    the patches resolve it (no new detail, but a finer grid of matches).
    """
    if width < 1 or min_width < 1:
        raise ValueError(f"dis_scale: width and min_width must be >= 1, got {width}, {min_width}")
    return max(1.0, min_width / width)


def _grey(image: torch.Tensor, scale: float) -> np.ndarray:
    """[3,H,W] RGB in [0,1] -> uint8 grey image, resized by ``scale``."""
    rgb = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale == 1.0:
        return grey
    h, w = grey.shape
    return cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)


class DISFlow(nn.Module):
    """Dense inverse search flow with the motion net's interface: ``forward(image_a, image_b) -> [B,2,H,W]`` pixels.

    No parameters and no gradient (the flow is computed in OpenCV on the CPU); deterministic for
    the same input.
    """

    def __init__(self, preset: str = "medium", min_width: int = 768):
        super().__init__()
        if preset not in DIS_PRESETS:
            raise ValueError(f"preset: expected one of {tuple(DIS_PRESETS)}, got {preset!r}")
        if min_width < 1:
            raise ValueError(f"min_width: expected >= 1, got {min_width}")
        self.preset, self.min_width = preset, min_width

    @classmethod
    def from_config(cls, masks_cfg) -> "DISFlow":
        return cls(masks_cfg.dis_preset, masks_cfg.dis_min_width)

    @torch.no_grad()
    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        """Flow from ``image_a`` to ``image_b`` ([B,3,H,W] RGB in [0,1]), in pixels of the input size."""
        check_tensor("image_a", image_a, "B3HW")
        check_tensor("image_b", image_b, "B3HW")
        check_same_hw(image_a=image_a, image_b=image_b)
        h, w = image_a.shape[-2:]
        scale = dis_scale(w, self.min_width)
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])
        flows = []
        for a, b in zip(image_a, image_b):
            flow = dis.calc(_grey(a, scale), _grey(b, scale), None)
            if scale != 1.0:  # back to the input grid, in its pixels
                flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA)
                flow[..., 0] *= w / round(w * scale)
                flow[..., 1] *= h / round(h * scale)
            flows.append(torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1))
        return torch.stack(flows).to(device=image_a.device, dtype=image_a.dtype)
