"""Regularisers: edge-aware depth smoothness and motion sparsity."""
from __future__ import annotations

import math

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


def sparsity_ramp(step: int, start_step: int, ramp_steps: int) -> float:
    """Factor in [0, 1] on the sparsity weight: 0 before ``start_step``, then linear to 1 over ``ramp_steps``.

    The motion has to appear before it can be kept sparse: at the onset every pixel's motion is
    about the image mean, where the sparsity gradient (``1/sqrt(2)`` per pixel of motion) exceeds
    the photometric reward of a moving car (docs/stage1.md, "Sparsity in pixel units").

    Args:
        step: optimiser steps done. start_step: the first step the term may act (the first step
            of the 'all' phase). ramp_steps: length of the linear warm-up (0 = full weight at once).
    """
    if ramp_steps < 0:
        raise ValueError(f"ramp_steps: expected >= 0, got {ramp_steps}")
    if step < start_step:
        return 0.0
    if ramp_steps == 0:
        return 1.0
    return min(1.0, (step - start_step + 1) / ramp_steps)


def pixel_sparsity_weight(weight_before_divide: float, source_depth: float, width_ratio: float = 1.0) -> float:
    """The sparsity weight in pixel units that penalises a motion as a pre-divide weight does.

    The authors add their motion ``m`` to the homogeneous projection before the perspective divide,
    so a pixel shift ``p`` is ``m = z_s * p`` (``z_s``: the source-view depth in model units). The
    sparsity term is positively homogeneous of degree 1 (``S(c m) = c S(m)``, ``mu`` scales with
    it), so ``w S(z_s p) = (w z_s) S(p)``. The same physical motion also spans ``1/width_ratio``
    as many pixels at a ``width_ratio`` times larger image.

    Args:
        weight_before_divide: the weight on pre-divide motion (the authors' 0.02).
        source_depth: typical source depth ``z_s`` of the moving pixels, in the model's units.
        width_ratio: the authors' image width / this image width.
    Returns:
        ``weight_before_divide * source_depth * width_ratio``.
    """
    if weight_before_divide < 0 or source_depth <= 0 or width_ratio <= 0:
        raise ValueError(f"pixel_sparsity_weight: need weight >= 0, depth > 0, width_ratio > 0; got "
                         f"{weight_before_divide}, {source_depth}, {width_ratio}")
    return weight_before_divide * source_depth * width_ratio


def sparsity_onset_bound(photometric_slope: float) -> float:
    """Largest sparsity weight under which motion can grow from near zero on a moving object.

    At the onset the motion of every pixel is about its image mean ``mu`` and the sparsity gradient
    per pixel of motion is ``w / sqrt(|m|/mu + 1) = w / sqrt(2)``; the motion grows only where the
    photometric loss falls faster than that: ``w < sqrt(2) * slope``.

    Args:
        photometric_slope: fall of the per-pixel photometric error per pixel of motion on the object.
    """
    return math.sqrt(2.0) * photometric_slope


def sparsity_suppression_bound(photometric_slope: float, magnitude_over_mean: float = 1.0) -> float:
    """Smallest sparsity weight that holds a motion of ``magnitude_over_mean`` x the image mean at zero.

    The gradient at ``|m| = r mu`` is ``w / sqrt(r + 1)``; it beats a photometric slope when
    ``w > slope * sqrt(r + 1)``. Background residue (stage 1's depth errors) sits at ``r ~ 1``; a car
    that moves ``r ~ 100`` x the mean needs ``w < slope * sqrt(101)`` to keep its motion.
    """
    return photometric_slope * math.sqrt(magnitude_over_mean + 1.0)
