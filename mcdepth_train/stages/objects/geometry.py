"""Stage 2a: the object network (paper 4.2, Eqs. 11-14): per-object depth ô and rigid motion.

Architecture: stage 1's :class:`~mcdepth_train.networks.depth.DepthNet` and
:class:`~mcdepth_train.networks.pose.PoseNet`, initialised from the stage-1 checkpoint
(``models["depth"]``, ``models["pose"]``), run on full frames multiplied by the object's masks
(reference mask on frame 0, the corresponded masks from
:func:`mcdepth_train.stages.masks.rules.correspond_objects` on frames -1/+1). The pose net's output is
the object's rigid motion relative to the camera, ``src_from_ref`` for the object's points, so
a rigid warp explains the object exactly. Loss: stage 1's photometric error inside the reference
mask + ``objects.smooth_weight`` x edge-aware smoothness inside the mask (:func:`object_losses`).

The result ô has one consistent scale inside each object but an arbitrary factor relative to
the background: the same warp comes from (k·depth, k·translation) for any k. DSA fixes k.

Depth is only observable through parallax: an object that keeps its place relative to the camera
(a lead car at ego speed) leaves the photometric loss flat in its depth, and the object net's
depth for it drifts from stage 1's with every step. :func:`translation_parallax` measures that
parallax from the object net's own depth and motion (it is scale-free); below
``objects.min_parallax_px`` the stage keeps stage 1's depth, divided by its median, as the object's
shape (DSA sets its scale).

Orchestration: ``mcdepth-train objects --run RUN`` (:func:`mcdepth_train.stages.objects.run.run_objects`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...checks import check_same_hw, check_tensor
from ...geometry import backproject, backward_warp, project, transform_points
from ...geometry.disparity import sigmoid_to_depth
from ...losses import edge_aware_smoothness, masked_mean, photometric_error
from ...networks.depth import DepthNet
from ...networks.pose import PoseNet


def mask_frames(images: dict[int, torch.Tensor], masks: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """{frame id: [B,3,H,W] image x [B,1,H,W] mask}: the object net's inputs (full frames, not crops)."""
    if set(images) != set(masks):
        raise ValueError(f"images and masks: frame ids differ, {sorted(images)} vs {sorted(masks)}")
    return {f: images[f] * masks[f].to(images[f].dtype) for f in images}


