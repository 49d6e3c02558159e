"""Intrinsics and poses for the geometry tests."""
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
