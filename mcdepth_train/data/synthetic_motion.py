"""Exact residual motion from the synthetic generator: the motion net's real input and its target.

Stage 1's motion net sees the reference frame forward-splatted into a source view with the
network's own depth and pose (``I_hat_s``, with holes) next to the real source frame ``I_s``; its
output at a source pixel q should be where the content splatted to q truly appears in ``I_s``
minus where the rigid model (the splat's depth and pose) put it. The generator knows every
camera and object pose, so that target is exact (``motion_pair``). Used by motion pre-training
(``stages/motion_pretrain.py``), ``bench/motion_eval.py`` and ``bench/motion_landscape.py``.

Geometry is float64 numpy on [H,W] maps (the images are small); the splat is the training one
(``geometry.forward_splat``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry import forward_splat
from .synthetic import SyntheticScene

REGION_KINDS = ("crossing", "oncoming", "lead", "parked", "background")


def _project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[2,N] pixel coordinates of camera-frame points [3 or 4, N] (depth clamped above 1 mm)."""
    x = K @ points[:3]
    return x[:2] / np.maximum(x[2:], 1e-3)


def _ray_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[4,H*W] homogeneous camera-frame points of every pixel at ``depth`` [H,W]; depth 0 (sky) gives
    the ray's direction (w = 0: a point at infinity, moved by rotation only)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).reshape(3, -1).astype(np.float64)
    d = depth.reshape(1, -1).astype(np.float64)
    at_infinity = d <= 0
    return np.vstack([np.where(at_infinity, rays, rays * d), (~at_infinity).astype(np.float64)])


def true_source_pixels(depth_gt: np.ndarray, instance_map: np.ndarray, K: np.ndarray, truth: dict, source_id: int) -> np.ndarray:
    """Where each reference pixel truly appears in frame ``source_id``: [2,H,W] pixel coordinates.

    Background pixels move with the camera (sky, depth 0, with its rotation only); a pixel of
    instance k also moves with k's world_from_object pose between the two frames.

    Args:
        depth_gt: [H,W] metres (0 = sky). instance_map: [H,W] ids (0 = background). K: [3,3].
        truth: {"cam_poses": {frame id: world_from_cam}, "object_poses": {frame id: {id: world_from_object}}}
            (``SyntheticFolderDataset.scene_truth``), with the reference at frame id 0.
    """
    cams, objects = truth["cam_poses"], truth["object_poses"]
    points = _ray_points(depth_gt, K)
    src_from_ref = np.linalg.inv(cams[source_id]) @ cams[0]
    out = _project(K, src_from_ref @ points)
    ids = instance_map.reshape(-1)
    for k in np.unique(ids):
        if k == 0 or k not in objects[0] or k not in objects[source_id]:
            continue
        sel = ids == k
        moved = np.linalg.inv(cams[source_id]) @ objects[source_id][k] @ np.linalg.inv(objects[0][k]) @ cams[0]
        out[:, sel] = _project(K, moved @ points[:, sel])
    return out.reshape(2, *depth_gt.shape)


def rigid_source_pixels(depth: np.ndarray, K: np.ndarray, src_from_ref: np.ndarray) -> np.ndarray:
    """The rigid projection of each reference pixel (at ``depth`` [H,W] > 0) into the source: [2,H,W]."""
    return _project(K, src_from_ref @ _ray_points(depth, K)).reshape(2, *depth.shape)


@dataclass
class Perturbation:
    """How far the splat's depth and pose are from the truth (0 everywhere = exact).

    depth_log_std: std of a smooth log-depth noise field (1/8-resolution Gaussian noise, bilinearly
    upsampled). rotation_deg: per-axis rotation error (degrees). translation_m: per-axis translation error (m).
    """

    depth_log_std: float = 0.0
    rotation_deg: float = 0.0
    translation_m: float = 0.0


