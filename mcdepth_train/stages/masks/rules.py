"""Moving-object masks (paper 4.3): dynamic evidence, instances, static/dynamic rules, ground, correspondence.

The rules are small pure functions so each can be tested on hand-made masks:

* :func:`dynamic_evidence` - mean residual motion over the source frames >= ``motion_threshold_px``,
  and (:func:`relative_motion`) more than a depth error could explain.
* :func:`components_to_instances` - connected components of a binary mask -> instance stack.
* :func:`central_strip` / :func:`classify_moving` - an instance moves when at least
  ``dynamic_fraction`` of its pixels show motion, or when it touches the central vertical strip
  (a lead car driving at ego speed shows almost no residual flow).
* :func:`nearer_than_road` - opt-in: an instance whose stage-1 depth at its bottom edge is much
  nearer than the road under it does not stand where stage 1 put it (a crossing car).
* :func:`taller_than_road_user` - an instance that would be more than ``max_height_ratio`` camera
  heights tall if it stood on the road (sky and building tops: their lowest row is at or above the
  horizon) is not a road user.
* :func:`filter_small` - instances under ``min_instance_fraction`` of the image are dropped.
* :func:`remove_ground` - ground pixels never belong to an object.
* :func:`ground_from_depth` - ground pseudo-mask from the normals of back-projected depth.
* :func:`warp_masks` / :func:`correspond_objects` - an instance's mask in the frames +-1.
* :func:`clean_instances` - the rules applied in their order (ground, size, static/dynamic).

Instance masks of one frame are numpy bool stacks ``[N,H,W]``; batched maps are torch tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ...checks import check_batch, check_same_hw, check_tensor
from ...geometry import backproject, depth_to_normals, flow_to_offset, forward_splat, ground_mask_from_normals, project, scale_intrinsics, transform_points
from ...geometry.ground_contact import fit_ground_plane, ground_contact_scale, ground_seen_below, height_over_camera


def as_instance_stack(name: str, masks: np.ndarray) -> np.ndarray:
    """Check ``masks`` is an [N,H,W] stack (ValueError naming ``name``) and return it as bool."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name}: expected an instance stack [N,H,W], got shape {list(masks.shape)}")
    return masks.astype(bool, copy=False)


