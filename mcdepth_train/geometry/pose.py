"""Rigid transforms as 4x4 matrices; frames are named ``dst_from_src``."""
from __future__ import annotations

import torch

from ..checks import check_tensor
from ..config import ROTATIONS


def _skew(v: torch.Tensor) -> torch.Tensor:
    """[B,3] -> [B,3,3] cross-product matrices."""
    zero = torch.zeros_like(v[:, 0])
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    return torch.stack(
        [torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1)], 1
    )


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. [B,3] axis * angle (radians) -> [B,3,3] rotation.

    Uses the Taylor series near zero so the gradient at the identity is finite.
    """
    check_tensor("axis_angle", axis_angle, "B3")
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True).unsqueeze(-1)  # [B,1,1]
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    sin_term = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    cos_term = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    K = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(K)
    return eye + sin_term * K + cos_term * (K @ K)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """[B,3] (rx, ry, rz) radians -> [B,3,3] ``Rz @ Ry @ Rx`` (x applied first)."""
    check_tensor("angles", angles, "B3")
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], -1).view(-1, 3, 3)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], -1).view(-1, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def pose_vec_to_matrix(rotation: torch.Tensor, translation: torch.Tensor, parameterisation: str = "axis_angle") -> torch.Tensor:
    """Rotation vector [B,3] + translation [B,3] -> [B,4,4] transform ``[R | t]``."""
    check_tensor("rotation", rotation, "B3")
    check_tensor("translation", translation, "B3")
    if parameterisation == "axis_angle":
        R = axis_angle_to_matrix(rotation)
    elif parameterisation == "euler":
        R = euler_to_matrix(rotation)
    else:
        raise ValueError(f"parameterisation: expected one of {ROTATIONS}, got {parameterisation!r}")
    T = torch.zeros(rotation.shape[0], 4, 4, dtype=rotation.dtype, device=rotation.device)
    T[:, :3, :3] = R
    T[:, :3, 3] = translation
    T[:, 3, 3] = 1
    return T


def invert_pose(dst_from_src: torch.Tensor) -> torch.Tensor:
    """[B,4,4] rigid transform -> its inverse ``src_from_dst`` (R^T, -R^T t), exact for rigid motion."""
    check_tensor("dst_from_src", dst_from_src, "B44")
    R = dst_from_src[:, :3, :3]
    t = dst_from_src[:, :3, 3:]
    out = torch.zeros_like(dst_from_src)
    out[:, :3, :3] = R.transpose(1, 2)
    out[:, :3, 3:] = -R.transpose(1, 2) @ t
    out[:, 3, 3] = 1
    return out
