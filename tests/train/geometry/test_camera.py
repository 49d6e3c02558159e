"""geometry/camera.py: intrinsics, pixel grids, project/backproject, flow offsets (hand values, round trips, gradcheck)."""
import pytest
import torch

from mcdepth_train.geometry import (
    axis_angle_to_matrix,
    backproject,
    backward_warp,
    flow_to_offset,
    intrinsics_pyramid,
    invert_pose,
    pixel_grid,
    pose_vec_to_matrix,
    project,
    scale_intrinsics,
    transform_points,
)
from tests.train.geometry.helpers import make_K, make_pose


def test_scale_intrinsics_hand_values():
    K = torch.tensor([[100.0, 0.0, 50.0], [0.0, 80.0, 40.0], [0.0, 0.0, 1.0]])
    out = scale_intrinsics(K, 0.5, 0.25)
    expected = torch.tensor([[50.0, 0.0, (50 + 0.5) * 0.5 - 0.5], [0.0, 20.0, (40 + 0.5) * 0.25 - 0.5], [0.0, 0.0, 1.0]])
    assert torch.allclose(out, expected)
    assert out[0, 2].item() == pytest.approx(24.75)
    assert out[1, 2].item() == pytest.approx(9.625)
    # the input is not modified, batched input keeps its shape
    assert K[0, 0] == 100.0
    batched = scale_intrinsics(K.expand(2, 3, 3), 2.0, 2.0)
    assert batched.shape == (2, 3, 3)
    assert torch.allclose(batched[1], torch.tensor([[200.0, 0.0, 100.5], [0.0, 160.0, 80.5], [0.0, 0.0, 1.0]]))


def test_scale_intrinsics_matches_pixel_centres_of_interpolate():
    # A point at the centre of full-res pixel block (2,3)-(3,4) after 2x downsampling lands on pixel (1, 1.5)...
    # checked generically: the image-plane position x in [0, W] scales by s, pixel centres at x - 0.5.
    K = make_K(fx=50, fy=50, cx=7.5, cy=5.5)
    X = torch.tensor([[[[0.3]], [[-0.2]], [[2.0]]]])  # [1,3,1,1]
    pix_full, _ = project(X, K)
    pix_half, _ = project(X, scale_intrinsics(K, 0.5, 0.5))
    assert torch.allclose(pix_half, (pix_full + 0.5) * 0.5 - 0.5, atol=1e-5)


def test_scale_intrinsics_bad_shape():
    with pytest.raises(ValueError, match=r"K.*\[3, 4\]"):
        scale_intrinsics(torch.zeros(3, 4), 0.5, 0.5)


def test_intrinsics_pyramid():
    K = make_K(fx=120, fy=100, cx=63.5, cy=31.5)
    pyr = intrinsics_pyramid(K, 4)
    assert len(pyr) == 4
    assert torch.equal(pyr[0], K)
    for s, Ks in enumerate(pyr):
        f = 0.5**s
        assert Ks[0, 0, 0].item() == pytest.approx(120 * f)
        assert Ks[0, 1, 1].item() == pytest.approx(100 * f)
        assert Ks[0, 0, 2].item() == pytest.approx((63.5 + 0.5) * f - 0.5)
        assert Ks[0, 1, 2].item() == pytest.approx((31.5 + 0.5) * f - 0.5)
    # a centred principal point stays centred: 128x64 image -> 16x8 at level 3
    assert pyr[3][0, 0, 2].item() == pytest.approx(7.5)
    assert pyr[3][0, 1, 2].item() == pytest.approx(3.5)


def test_pixel_grid():
    g = pixel_grid(2, 3)
    assert g.shape == (3, 2, 3)
    assert torch.equal(g[0], torch.tensor([[0.0, 1, 2], [0, 1, 2]]))
    assert torch.equal(g[1], torch.tensor([[0.0, 0, 0], [1, 1, 1]]))
    assert torch.equal(g[2], torch.ones(2, 3))


def test_known_translation_moves_pixel_by_hand_computed_amount():
    # fx = 100, depth 10, tx = 1 m -> 100 * 1 / 10 = 10 px to the right; ty = -0.5 -> 5 px up.
    h, w = 8, 16
    depth = torch.full((1, 1, h, w), 10.0)
    K = make_K(fx=100, fy=100, cx=8, cy=4)
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K, make_pose(t=(1.0, -0.5, 0.0)))
    grid = pixel_grid(h, w)
    assert torch.allclose(pix[0, 0] - grid[0], torch.full((h, w), 10.0), atol=1e-4)
    assert torch.allclose(pix[0, 1] - grid[1], torch.full((h, w), -5.0), atol=1e-4)
    assert torch.allclose(z, depth)


def test_project_backproject_round_trip():
    torch.manual_seed(1)
    depth = torch.rand(2, 1, 5, 7) * 20 + 0.5
    K = torch.stack([make_K(90, 80, 3.2, 2.1)[0], make_K(50, 60, 3.0, 2.5)[0]])
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K)
    assert torch.allclose(pix, pixel_grid(5, 7).expand(2, -1, -1, -1)[:, :2], atol=1e-4)
    assert torch.allclose(z, depth, rtol=1e-5)
    # through a rigid transform and back
    T = pose_vec_to_matrix(torch.tensor([[0.05, -0.1, 0.02], [0.0, 0.2, 0.0]]), torch.tensor([[0.3, 0.1, -0.2], [1.0, 0.0, 0.5]]))
    pts = backproject(depth, torch.linalg.inv(K))
    back = transform_points(transform_points(pts, T), invert_pose(T))
    assert torch.allclose(back, pts, atol=1e-4)