def as_mask_map(name: str, mask: np.ndarray, hw: tuple[int, int] | None = None) -> np.ndarray:
    """Check ``mask`` is an HxW map (of size ``hw`` when given) and return it as bool."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected an HxW map, got shape {list(mask.shape)}")
    if hw is not None and mask.shape != tuple(hw):
        raise ValueError(f"{name}: size {list(mask.shape)} differs from the instances' {list(hw)}")
    return mask.astype(bool, copy=False)


# ------------------------------------------------------------------------------ dynamic evidence
def dynamic_evidence(
    flows: list[torch.Tensor] | torch.Tensor,
    threshold_px: float = 1.0,
    relative: torch.Tensor | None = None,
    min_relative: float = 0.0,
) -> torch.Tensor:
    """Pixels whose residual motion, averaged over the source frames, is at least ``threshold_px``
    (and, given ``relative``, at least ``min_relative`` of the translational flow).

    Args:
        flows: residual motion of each source frame in the reference view, a list of [B,2,H,W]
            (or one [B,2,H,W]) in pixels; stage 1's ``flow`` for sources -1 and +1.
        threshold_px: smallest mean magnitude that counts as motion (pixels).
        relative: [B,1,H,W] :func:`relative_motion` of the same flows, or None (no relative rule).
        min_relative: smallest relative motion that counts (0 = every pixel passes).
    Returns:
        [B,1,H,W] bool.
    """
    if isinstance(flows, torch.Tensor):
        flows = [flows]
    if len(flows) == 0:
        raise ValueError("flows: need at least one flow map")
    for i, f in enumerate(flows):
        check_tensor(f"flows[{i}]", f, "B2HW")
    check_same_hw(**{f"flows[{i}]": f for i, f in enumerate(flows)})
    magnitude = torch.stack([f.norm(dim=1, keepdim=True) for f in flows]).mean(0)
    evidence = magnitude >= threshold_px
    if relative is not None:
        check_tensor("relative", relative, "B1HW")
        check_same_hw(relative=relative, flow=flows[0])
        evidence &= relative >= min_relative
    return evidence


def relative_motion(
    flows: list[torch.Tensor], depth: torch.Tensor, K: torch.Tensor, src_from_ref: list[torch.Tensor], min_flow_px: float = 1e-3,
    far_explains: bool = False,
) -> torch.Tensor:
    """Residual motion as a share of the translational flow that the depth gives, averaged over the sources.

    The translational flow is where a pixel goes through ``depth`` and the pose minus where it goes
    under the rotation alone (infinite depth); it scales as 1/Z. A static point whose depth is
    ``(1 + e)`` times too far (or too near) needs a residual of about ``|e|`` times it, so this
    ratio reads as the relative depth error that would explain the motion instead: ~0.2 on a
    parked car that stage 1 got 20% wrong, ~1 or more on an oncoming or crossing car.
    Translational flows under ``min_flow_px`` (a camera standing still) count as ``min_flow_px``,
    so residual motion there reads as large.

    ``far_explains``: a point farther than ``depth`` says, up to infinity, moves by ``-a`` times
    its translational flow ``t`` for some ``a`` in [0, 1] (at infinity it moves by rotation
    alone). Such a residual is then a depth error whatever its size: the ratio becomes the
    distance from the residual to the segment ``{-a t : 0 <= a <= 1}``, over ``|t|`` (unchanged for a
    residual that points the way of ``t``, i.e. a nearer point, or across it). The sky and far
    walls, which a depth net puts too near, need exactly such a residual.

    Args:
        flows: [B,2,H,W] residual motion per source (pixels, reference view).
        depth: [B,1,H,W] reference depth. K: [B,3,3] intrinsics at that size.
        src_from_ref: [B,4,4] camera motion per source, in the order of ``flows``.
    Returns:
        [B,1,H,W] ratio >= 0.
    """
    if len(flows) == 0 or len(flows) != len(src_from_ref):
        raise ValueError(f"flows and src_from_ref: need one pose per flow, got {len(flows)} and {len(src_from_ref)}")
    check_tensor("depth", depth, "B1HW")
    check_tensor("K", K, "B33")
    points = backproject(depth, torch.linalg.inv(K))
    ratios = []
    for i, (flow, pose) in enumerate(zip(flows, src_from_ref)):
        check_tensor(f"flows[{i}]", flow, "B2HW")
        check_same_hw(**{f"flows[{i}]": flow, "depth": depth})
        rotation_only = pose.clone()
        rotation_only[:, :3, 3] = 0
        moved, _ = project(points, K, pose)
        rotated, _ = project(points, K, rotation_only)
        t = moved - rotated
        translational = t.norm(dim=1, keepdim=True).clamp_min(min_flow_px)
        if far_explains:  # distance to the residuals a farther point needs: -a t, a in [0, 1]
            along = ((flow * t).sum(1, keepdim=True) / translational**2).clamp(-1.0, 0.0)
            ratios.append((flow - along * t).norm(dim=1, keepdim=True) / translational)
        else:
            ratios.append(flow.norm(dim=1, keepdim=True) / translational)
    return torch.stack(ratios).mean(0)


# ------------------------------------------------------------------------------------ instances
def components_to_instances(mask: np.ndarray, min_pixels: int = 1) -> np.ndarray:
    """Connected components (8-connected) of a binary HxW mask as an instance stack [N,H,W] bool.

    Components are ordered by their first pixel in raster order; those under ``min_pixels`` are
    left out.
    """
    mask = as_mask_map("mask", mask)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    stack = [labels == k for k in range(1, count + 1)]
    stack = [m for m in stack if m.sum() >= min_pixels]
    if not stack:
        return np.zeros((0, *mask.shape), dtype=bool)
    return np.stack(stack)


def instances_to_map(masks: np.ndarray) -> np.ndarray:
    """[N,H,W] bool -> HxW int32 id map (instance k has id k+1, 0 = none; a later instance wins overlaps)."""
    masks = as_instance_stack("masks", masks)
    out = np.zeros(masks.shape[1:], dtype=np.int32)
    for k, m in enumerate(masks):
        out[m] = k + 1
    return out


def map_to_instances(id_map: np.ndarray) -> np.ndarray:
    """HxW int id map (0 = none) -> [N,H,W] bool, one per id present, in increasing id order."""
    id_map = np.asarray(id_map)
    if id_map.ndim != 2:
        raise ValueError(f"id_map: expected an HxW map, got shape {list(id_map.shape)}")
    ids = [i for i in np.unique(id_map) if i != 0]
    if not ids:
        return np.zeros((0, *id_map.shape), dtype=bool)
    return np.stack([id_map == i for i in ids])


def central_strip(height: int, width: int, fraction: float) -> np.ndarray:
    """HxW bool: the central vertical strip ``fraction * width`` wide (at least one column when > 0).

    The columns are ``[floor(W/2 - fraction*W/2), ceil(W/2 + fraction*W/2))``; ``fraction = 0``
    gives an empty strip (rule off).
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction: expected a value in [0, 1], got {fraction}")
    strip = np.zeros((height, width), dtype=bool)
    if fraction == 0:
        return strip
    half = fraction * width / 2
    left = max(int(np.floor(width / 2 - half)), 0)
    right = min(max(int(np.ceil(width / 2 + half)), left + 1), width)
    strip[:, left:right] = True
    return strip


