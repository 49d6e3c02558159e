"""geometry/surface.py: normals from depth, the ground mask and plane fitting."""
import math

import pytest
import torch

from mcdepth_train.geometry import depth_to_normals, fit_plane, ground_mask_from_normals
from tests.train.geometry.helpers import make_K


def _ground_depth(h, w, K, cam_height=1.5, far=50.0):
    """Depth of a flat ground ``cam_height`` below a level camera (y down); ``far`` above the horizon."""
    fy, cy = K[0, 1, 1].item(), K[0, 1, 2].item()
    v = torch.arange(h, dtype=K.dtype).view(h, 1).expand(h, w)
    below = v > cy + 0.5
    depth = torch.where(below, cam_height * fy / (v - cy).clamp_min(1e-3), torch.full_like(v, far))
    return depth.view(1, 1, h, w), below.view(1, 1, h, w)


def test_depth_to_normals_ground_plane_points_up():
    K = make_K(20, 20, 7.5, 3.5)
    depth, below = _ground_depth(12, 16, K)
    normals = depth_to_normals(depth, torch.linalg.inv(K))
    assert normals.shape == (1, 3, 12, 16)
    # every ground pixel whose finite-difference stencil stays on the ground, border included
    ground = below.clone()
    ground[:, :, : int(3.5 + 0.5) + 2] = False
    n = normals.permute(0, 2, 3, 1)[ground.squeeze(1)]
    assert n.shape[0] > 0
    assert torch.allclose(n, torch.tensor([0.0, -1.0, 0.0]).expand_as(n), atol=1e-4)
    # the last row and column are on the ground too: their normals must be unit vectors, not zero
    assert torch.allclose(normals[0, :, -1, :].T, torch.tensor([0.0, -1.0, 0.0]).expand(16, 3), atol=1e-4)
    assert torch.allclose(normals[0, :, 8:, -1].T, torch.tensor([0.0, -1.0, 0.0]).expand(4, 3), atol=1e-4)


def test_depth_to_normals_fronto_parallel_wall_faces_camera():
    K = make_K(10, 10, 3, 2, b=2)
    depth = torch.full((2, 1, 5, 7), 4.0)
    normals = depth_to_normals(depth, torch.linalg.inv(K))
    expected = torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1, 1).expand(2, 3, 5, 7)
    assert torch.allclose(normals, expected, atol=1e-5)
    assert torch.allclose(normals.norm(dim=1), torch.ones(2, 5, 7), atol=1e-5)


def test_ground_mask_from_normals():
    K = make_K(20, 20, 7.5, 3.5)
    depth, below = _ground_depth(12, 16, K)
    mask = ground_mask_from_normals(depth_to_normals(depth, torch.linalg.inv(K)))
    assert mask.dtype == torch.bool and mask.shape == (1, 1, 12, 16)
    assert mask[0, 0, 7:].all()  # clearly on the ground
    assert not mask[0, 0, :3].any()  # the far wall above the horizon faces the camera
    # hand angles: 5 deg off vertical is ground, 15 deg is not; a wall never is
    angles = torch.tensor([5.0, 15.0, 90.0]) * math.pi / 180
    n = torch.stack([torch.zeros(3), -torch.cos(angles), -torch.sin(angles)]).view(1, 3, 1, 3)
    assert ground_mask_from_normals(n, 10.0)[0, 0, 0].tolist() == [True, False, False]
    assert ground_mask_from_normals(n, 20.0)[0, 0, 0].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="normals"):
        ground_mask_from_normals(torch.zeros(1, 2, 3, 3))


def test_fit_plane_recovers_known_plane():
    torch.manual_seed(8)
    normal = torch.tensor([0.1, -0.95, 0.2], dtype=torch.float64)
    normal = normal / normal.norm()
    d = 1.6  # n . X + d = 0, origin on the positive side
    # points on the plane: X = -d n + a e1 + b e2
    e1 = torch.linalg.cross(normal, torch.tensor([1.0, 0, 0], dtype=torch.float64))
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(normal, e1)
    ab = torch.randn(50, 2, dtype=torch.float64) * 5
    pts = (-d * normal + ab[:, :1] * e1 + ab[:, 1:] * e2).unsqueeze(0)
    n_fit, d_fit = fit_plane(pts)
    assert torch.allclose(n_fit[0], normal, atol=1e-8)
    assert d_fit[0].item() == pytest.approx(d, abs=1e-8)
    assert torch.allclose((pts @ n_fit[0]) + d_fit[0], torch.zeros(1, 50, dtype=torch.float64), atol=1e-8)
    # an outlier with zero weight is ignored
    pts_out = torch.cat([pts, torch.tensor([[[10.0, 10.0, 10.0]]], dtype=torch.float64)], 1)
    w = torch.ones(1, 51, dtype=torch.float64)
    w[0, -1] = 0
    n_w, d_w = fit_plane(pts_out, w)
    assert torch.allclose(n_w[0], normal, atol=1e-8)
    assert d_w[0].item() == pytest.approx(d, abs=1e-8)
    # a plane given with flipped points orientation still comes out with d >= 0
    n_f, d_f = fit_plane(torch.tensor([[[0.0, 2.0, 1.0], [1.0, 2.0, 5.0], [-3.0, 2.0, 9.0], [2.0, 2.0, 3.0]]]))
    assert torch.allclose(n_f[0], torch.tensor([0.0, -1.0, 0.0]), atol=1e-5)
    assert d_f[0].item() == pytest.approx(2.0, abs=1e-5)
    with pytest.raises(ValueError, match=r"points.*\[5, 3\]"):
        fit_plane(torch.zeros(5, 3))