def test_project_with_offset_equals_project_of_shifted_points():
    torch.manual_seed(2)
    pts = torch.rand(1, 3, 4, 5) + torch.tensor([0.0, 0.0, 5.0]).view(1, 3, 1, 1)
    K = make_K(50, 60, 2, 1.5)
    T = pose_vec_to_matrix(torch.tensor([[0.1, 0.3, -0.2]]), torch.tensor([[0.5, -0.2, 0.1]]))
    offset = torch.randn(1, 3, 4, 5) * 0.2
    pix_a, z_a = project(pts, K, T, offset=offset)
    # the offset lives in the destination frame: it is added after the rigid transform
    pix_b, z_b = project(transform_points(pts, T) + offset, K)
    assert torch.allclose(pix_a, pix_b, atol=1e-4)
    assert torch.allclose(z_a, z_b, atol=1e-5)
    # and it is not the same as shifting the source points (the rotation matters)
    pix_c, _ = project(pts + offset, K, T)
    assert not torch.allclose(pix_a, pix_c, atol=1e-3)


def test_flow_to_offset_moves_projection_by_flow():
    torch.manual_seed(3)
    depth = torch.rand(2, 1, 4, 6) * 5 + 2
    K = torch.stack([make_K(70, 50, 3, 2)[0], make_K(40, 45, 2.5, 1.5)[0]])
    T = pose_vec_to_matrix(torch.randn(2, 3) * 0.05, torch.randn(2, 3) * 0.2)
    pts = backproject(depth, torch.linalg.inv(K))
    pix0, z0 = project(pts, K, T)
    flow = torch.randn(2, 2, 4, 6) * 3
    pix1, z1 = project(pts, K, T, offset=flow_to_offset(flow, z0, K))
    assert torch.allclose(pix1 - pix0, flow, atol=1e-3)
    assert torch.allclose(z1, z0)
    # depth 1: the (m_x/f_x, m_y/f_y, 0) of the method notes
    off = flow_to_offset(torch.tensor([[[[10.0]], [[5.0]]]]), torch.ones(1, 1, 1, 1), make_K(100, 50))
    assert torch.allclose(off.flatten(), torch.tensor([0.1, 0.1, 0.0]))


def test_project_points_behind_camera_keep_sign_of_depth():
    pts = torch.tensor([[[[1.0]], [[0.0]], [[-2.0]]]])
    pix, z = project(pts, make_K(10, 10, 0, 0))
    assert z.item() == -2.0
    assert pix[0, 0].item() == pytest.approx(-5.0)
    # also within eps of the image plane: the divide keeps the sign of z
    for dtype in (torch.float32, torch.float64):
        tiny = torch.tensor([[[[1.0]], [[0.0]], [[-1e-8]]]], dtype=dtype)
        pix, z = project(tiny, make_K(10, 10, 0, 0, dtype=dtype))
        assert pix.dtype == dtype
        assert pix[0, 0].item() < 0 and torch.isfinite(pix).all()
        pix, _ = project(-tiny, make_K(10, 10, 0, 0, dtype=dtype))
        assert pix[0, 0].item() < 0 and torch.isfinite(pix).all()  # (-1, 0, +1e-8): in front, x < 0


def test_gradcheck_project_backproject_wrt_depth():
    torch.manual_seed(7)
    depth = (torch.rand(1, 1, 3, 4, dtype=torch.float64) * 5 + 1).requires_grad_(True)
    K = make_K(30, 25, 1.5, 1.0, dtype=torch.float64)
    T = pose_vec_to_matrix(torch.tensor([[0.1, -0.05, 0.02]], dtype=torch.float64), torch.tensor([[0.2, 0.1, -0.3]], dtype=torch.float64))
    K_inv = torch.linalg.inv(K)
    assert torch.autograd.gradcheck(lambda d: backproject(d, K_inv), (depth,))
    assert torch.autograd.gradcheck(lambda d: project(backproject(d, K_inv), K, T), (depth,))


def test_bad_input_names_argument_and_shape():
    K_inv = torch.eye(3).unsqueeze(0)
    with pytest.raises(ValueError, match=r"depth.*\[1, 2, 4, 4\]"):
        backproject(torch.ones(1, 2, 4, 4), K_inv)
    with pytest.raises(ValueError, match=r"depth.*\[4, 4\]"):
        backproject(torch.ones(4, 4), K_inv)
    with pytest.raises(ValueError, match=r"K_inv.*\[3, 3\]"):
        backproject(torch.ones(1, 1, 4, 4), torch.eye(3))
    with pytest.raises(ValueError, match=r"points.*\[1, 3, 4\]"):
        project(torch.ones(1, 3, 4), make_K())
    with pytest.raises(ValueError, match=r"pix.*\[1, 3, 4, 4\]"):
        backward_warp(torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"batch sizes differ"):
        backward_warp(torch.ones(2, 3, 4, 4), torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"offset.*\[1, 2, 4, 4\]"):
        project(torch.ones(1, 3, 4, 4), make_K(), offset=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="depth"):
        backproject([[1.0]], K_inv)
    with pytest.raises(ValueError, match=r"axis_angle.*\[3\]"):
        axis_angle_to_matrix(torch.zeros(3))
    with pytest.raises(ValueError, match=r"dst_from_src.*\[1, 3, 4\]"):
        invert_pose(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"flow.*\[1, 3, 4, 4\]"):
        flow_to_offset(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4), make_K())
    with pytest.raises(ValueError, match=r"K.*\[3, 3\]"):
        flow_to_offset(torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4), torch.eye(3))
    with pytest.raises(ValueError, match="floating"):
        backproject(torch.ones(1, 1, 4, 4, dtype=torch.long), K_inv)