def moving_fraction(masks: np.ndarray, dynamic: np.ndarray) -> np.ndarray:
    """[N] fraction of each instance's pixels that show motion (0 for an empty instance)."""
    masks = as_instance_stack("masks", masks)
    dynamic = as_mask_map("dynamic", dynamic, masks.shape[1:])
    area = masks.sum(axis=(1, 2))
    moving = (masks & dynamic).sum(axis=(1, 2))
    return np.where(area > 0, moving / np.maximum(area, 1), 0.0)


def classify_moving(
    masks: np.ndarray, dynamic: np.ndarray, dynamic_fraction: float = 0.5, central_strip_fraction: float = 0.05
) -> np.ndarray:
    """[N] bool: an instance moves if >= ``dynamic_fraction`` of its pixels move or it touches the central strip.

    Args:
        masks: [N,H,W] bool instances. dynamic: HxW bool dynamic evidence.
        dynamic_fraction: fraction of moving pixels that makes an instance dynamic.
        central_strip_fraction: width of the central strip as a fraction of W (0 = rule off).
    """
    masks = as_instance_stack("masks", masks)
    moving = moving_fraction(masks, dynamic) >= dynamic_fraction
    strip = central_strip(masks.shape[1], masks.shape[2], central_strip_fraction)
    touches = (masks & strip).any(axis=(1, 2))
    return moving | touches