def _smooth_field(rng: np.random.Generator, h: int, w: int, std: float) -> np.ndarray:
    coarse = torch.from_numpy(rng.normal(0.0, std, (1, 1, max(2, h // 8), max(2, w // 8))))
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix of the axis-angle vector (rx, ry, rz) in radians (Rodrigues)."""
    theta = np.array([rx, ry, rz], dtype=np.float64)
    angle = float(np.linalg.norm(theta))
    if angle < 1e-12:
        return np.eye(3)
    k = theta / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def perturb_pose(src_from_ref: np.ndarray, rng: np.random.Generator, rotation_deg: float, translation_m: float) -> np.ndarray:
    """``src_from_ref`` with a random rotation (per-axis std ``rotation_deg``) and translation error."""
    error = np.eye(4)
    error[:3, :3] = _rotation(*np.deg2rad(rng.normal(0.0, rotation_deg, 3)))
    error[:3, 3] = rng.normal(0.0, translation_m, 3)
    return error @ src_from_ref


def scene_truth(scene: SyntheticScene, ref: int, source: int) -> dict:
    """``true_source_pixels``'s truth for frames ``ref`` (id 0) and ``source`` (id ``source - ref``)."""
    offset = source - ref
    return {"cam_poses": {0: scene.cam_pose(ref), offset: scene.cam_pose(source)},
            "object_poses": {0: scene.object_poses(ref), offset: scene.object_poses(source)}}


def motion_pair(scene: SyntheticScene, ref: int, source: int, perturbation: Perturbation | None = None,
                rng: np.random.Generator | None = None, sky_depth: float = 60.0, supersample: int = 2,
                frames: dict | None = None) -> dict:
    """The motion net's input for one (reference, source) pair and its exact target.

    The reference is forward-splatted into the source view with the splat depth (the truth, sky at
    ``sky_depth``, times a smooth log-noise) and the splat pose (the truth, perturbed), as stage 1
    does with its own depth and pose. Target at source pixel q: the true source position of the
    reference pixel p splatted to q, minus p's rigid projection through that depth and pose.

    Args:
        scene: the generator's scene. ref, source: frame indices.
        perturbation: errors of the splat's depth and pose (None = exact: only movers carry residual).
        rng: drawing the perturbation. sky_depth: metres given to sky pixels for the splat.
        supersample: the splat's supersampling (``model.splat_supersample``).
        frames: {index: SyntheticFrame} already rendered (renders the missing ones).
    Returns:
        "splat" [3,H,W] float32 (0-1, 0 in holes), "source" [3,H,W], "target" [2,H,W] px (0 in holes),
        "valid" [1,H,W] (1 where the splat put a reference pixel), "moving" [1,H,W] (1 where it is
        a moving car's), "ref_index" [1,H,W] long, plus the reference view's "ref_image" [3,H,W],
        "depth_gt" [H,W], "instance_map" [H,W], "residual_ref" [2,H,W] (numpy, for analysis).
    """
    frames = dict(frames or {})
    for i in (ref, source):
        if i not in frames:
            frames[i] = scene.render(i)
    ref_frame, src_frame = frames[ref], frames[source]
    K = scene.K
    depth_gt = ref_frame.depth.astype(np.float64)
    depth_splat = np.where(depth_gt > 0, depth_gt, sky_depth)
    src_from_ref = np.linalg.inv(scene.cam_pose(source)) @ scene.cam_pose(ref)
    pose_splat = src_from_ref
    if perturbation is not None:
        rng = rng or np.random.default_rng()
        if perturbation.depth_log_std > 0:
            depth_splat = depth_splat * np.exp(_smooth_field(rng, *depth_gt.shape, perturbation.depth_log_std))
        if perturbation.rotation_deg > 0 or perturbation.translation_m > 0:
            pose_splat = perturb_pose(src_from_ref, rng, perturbation.rotation_deg, perturbation.translation_m)
    truth = scene_truth(scene, ref, source)
    residual_ref = (true_source_pixels(depth_gt, ref_frame.instance_map, K, truth, source - ref)
                    - rigid_source_pixels(depth_splat, K, pose_splat))

    ref_image = torch.from_numpy(ref_frame.image).permute(2, 0, 1).float() / 255.0
    K_t = torch.from_numpy(K).float()[None]
    splat = forward_splat(torch.from_numpy(depth_splat).float()[None, None], ref_image[None], K_t, K_t,
                          torch.from_numpy(pose_splat).float()[None], supersample=supersample)
    index = splat.ref_index[0, 0]
    valid = index >= 0
    flat = index.clamp_min(0).reshape(-1).numpy()
    target = torch.from_numpy(residual_ref.reshape(2, -1)[:, flat].reshape(2, *index.shape)).float() * valid
    dynamic_ids = [i.id for i in scene.instances if i.dynamic]
    moving_ref = np.isin(ref_frame.instance_map, dynamic_ids).reshape(-1)
    moving = torch.from_numpy(moving_ref[flat].reshape(index.shape)) & valid
    return {
        "splat": splat.image[0], "source": torch.from_numpy(src_frame.image).permute(2, 0, 1).float() / 255.0,
        "target": target, "valid": valid[None].float(), "moving": moving[None].float(), "ref_index": splat.ref_index[0],
        "ref_image": ref_image, "depth_gt": ref_frame.depth, "instance_map": ref_frame.instance_map,
        "residual_ref": residual_ref,
    }