def warp_object(
    depth_ref: torch.Tensor, K: torch.Tensor, src_from_ref: torch.Tensor, image_src: torch.Tensor, mask_src: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked source frame seen from the reference view through the object's depth and rigid motion.

    Args:
        depth_ref: [B,1,H,W] object depth. K: [B,3,3]. src_from_ref: [B,4,4] the object's motion.
        image_src: [B,3,H,W] source frame. mask_src: [B,1,H,W] the object's mask in the source frame.
    Returns:
        warped: [B,3,H,W] masked source resampled at the reference pixels (0 off the object).
        inside: [B,1,H,W] 1 where the sample fell inside the source image.
    """
    points = backproject(depth_ref, torch.linalg.inv(K))
    pix, _ = project(points, K, src_from_ref)
    return backward_warp(image_src * mask_src.to(image_src.dtype), pix)


def object_losses(
    depths: list[torch.Tensor],
    target: torch.Tensor,
    mask_ref: torch.Tensor,
    sources: dict[int, torch.Tensor],
    masks_src: dict[int, torch.Tensor],
    poses: dict[int, torch.Tensor],
    K: torch.Tensor,
    smooth_weight: float = 0.02,
    ssim_weight: float = 0.85,
    l1_weight: float = 0.15,
    luminance: bool = True,
) -> dict[str, torch.Tensor]:
    """Masked photometric + masked smoothness loss of the object net (paper Eqs. 13-14).

    Every scale's depth is upsampled to full resolution before warping (as in stage 1). Both the
    target and the sources are mask-multiplied, so a depth that warps object pixels off the
    object in a source frame meets black and pays for it. The photometric error is the minimum
    over sources, averaged over reference-mask pixels whose sample lands inside the source image.

    Args:
        depths: object depth per scale, finest first, [B,1,H/2^s,W/2^s].
        target: [B,3,H,W] reference frame. mask_ref: [B,1,H,W] object mask in it.
        sources: {id: [B,3,H,W]}. masks_src: {id: [B,1,H,W]}. poses: {id: src_from_ref [B,4,4]}.
        K: [B,3,3] full-resolution intrinsics.
    Returns:
        {"loss", "photo", "smooth"} scalars.
    """
    check_tensor("target", target, "B3HW")
    check_tensor("mask_ref", mask_ref, "B1HW", floating=False)
    check_same_hw(target=target, mask_ref=mask_ref)
    if not depths:
        raise ValueError("depths: need at least one scale")
    if set(sources) != set(poses) or set(sources) != set(masks_src):
        raise ValueError(f"sources, masks_src and poses: frame ids differ ({sorted(sources)}, {sorted(masks_src)}, {sorted(poses)})")
    mask = mask_ref.to(target.dtype)
    target_masked = target * mask
    h, w = target.shape[-2:]
    photo_total = target.new_zeros(())
    smooth_total = target.new_zeros(())
    for scale, depth in enumerate(depths):
        check_tensor(f"depths[{scale}]", depth, "B1HW")
        full = depth if depth.shape[-2:] == (h, w) else F.interpolate(depth, (h, w), mode="bilinear", align_corners=False)
        errors, insides = [], []
        for sid in sorted(sources):
            warped, inside = warp_object(full, K, poses[sid], sources[sid], masks_src[sid])
            errors.append(photometric_error(warped, target_masked, ssim_weight, l1_weight, luminance))
            insides.append(inside)
        error = torch.cat(errors, 1).min(1, keepdim=True).values
        inside = torch.cat(insides, 1).amax(1, keepdim=True)
        photo_total = photo_total + masked_mean(error, mask * inside)
        # Smoothness at the scale's own resolution, inside the (downsampled) mask.
        small_mask = F.interpolate(mask, depth.shape[-2:], mode="nearest")
        small_image = F.interpolate(target, depth.shape[-2:], mode="bilinear", align_corners=False)
        smooth = edge_aware_smoothness(1.0 / depth.clamp_min(1e-6), small_image * small_mask)
        smooth_total = smooth_total + masked_mean(smooth, small_mask) / (2**scale)
    photo = photo_total / len(depths)
    smooth = smooth_total / len(depths)
    return {"loss": photo + smooth_weight * smooth, "photo": photo, "smooth": smooth}


def object_forward(
    depth_net: DepthNet, pose_net: PoseNet, frames: dict[int, torch.Tensor], masks: dict[int, torch.Tensor]
) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """Run the object nets on mask-multiplied frames.

    Args:
        frames: {0: reference, -1/+1: sources} [B,3,H,W]. masks: the object's mask in each, [B,1,H,W].
    Returns:
        (depth per scale, finest first; {source id: the object's src_from_ref [B,4,4]}).
    """
    masked = mask_frames(frames, masks)
    depths = [sigmoid_to_depth(s, depth_net.min_depth, depth_net.max_depth) for s in depth_net(masked[0])]
    poses = {sid: pose_net.src_from_ref(masked[0], masked[sid], sid) for sid in masked if sid != 0}
    return depths, poses


def init_object_nets(payload: dict, cfg) -> tuple[DepthNet, PoseNet]:
    """Object depth and pose nets initialised from a stage-1 checkpoint payload (``models['depth'|'pose']``)."""
    cfg.model.pretrained_path = ""
    depth_net, pose_net = DepthNet.from_config(cfg), PoseNet.from_config(cfg)
    for name, net in (("depth", depth_net), ("pose", pose_net)):
        if name not in payload.get("models", {}):
            raise ValueError(f"checkpoint: no '{name}' network to initialise the object net from "
                             f"(it has: {', '.join(payload.get('models', {}))})")
        net.load_state_dict(payload["models"][name])
    return depth_net, pose_net


def translation_parallax(depth: torch.Tensor, mask: torch.Tensor, K: torch.Tensor, K_inv: torch.Tensor,
                         src_from_ref: torch.Tensor) -> torch.Tensor:
    """Mean pixel shift over the object that the *translation* of its motion causes: how well its depth is observed.

    A rotation moves every pixel the same whatever its depth, so only the translation part of the
    object's motion carries depth information. Each object pixel is lifted with its depth, rotated,
    and projected with and without the translation; the shift between the two is the parallax.
    (k·depth, k·translation) give the same value, so the object net's arbitrary scale does not matter.

    Args:
        depth: [B,1,H,W] object depth. mask: [B,1,H,W] the object's pixels (> 0.5).
        K, K_inv: [B,3,3]. src_from_ref: [B,4,4] the object's motion.
    Returns:
        [B] mean parallax in pixels (0 for an empty mask).
    """
    check_tensor("mask", mask, "B1HW")
    check_same_hw(depth=depth, mask=mask)
    check_tensor("src_from_ref", src_from_ref, "B44")
    rotation_only = src_from_ref.clone()
    rotation_only[:, :3, 3] = 0
    points = transform_points(backproject(depth, K_inv), rotation_only)
    with_translation, _ = project(points + src_from_ref[:, :3, 3, None, None], K)
    without, _ = project(points, K)
    shift = (with_translation - without).norm(dim=1, keepdim=True)
    inside = (mask > 0.5).to(shift.dtype)
    return (shift * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)
