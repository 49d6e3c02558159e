"""Surface normals from depth and plane fitting (ground)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..checks import check_tensor
from .camera import backproject


def depth_to_normals(depth: torch.Tensor, K_inv: torch.Tensor) -> torch.Tensor:
    """Unit surface normals from a depth map, oriented towards the camera.

    Args:
        depth: [B,1,H,W]. K_inv: [B,3,3].
    Returns:
        [B,3,H,W] unit normals (camera frame: x right, y down, z forward). The ground under a
        level camera has normal close to (0, -1, 0).
    """
    points = backproject(depth, K_inv)
    if points.shape[-1] < 2 or points.shape[-2] < 2:
        raise ValueError(f"depth: expected at least 2x2 pixels, got {list(depth.shape)}")
    # Forward differences; the last column/row reuse their neighbour's difference (padding the
    # points instead would give zero differences there, hence zero-length normals).
    dx = F.pad(points[:, :, :, 1:] - points[:, :, :, :-1], (0, 1, 0, 0), mode="replicate")
    dy = F.pad(points[:, :, 1:, :] - points[:, :, :-1, :], (0, 0, 0, 1), mode="replicate")
    normals = torch.cross(dy, dx, dim=1)
    return F.normalize(normals, dim=1, eps=1e-12)


def ground_mask_from_normals(normals: torch.Tensor, max_angle_deg: float = 10.0, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """[B,3,H,W] normals -> [B,1,H,W] bool: normal within ``max_angle_deg`` of ``up`` (camera frame)."""
    check_tensor("normals", normals, "B3HW")
    up_t = torch.tensor(up, dtype=normals.dtype, device=normals.device).view(1, 3, 1, 1)
    cos = (normals * F.normalize(up_t, dim=1)).sum(1, keepdim=True)
    return cos >= math.cos(math.radians(max_angle_deg))


def fit_plane(points: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least-squares plane ``n . X + d = 0`` through a point set.

    Args:
        points: [B,N,3]. weights: [B,N] non-negative, or None for equal weights.
    Returns:
        normal: [B,3] unit normal, oriented so the camera origin lies on its positive side.
        offset: [B] d >= 0: the distance from the camera origin to the plane.
    """
    check_tensor("points", points, "BN3")
    if weights is None:
        weights = torch.ones(points.shape[:2], dtype=points.dtype, device=points.device)
    check_tensor("weights", weights, "BN")
    w = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    centroid = (points * w.unsqueeze(-1)).sum(1)  # [B,3]
    centred = points - centroid.unsqueeze(1)
    cov = centred.transpose(1, 2) @ (centred * w.unsqueeze(-1))
    _, eigvecs = torch.linalg.eigh(cov)
    normal = eigvecs[..., 0]  # smallest eigenvalue
    offset = -(normal * centroid).sum(-1)
    sign = torch.where(offset < 0, -1.0, 1.0).to(points.dtype)
    return normal * sign.unsqueeze(-1), offset * sign
