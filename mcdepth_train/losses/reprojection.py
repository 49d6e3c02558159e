"""The stage-1 view-synthesis loss, shared by stage 1, the object net (2a) and stage 3.

For each pyramid scale the predicted disparity is upsampled to full resolution, converted to depth,
and every source frame is warped into the reference view with the camera pose (and optional
pixel-wise motion); the photometric error is the per-pixel minimum over sources, auto-masked
(monodepth2), averaged over scales. Functions return maps or (value, mask) pairs so callers can
restrict the loss further (the object net multiplies in its object mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_tensor
from ..geometry import backproject, backward_warp, project
from ..geometry.disparity import sigmoid_to_depth
from .photometric import min_reprojection, photometric_error
from .pseudo_label import masked_mean
from .regularizers import edge_aware_smoothness


def reproject_pixels(
    depth_tgt: torch.Tensor,
    inv_K: torch.Tensor,
    K: torch.Tensor,
    src_from_tgt: torch.Tensor,
    flow: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each reference pixel lands in a source image.

    ``p_s = project(K, src_from_tgt, D_t K^-1 p_t) + m(p_t)``. Adding the 2D motion ``m`` (pixels)
    after the divide equals the paper's 3D offset before it (``flow_to_offset(m, z_s, K)``).

    Args:
        depth_tgt: [B,1,H,W] reference depth. inv_K, K: [B,3,3] at HxW.
        src_from_tgt: [B,4,4]. flow: [B,2,H,W] residual motion in source pixels, or None.
    Returns:
        pix: [B,2,H,W] source pixel coordinates. z: [B,1,H,W] depth in the source frame.
    """
    pix, z = project(backproject(depth_tgt, inv_K), K, src_from_tgt)
    if flow is not None:
        check_tensor("flow", flow, "B2HW")
        pix = pix + flow
    return pix, z


def reconstruct(
    image_src: torch.Tensor,
    depth_tgt: torch.Tensor,
    K: torch.Tensor,
    inv_K: torch.Tensor,
    src_from_tgt: torch.Tensor,
    flow: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference view re-synthesised from a source frame (bilinear, zero padding).

    Returns:
        warped: [B,C,H,W]. inside: [B,1,H,W] 1 where the sample fell inside the source image.
    """
    pix, _ = reproject_pixels(depth_tgt, inv_K, K, src_from_tgt, flow)
    return backward_warp(image_src, pix)


@dataclass
class PhotometricOptions:
    """The photometric part of :class:`mcdepth_train.config.LossConfig`."""

    ssim_weight: float = 0.85
    l1_weight: float = 0.15
    ssim_luminance: bool = True
    automask: bool = True

    @classmethod
    def from_config(cls, loss_cfg) -> "PhotometricOptions":
        return cls(loss_cfg.ssim_weight, loss_cfg.l1_weight, loss_cfg.ssim_luminance, loss_cfg.automask)


def min_photometric_map(
    target: torch.Tensor,
    warped: list[torch.Tensor],
    sources: list[torch.Tensor],
    options: PhotometricOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum photometric error over warped sources, auto-masked.

    Args:
        target: [B,3,H,W] reference image. warped: per source, [B,3,H,W] reconstruction.
        sources: per source, [B,3,H,W] the unwarped source (for auto-masking).
    Returns:
        loss: [B,1,H,W] (0 where auto-masked). mask: [B,1,H,W] 1 where the pixel counts.
    """
    def err(pred: torch.Tensor) -> torch.Tensor:
        return photometric_error(pred, target, options.ssim_weight, options.l1_weight, options.ssim_luminance)

    warped_errors = torch.cat([err(w) for w in warped], 1)
    identity = torch.cat([err(s) for s in sources], 1) if options.automask else None
    return min_reprojection(warped_errors, identity)


def disparity_to_full_depth(disp: torch.Tensor, size: tuple[int, int], min_depth: float, max_depth: float) -> torch.Tensor:
    """Sigmoid disparity at any scale -> depth at full resolution (bilinear on the sigmoid, monodepth2)."""
    if disp.shape[-2:] != size:
        disp = F.interpolate(disp, size=size, mode="bilinear", align_corners=False)
    return sigmoid_to_depth(disp, min_depth, max_depth)


def multiscale_photometric_loss(
    disps: list[torch.Tensor],
    target: torch.Tensor,
    sources: dict,
    K: torch.Tensor,
    inv_K: torch.Tensor,
    poses: dict,
    options: PhotometricOptions,
    min_depth: float,
    max_depth: float,
    flows: dict | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """The stage-1 photometric loss averaged over scales.

    Args:
        disps: sigmoid disparity per scale, finest first ([B,1,H/2^s,W/2^s]).
        target: [B,3,H,W] reference image (full resolution). sources: {frame_id: [B,3,H,W]}.
        K, inv_K: [B,3,3] full-resolution intrinsics. poses: {frame_id: src_from_tgt [B,4,4]}.
        options: weights of SSIM/L1 and auto-masking. min_depth, max_depth: the disparity mapping.
        flows: {frame_id: [B,2,H,W] residual motion in pixels} (missing or None = rigid).
        mask: [B,1,H,W] extra region the loss is restricted to (object net), or None.
    Returns:
        loss: scalar mean over scales of ``masked_mean(min_error, automask * mask)``.
        details: "per_scale" (list of scalars), and at scale 0: "loss_map", "automask",
            "warped" {frame_id: [B,3,H,W]}, "depth" [B,1,H,W].
    """
    if not disps:
        raise ValueError("disps: expected at least one scale")
    ids = sorted(sources)
    if set(ids) != set(poses):
        raise ValueError(f"poses: frame ids {sorted(poses)} differ from sources {ids}")
    flows = flows or {}
    size = tuple(target.shape[-2:])
    per_scale, details = [], {}
    src_list = [sources[f] for f in ids]
    for scale, disp in enumerate(disps):
        depth = disparity_to_full_depth(disp, size, min_depth, max_depth)
        warped = {f: reconstruct(sources[f], depth, K, inv_K, poses[f], flows.get(f))[0] for f in ids}
        loss_map, automask = min_photometric_map(target, [warped[f] for f in ids], src_list, options)
        weight = automask if mask is None else automask * mask
        per_scale.append(masked_mean(loss_map, weight))
        if scale == 0:
            details.update(loss_map=loss_map, automask=automask, warped=warped, depth=depth)
    details["per_scale"] = per_scale
    return torch.stack(per_scale).mean(), details


def multiscale_smoothness(
    disps: list[torch.Tensor], images: list[torch.Tensor], weight: float, scale_decay: bool = True,
    masks: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Edge-aware smoothness summed over scales, ``weight / 2**s`` at scale s when ``scale_decay``.

    Args:
        disps: sigmoid disparity per scale. images: the reference image at each scale (same sizes).
        masks: optional [B,1,h,w] per scale restricting the term (object net).
    Returns:
        Scalar, averaged over scales.
    """
    terms = []
    for s, (disp, image) in enumerate(zip(disps, images)):
        smooth = edge_aware_smoothness(disp, image)
        value = smooth.mean() if masks is None else masked_mean(smooth, masks[s])
        terms.append(value * (weight / 2**s if scale_decay else weight))
    return torch.stack(terms).mean()
