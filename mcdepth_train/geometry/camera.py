"""Pinhole camera: intrinsics per pyramid level, back-projection and projection.

Conventions: pixel (u, v) is the centre of column u, row v (so pixel centres sit at integers);
camera frame x right, y down, z forward; depth is metres (or the run's unit) along z.
"""
from __future__ import annotations

import torch

from ..checks import check_batch, check_same_hw, check_tensor


def scale_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Intrinsics of the same camera after resizing the image by (scale_x, scale_y).

    Uses the pixel-centre convention of ``F.interpolate(align_corners=False)``:
    ``cx' = (cx + 0.5) * scale_x - 0.5``.

    Args:
        K: [B,3,3] or [3,3] intrinsics.
    Returns:
        Intrinsics of the same shape.
    """
    if not isinstance(K, torch.Tensor) or K.shape[-2:] != (3, 3):
        raise ValueError(f"K: expected shape [...,3,3], got {list(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__}")
    K = K.clone()
    K[..., 0, 0] = K[..., 0, 0] * scale_x
    K[..., 1, 1] = K[..., 1, 1] * scale_y
    K[..., 0, 2] = (K[..., 0, 2] + 0.5) * scale_x - 0.5
    K[..., 1, 2] = (K[..., 1, 2] + 0.5) * scale_y - 0.5
    return K


def intrinsics_pyramid(K: torch.Tensor, num_scales: int) -> list[torch.Tensor]:
    """[K at full size, K at 1/2, 1/4, ...]: one entry per pyramid level."""
    return [scale_intrinsics(K, 0.5**s, 0.5**s) for s in range(num_scales)]


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates [3,H,W]: (u, v, 1) with u the column index."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=0)


def backproject(depth: torch.Tensor, K_inv: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a 3D point in its camera's frame.

    Args:
        depth: [B,1,H,W] depth along z.
        K_inv: [B,3,3] inverse intrinsics.
    Returns:
        points: [B,3,H,W] camera-frame points, ``depth * K_inv @ (u, v, 1)``.
    """
    check_tensor("depth", depth, "B1HW")
    check_tensor("K_inv", K_inv, "B33")
    check_batch(depth=depth, K_inv=K_inv)
    b, _, h, w = depth.shape
    rays = K_inv @ pixel_grid(h, w, depth.device, depth.dtype).reshape(1, 3, -1)
    return (rays * depth.reshape(b, 1, -1)).reshape(b, 3, h, w)


def transform_points(points: torch.Tensor, dst_from_src: torch.Tensor) -> torch.Tensor:
    """Apply a rigid transform to a point map: [B,3,H,W] -> [B,3,H,W] with ``R @ X + t``."""
    check_tensor("points", points, "B3HW")
    check_tensor("dst_from_src", dst_from_src, "B44")
    b, _, h, w = points.shape
    flat = points.reshape(b, 3, -1)
    out = dst_from_src[:, :3, :3] @ flat + dst_from_src[:, :3, 3:]
    return out.reshape(b, 3, h, w)


def project(
    points: torch.Tensor,
    K: torch.Tensor,
    dst_from_src: torch.Tensor | None = None,
    offset: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points into a (possibly other) camera's image.

    ``D_dst * p_dst = K (R X + t + offset)``: the optional per-pixel 3D ``offset`` is the
    pixel-wise object motion, added before the perspective divide.

    Args:
        points: [B,3,H,W] points in the source camera frame.
        K: [B,3,3] intrinsics of the destination camera.
        dst_from_src: [B,4,4] rigid transform, or None for the identity.
        offset: [B,3,H,W] per-pixel 3D offset in the destination frame, or None.
        eps: smallest depth used in the divide (points behind the camera keep their sign).
    Returns:
        pix: [B,2,H,W] pixel coordinates (u, v) in the destination image.
        depth: [B,1,H,W] z of each point in the destination frame.
    """
    check_tensor("points", points, "B3HW")
    check_tensor("K", K, "B33")
    check_batch(points=points, K=K)
    if dst_from_src is not None:
        points = transform_points(points, dst_from_src)
    if offset is not None:
        check_tensor("offset", offset, "B3HW")
        check_same_hw(points=points, offset=offset)
        points = points + offset
    b, _, h, w = points.shape
    cam = K @ points.reshape(b, 3, -1)
    z = cam[:, 2:3]
    z_safe = torch.where(z.abs() < eps, torch.where(z < 0, -eps, eps).to(z.dtype), z)
    pix = cam[:, :2] / z_safe
    return pix.reshape(b, 2, h, w), z.reshape(b, 1, h, w)


def flow_to_offset(flow: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The 3D offset (before the divide) that moves each projected pixel by a 2D ``flow``.

    A pixel offset (du, dv) at projected depth z equals the 3D offset (du*z/fx, dv*z/fy, 0).
    With ``depth`` = 1 this is the (m_x/f_x, m_y/f_y, 0) of the method notes.

    Args:
        flow: [B,2,H,W] pixels. depth: [B,1,H,W] projected depth. K: [B,3,3].
    Returns:
        [B,3,H,W] offset.
    """
    check_tensor("flow", flow, "B2HW")
    check_tensor("depth", depth, "B1HW")
    check_tensor("K", K, "B33")
    check_same_hw(flow=flow, depth=depth)
    check_batch(flow=flow, depth=depth, K=K)
    fx = K[:, 0, 0].view(-1, 1, 1, 1)
    fy = K[:, 1, 1].view(-1, 1, 1, 1)
    return torch.cat([flow[:, :1] * depth / fx, flow[:, 1:] * depth / fy, torch.zeros_like(depth)], dim=1)
