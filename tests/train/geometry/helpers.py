"""Intrinsics, poses and a flat road for the geometry tests."""
import numpy as np
import torch


def make_K(fx=100.0, fy=100.0, cx=8.0, cy=6.0, b=1, dtype=torch.float32):
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(b, 3, 3).clone()


def make_pose(R=None, t=(0.0, 0.0, 0.0), dtype=torch.float32):
    T = torch.eye(4, dtype=dtype).unsqueeze(0)
    if R is not None:
        T[0, :3, :3] = R
    T[0, :3, 3] = torch.tensor(t, dtype=dtype)
    return T


def flat_road(h=32, w=24, f=20.0, cy=10.0, cam_height=1.5):
    """Depth of a flat road seen by a level pinhole camera: Z = f·h / (y - cy) below the horizon."""
    rows = np.arange(h) + 0.5
    z = np.where(rows > cy + 1, f * cam_height / np.maximum(rows - cy, 1e-6), 50.0)
    return np.tile(z[:, None], (1, w)).astype(np.float32), (lambda y: f * cam_height / (y - cy))