def _ground_and_plane(masks: np.ndarray, depth: np.ndarray, ground: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(ground as a bool map, depth as float64, the frame's ground plane or None), checked against ``masks``' size."""
    ground = as_mask_map("ground", ground, masks.shape[1:])
    depth = np.asarray(depth, np.float64)
    check_same_hw(masks=masks, depth=depth)
    return ground, depth, fit_ground_plane(depth, ground)


def nearer_than_road(masks: np.ndarray, depth: np.ndarray, ground: np.ndarray, ratio: float,
                     min_contact_share: float = 0.5) -> np.ndarray:
    """[N] bool: instances that stage 1 puts more than ``ratio`` times nearer than the road they stand on.

    A static object stands on the road, so stage 1's depth of its lowest pixels matches the road's
    depth there (paper Obs. 2). A car crossing the view moves its image faster than a static point
    at its depth would, and stage 1's static-world loss explains that by putting it nearer; so a
    car whose bottom edge is much nearer than the road plane under it is moving, whatever its
    residual motion shows. Only "too near" counts: a smooth depth net often puts a parked car's
    lowest rows too far, blended with what lies behind it. Instances whose contact is out of
    view (:func:`~mcdepth_train.geometry.ground_contact.ground_seen_below` under
    ``min_contact_share``) or frames without a ground plane are not judged (False).

    Args:
        masks: [N,H,W] bool instances (ground removed). depth: HxW stage-1 depth. ground: HxW bool.
        ratio: road depth / stage-1 depth above which an instance moves; <= 0 turns the rule off.
    """
    masks = as_instance_stack("masks", masks)
    out = np.zeros(len(masks), dtype=bool)
    if ratio <= 0 or not len(masks):
        return out
    ground, depth, plane = _ground_and_plane(masks, depth, ground)
    if plane is None:
        return out
    for k, mask in enumerate(masks):
        if mask.any() and ground_seen_below(ground, mask) >= min_contact_share:
            scale = ground_contact_scale(depth, ground, depth, mask, plane)
            out[k] = bool(np.isfinite(scale) and scale > ratio)
    return out


def taller_than_road_user(masks: np.ndarray, depth: np.ndarray, ground: np.ndarray, max_height_ratio: float) -> np.ndarray:
    """[N] bool: instances that cannot be a road user standing on the road (paper Obs. 2).

    An object stands on the ground, so its height over the camera's follows from its rows alone
    (:func:`~mcdepth_train.geometry.ground_contact.height_over_camera`): the sky, tree and building
    tops that a residual motion flags end on or above the horizon, or would be many camera
    heights tall. Instances over ``max_height_ratio`` are flagged (to be dropped); frames without a
    ground plane, or a plane with no horizon above the road, flag nothing.

    Args:
        masks: [N,H,W] bool instances (ground removed). depth: HxW stage-1 depth (only its ratios
            matter: the horizon does not depend on the scale). ground: HxW bool.
        max_height_ratio: tallest road user in camera heights (3: up to 4.9 m under a 1.65 m
            car camera); <= 0 turns the rule off.
    """
    masks = as_instance_stack("masks", masks)
    out = np.zeros(len(masks), dtype=bool)
    if max_height_ratio <= 0 or not len(masks):
        return out
    _, _, plane = _ground_and_plane(masks, depth, ground)
    for k, mask in enumerate(masks):
        if mask.any():
            out[k] = bool(height_over_camera(plane, mask) > max_height_ratio)  # NaN (no horizon): kept
    return out


def filter_small(masks: np.ndarray, min_fraction: float = 0.005) -> np.ndarray:
    """[N] bool keep-flags: instances with at least ``min_fraction`` of the image's pixels (and at least one)."""
    masks = as_instance_stack("masks", masks)
    area = masks.sum(axis=(1, 2))
    return (area >= min_fraction * masks.shape[1] * masks.shape[2]) & (area > 0)


def remove_ground(masks: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """Instances with the ground pixels taken out ([N,H,W] bool, a new array)."""
    masks = as_instance_stack("masks", masks)
    ground = as_mask_map("ground", ground, masks.shape[1:])
    return masks & ~ground


def grow_in_depth(masks: np.ndarray, depth: np.ndarray, ground: np.ndarray | None, which: np.ndarray,
                  tolerance: float, radius_px: int) -> np.ndarray:
    """Instances ``which`` grown into the rest of their depth layer ([N,H,W] bool, a new array).

    Motion evidence covers a car only where its residual reaches the threshold, so a moving
    component is often a part of the car. Each selected instance takes the pixels connected to
    it (8-connected) within ``radius_px`` of it whose stage-1 depth is within a factor
    ``1 + tolerance`` of its median depth: the rest of the same surface, not the road
    (``ground`` pixels are never taken) and not a pixel another instance already holds.
    """
    masks = as_instance_stack("masks", masks)
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != masks.shape[1:]:
        raise ValueError(f"depth: sizes differ, {depth.shape} vs masks {masks.shape[1:]}")
    which = np.asarray(which, dtype=bool)
    if which.shape != (len(masks),):
        raise ValueError(f"which: expected {len(masks)} flags, got shape {which.shape}")
    if tolerance <= 0 or radius_px < 1:
        raise ValueError(f"grow_in_depth: tolerance must be > 0 and radius_px >= 1, got {tolerance!r}, {radius_px!r}")
    out = masks.copy()
    log_depth = np.log(np.maximum(depth, 1e-6))
    blocked = np.zeros(masks.shape[1:], dtype=bool) if ground is None else as_mask_map("ground", ground, masks.shape[1:])
    holders = out.sum(0)  # how many instances hold each pixel, kept up to date as instances grow
    for k in np.flatnonzero(which):
        if not out[k].any():
            continue
        layer = np.abs(log_depth - np.median(log_depth[out[k]])) < np.log1p(tolerance)
        allowed = layer & ~blocked & (holders == 0) & ndimage.binary_dilation(out[k], iterations=radius_px)
        labels, _ = ndimage.label(allowed | out[k], structure=np.ones((3, 3), dtype=bool))
        touched = np.unique(labels[out[k]])
        grown = np.isin(labels, touched[touched > 0]) & allowed
        out[k] |= grown
        holders += grown
    return out


@dataclass
class FrameInstances:
    """The cleaned instances of one frame."""

    masks: np.ndarray  # [N,H,W] bool, ground removed, small ones dropped
    moving: np.ndarray  # [N] bool

    @property
    def dynamic_mask(self) -> np.ndarray:
        """HxW bool union of the moving instances (M_dyn of Eq. 5)."""
        if len(self.masks) == 0 or not self.moving.any():
            return np.zeros(self.masks.shape[1:], dtype=bool)
        return self.masks[self.moving].any(0)

    @property
    def static(self) -> np.ndarray:
        return self.masks[~self.moving]


def clean_instances(
    masks: np.ndarray,
    dynamic: np.ndarray,
    ground: np.ndarray | None = None,
    dynamic_fraction: float = 0.5,
    central_strip_fraction: float = 0.05,
    min_instance_fraction: float = 0.005,
    depth: np.ndarray | None = None,
    contact_ratio: float = 0.0,
    grow_depth_tolerance: float = 0.0,
    grow_radius_px: int = 4,
    max_height_ratio: float = 0.0,
) -> FrameInstances:
    """Apply the mask rules in order: remove ground, drop small instances, classify static/dynamic.

    The ground goes first, so an "instance" that is mostly road shrinks and may fall under the
    size limit, and the moving fraction is measured on object pixels only. With ``contact_ratio``
    > 0 (and ``depth`` and ``ground`` given), :func:`nearer_than_road` also marks instances moving.
    With ``grow_depth_tolerance`` > 0 (and ``depth``), the moving instances are then grown into
    their depth layer (:func:`grow_in_depth`); static ones are left as they are. With
    ``max_height_ratio`` > 0 (and ``depth`` and ``ground``), instances that could not stand on the
    road (:func:`taller_than_road_user`) are dropped after the size filter.
    """
    masks = as_instance_stack("masks", masks)
    dynamic = as_mask_map("dynamic", dynamic, masks.shape[1:])
    if ground is not None:
        masks = remove_ground(masks, ground)
    masks = masks[filter_small(masks, min_instance_fraction)]
    if max_height_ratio > 0:
        if depth is None or ground is None:
            raise ValueError("max_height_ratio: the road-user rule needs the frame's depth and ground")
        masks = masks[~taller_than_road_user(masks, depth, ground, max_height_ratio)]
    moving = classify_moving(masks, dynamic, dynamic_fraction, central_strip_fraction)
    if contact_ratio > 0:
        if depth is None or ground is None:
            raise ValueError("contact_ratio: the contact rule needs the frame's depth and ground")
        moving = moving | nearer_than_road(masks, depth, ground, contact_ratio)
    if grow_depth_tolerance > 0 and moving.any():
        if depth is None:
            raise ValueError("grow_depth_tolerance: growing moving instances needs the frame's depth")
        masks = grow_in_depth(masks, depth, ground, moving, grow_depth_tolerance, grow_radius_px)
    return FrameInstances(masks=masks, moving=moving)


def clean_instances_from_config(masks: np.ndarray, dynamic: np.ndarray, ground: np.ndarray | None, cfg,
                                depth: np.ndarray | None = None) -> FrameInstances:
    """:func:`clean_instances` with the thresholds of ``cfg.masks`` (``depth``: stage 1's, for the contact rule)."""
    m = cfg.masks
    return clean_instances(masks, dynamic, ground, m.dynamic_fraction, m.central_strip_fraction, m.min_instance_fraction,
                           depth=depth, contact_ratio=m.contact_ratio,
                           grow_depth_tolerance=m.grow_depth_tolerance, grow_radius_px=m.grow_radius_px,
                           max_height_ratio=m.max_height_ratio)


# ---------------------------------------------------------------------------------------- ground
def ground_from_depth(depth: torch.Tensor, K_inv: torch.Tensor, max_angle_deg: float = 10.0) -> torch.Tensor:
    """Ground pseudo-mask: pixels whose surface normal (from back-projected depth) is within ``max_angle_deg`` of vertical.

    Args:
        depth: [B,1,H,W] stage-1 depth. K_inv: [B,3,3] inverse intrinsics.
    Returns:
        [B,1,H,W] bool.
    """
    return ground_mask_from_normals(depth_to_normals(depth, K_inv), max_angle_deg)


# -------------------------------------------------------------------------------- correspondence
def warp_masks(
    masks: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    src_from_ref: torch.Tensor,
    flow: torch.Tensor | None = None,
    supersample: int = 2,
) -> torch.Tensor:
    """Carry reference-frame masks into a source frame with stage-1 depth, pose and residual motion.

    Every reference pixel moves rigidly with ``src_from_ref`` and then by its residual ``flow``
    (pixels, in the reference view, as stage 1 predicts it). The whole scene is splatted with a
    z-buffer, so an object hidden behind a nearer surface in the source frame loses those pixels.
    The splat runs at ``supersample`` x the resolution and is averaged back, so the result is the
    covered fraction of each source pixel, in [0, 1].

    Args:
        masks: [B,N,H,W] float (or bool) reference masks.
        depth: [B,1,H,W] reference depth. K: [B,3,3] intrinsics (same for both frames).
        src_from_ref: [B,4,4] camera motion. flow: [B,2,H,W] residual motion, or None.
        supersample: splatting resolution factor (1 = no supersampling).
    Returns:
        [B,N,H,W] coverage of each mask in the source frame.
    """
    check_tensor("masks", masks, "BNHW", floating=False)
    check_tensor("depth", depth, "B1HW")
    check_tensor("K", K, "B33")
    check_tensor("src_from_ref", src_from_ref, "B44")
    check_same_hw(masks=masks, depth=depth)
    check_batch(masks=masks, depth=depth, K=K, src_from_ref=src_from_ref)
    if supersample < 1:
        raise ValueError(f"supersample: expected an integer >= 1, got {supersample}")
    b, n, h, w = masks.shape
    masks = masks.to(depth.dtype)
    offset = None
    if flow is not None:
        check_tensor("flow", flow, "B2HW")
        check_same_hw(flow=flow, depth=depth)
        # A 2D shift of (du, dv) at destination depth z is the 3D offset (du z/fx, dv z/fy, 0).
        points_src = transform_points(backproject(depth, torch.linalg.inv(K)), src_from_ref)
        offset = flow_to_offset(flow, points_src[:, 2:3], K)
    s = supersample
    K_dst = scale_intrinsics(K, s, s)
    splat = forward_splat(depth, masks, K, K_dst, src_from_ref, out_hw=(h * s, w * s), supersample=s, offset=offset)
    return torch.nn.functional.avg_pool2d(splat.image, s) if s > 1 else splat.image


def correspond_objects(
    masks: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    poses: dict[int, torch.Tensor],
    flows: dict[int, torch.Tensor] | None = None,
    threshold: float = 0.5,
    min_fraction: float = 0.005,
    supersample: int = 2,
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """An object's masks in the neighbouring frames, and which objects are usable in all of them.

    Args:
        masks: [B,N,H,W] reference masks. depth: [B,1,H,W] stage-1 depth. K: [B,3,3].
        poses: {source id: src_from_ref [B,4,4]}. flows: {source id: [B,2,H,W]} residual motion.
        threshold: warped coverage at or above this is inside the object (``correspondence_threshold``).
        min_fraction: every one of the object's masks (reference and each source) must cover at
            least this fraction of the image.
    Returns:
        ({source id: [B,N,H,W] bool}, keep [B,N] bool).
    """
    check_tensor("masks", masks, "BNHW", floating=False)
    h, w = masks.shape[-2:]
    min_pixels = max(min_fraction * h * w, 1)
    keep = (masks > 0).flatten(2).sum(-1) >= min_pixels
    warped: dict[int, torch.Tensor] = {}
    for sid, pose in poses.items():
        flow = None if flows is None else flows.get(sid)
        coverage = warp_masks(masks, depth, K, pose, flow, supersample)
        warped[sid] = coverage >= threshold
        keep &= warped[sid].flatten(2).sum(-1) >= min_pixels
    return warped, keep


# --------------------------------------------------------------------------------- one frame, all rules
@dataclass
class FrameMasks:
    """Everything the masks stage produces for one reference frame."""

    instances: FrameInstances  # cleaned instances with their static/dynamic flags
    evidence: np.ndarray  # HxW bool dynamic evidence
    ground: np.ndarray  # HxW bool ground
    warped: dict  # {source id: [N,H,W] bool} each instance's mask in the source frames
    keep: np.ndarray  # [N] bool: usable by the object net (large enough in all three frames)


def frame_masks(
    depth: torch.Tensor,
    K: torch.Tensor,
    poses: dict[int, torch.Tensor],
    flows: dict[int, torch.Tensor],
    instances: np.ndarray | None = None,
    ground: np.ndarray | None = None,
    cfg=None,
) -> FrameMasks:
    """All mask rules for one reference frame from stage 1's outputs.

    Args:
        depth: [1,1,H,W] stage-1 depth. K: [1,3,3] intrinsics at that size.
        poses: {source id: src_from_ref [1,4,4]}. flows: {source id: [1,2,H,W]} residual motion (pixels).
        instances: [N,H,W] bool from the configured source, or None to use the connected
            components of the dynamic evidence (moving objects only).
        ground: HxW bool from the ground net, or None for the normal-based mask.
        cfg: run config (``cfg.masks`` thresholds); None = defaults.
    """
    if cfg is None:
        from ...config import Config

        cfg = Config()
    m = cfg.masks
    check_tensor("depth", depth, "11HW")
    h, w = depth.shape[-2:]
    sources = sorted(flows)
    relative = relative_motion([flows[s] for s in sources], depth, K, [poses[s] for s in sources], far_explains=m.far_explains)
    evidence = dynamic_evidence([flows[s] for s in sources], m.motion_threshold_px, relative, m.min_relative_motion)[0, 0].cpu().numpy()
    if ground is None:
        ground = ground_from_depth(depth, torch.linalg.inv(K), m.ground_normal_deg)[0, 0].cpu().numpy()
    if instances is None:
        instances = components_to_instances(evidence, max(int(m.min_instance_fraction * h * w), 1))
    cleaned = clean_instances_from_config(instances, evidence, ground, cfg, depth[0, 0].cpu().numpy())
    masks_t = torch.from_numpy(cleaned.masks).to(depth.device)[None].float()
    if len(cleaned.masks):
        warped_t, keep_t = correspond_objects(
            masks_t, depth, K, poses, flows, m.correspondence_threshold, m.min_instance_fraction, m.correspondence_supersample
        )
        warped = {s: v[0].cpu().numpy() for s, v in warped_t.items()}
        keep = keep_t[0].cpu().numpy()
    else:
        warped = {s: np.zeros((0, h, w), dtype=bool) for s in poses}
        keep = np.zeros(0, dtype=bool)
    return FrameMasks(cleaned, evidence, ground, warped, keep)


# ------------------------------------------------------------------------------------ evaluation
def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two HxW bool masks (1.0 when both are empty)."""
    pred, truth = as_mask_map("pred", pred), as_mask_map("truth", truth, pred.shape)
    union = (pred | truth).sum()
    return 1.0 if union == 0 else float((pred & truth).sum() / union)


def static_object_recall(
    pred_static: np.ndarray, true_instances: np.ndarray, true_moving: np.ndarray, iou_threshold: float = 0.5
) -> tuple[float, int, int]:
    """Fraction of the true static objects that some predicted static instance matches (IoU >= threshold).

    Returns:
        (recall, matched, total); recall is NaN when there is no true static object.
    """
    pred_static = as_instance_stack("pred_static", pred_static)
    true_static = as_instance_stack("true_instances", true_instances)[~np.asarray(true_moving, dtype=bool)]
    if len(true_static) == 0:
        return float("nan"), 0, 0
    matched = sum(any(mask_iou(p, t) >= iou_threshold for p in pred_static) for t in true_static)
    return matched / len(true_static), int(matched), len(true_static)
