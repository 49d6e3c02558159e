"""Evaluation regions on LiDAR ground truth, where real data has no moving-object masks.

``ground`` = LiDAR points within a few centimetres of a RANSAC road plane; ``objects`` = points
0.3-3 m above that plane inside the road corridor. On a street these are mostly vehicles: a
**proxy** for the dynamic region (parked cars are in it too; a pedestrian on the pavement is not).
The KITTI folder loader's Velodyne maps and a bag's PointCloud2 maps go through the same function,
so both paths give the same regions on the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class RoadRegionSettings:
    """How ground and objects are told apart in LiDAR ground truth (eval.* keys of the same names)."""

    ground_tolerance_m: float = 0.05  # |height above the road plane| below this: ground
    object_min_height_m: float = 0.3  # objects: this high above the road plane ...
    object_max_height_m: float = 3.0  # ... up to this
    corridor_half_width_m: float = 5.0  # ... and at most this far left or right of the camera
    max_fit_depth_m: float = 40.0  # the plane is fitted to points nearer than this
    max_tilt_deg: float = 20.0  # the road plane's normal within this angle of the camera's up (-y)
    iterations: int = 200


def fit_road_plane(points: np.ndarray, settings: RoadRegionSettings, seed: int = 0) -> Optional[np.ndarray]:
    """RANSAC plane (n, c) with n the unit normal pointing up (camera -y) and n.x + c = 0 on the road.

    ``points``: [N,3] in the camera frame (x right, y down, z forward). None when too few points
    below the camera fit a near-horizontal plane. Seeded: the same points give the same plane.
    """
    below = points[(points[:, 1] > 0) & (points[:, 2] < settings.max_fit_depth_m)]
    if len(below) < 50:
        return None
    rng = np.random.default_rng(seed)
    up = np.array([0.0, -1.0, 0.0])
    cos_tilt = np.cos(np.radians(settings.max_tilt_deg))
    best, best_count = None, 0
    for _ in range(settings.iterations):
        a, b, c = below[rng.choice(len(below), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n = n / norm
        if n @ up < 0:
            n = -n
        if n @ up < cos_tilt:
            continue
        count = int((np.abs(below @ n - n @ a) < settings.ground_tolerance_m).sum())
        if count > best_count:
            best, best_count = np.append(n, -n @ a), count
    if best is None:
        return None
    for _ in range(2):  # least-squares refinement on the inliers
        inliers = below[np.abs(below @ best[:3] + best[3]) < settings.ground_tolerance_m]
        if len(inliers) < 3:
            break
        centre = inliers.mean(axis=0)
        n = np.linalg.svd(inliers - centre, full_matrices=False)[2][2]
        n = n if n @ up > 0 else -n
        best = np.append(n, -n @ centre)
    return best


def road_regions(depth: np.ndarray, K: np.ndarray, settings: RoadRegionSettings = RoadRegionSettings(),
                 max_depth: float = 80.0) -> Optional[dict[str, np.ndarray]]:
    """{'ground': HxW bool, 'objects': HxW bool} of a sparse depth map, or None without a road plane.

    Args:
        depth: HxW metres, 0 = no measurement (LiDAR ground truth at its native size).
        K: [3,3] intrinsics of that map (pixel centres at integer coordinates).
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0) & (depth < max_depth)
    v, u = np.nonzero(valid)
    z = depth[v, u]
    points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    plane = fit_road_plane(points, settings)
    if plane is None:
        return None
    height = points @ plane[:3] + plane[3]
    ground = np.abs(height) < settings.ground_tolerance_m
    objects = (height >= settings.object_min_height_m) & (height <= settings.object_max_height_m) & \
        (np.abs(points[:, 0]) <= settings.corridor_half_width_m)
    out = {}
    for name, sel in (("ground", ground), ("objects", objects)):
        mask = np.zeros(depth.shape, dtype=bool)
        mask[v[sel], u[sel]] = True
        out[name] = mask
    return out
