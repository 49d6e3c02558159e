"""Regularisers: edge-aware depth smoothness and motion sparsity."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_same_hw, check_tensor


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """First-order smoothness of mean-normalised disparity, relaxed at image edges.

    ``|dx d*| exp(-mean_c |dx I|) + |dy d*| exp(-mean_c |dy I|)`` with ``d* = d / mean(d)`` per
    image, so the penalty does not shrink as the whole disparity shrinks.

    Args:
        disp: [B,1,H,W] disparity (inverse depth). image: [B,C,H,W].
    Returns:
        [B,1,H,W] map; the last column / row hold no x / y gradient term.
    """
    check_tensor("disp", disp, "B1HW")
    check_tensor("image", image, "BCHW")
    check_same_hw(disp=disp, image=image)
    norm = disp / disp.mean(dim=(2, 3), keepdim=True).clamp_min(1e-7)
    grad_disp_x = (norm[:, :, :, :-1] - norm[:, :, :, 1:]).abs()
    grad_disp_y = (norm[:, :, :-1, :] - norm[:, :, 1:, :]).abs()
    grad_img_x = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    term_x = F.pad(grad_disp_x * torch.exp(-grad_img_x), (0, 1, 0, 0))
    term_y = F.pad(grad_disp_y * torch.exp(-grad_img_y), (0, 0, 0, 1))
    return term_x + term_y


def motion_sparsity(motion: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Li et al. (2021) sparsity: ``2 mu sqrt(|m| / mu + 1)`` with mu the detached mean |m|.

    mu is taken per image and per channel. The penalty grows like |m| for small motion
    relative to mu and like sqrt for large, so a few large motions are cheap and a
    spread of small ones is not.

    Args:
        motion: [B,C,H,W] motion field (2D flow or 3D offset).
    Returns:
        [B,C,H,W] map.
    """
    check_tensor("motion", motion, "BCHW")
    magnitude = motion.abs()
    mu = magnitude.mean(dim=(2, 3), keepdim=True).detach()
    return 2 * mu * torch.sqrt(magnitude / (mu + eps) + 1)
