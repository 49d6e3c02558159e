"""Camera, pose, backward warp and surface geometry, in kornia's pattern: hand values, round trips, gradcheck."""
import math

import pytest
import torch

from mcdepth_train.geometry import (
    axis_angle_to_matrix,
    backproject,
    backward_warp,
    depth_to_normals,
    euler_to_matrix,
    fit_plane,
    flow_to_offset,
    ground_mask_from_normals,
    intrinsics_pyramid,
    invert_pose,
    pixel_grid,
    pixels_to_grid,
    pose_vec_to_matrix,
    project,
    scale_intrinsics,
    transform_points,
)


def make_K(fx=100.0, fy=100.0, cx=8.0, cy=6.0, b=1, dtype=torch.float32):
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(b, 3, 3).clone()


def make_pose(R=None, t=(0.0, 0.0, 0.0), dtype=torch.float32):
    T = torch.eye(4, dtype=dtype).unsqueeze(0)
    if R is not None:
        T[0, :3, :3] = R
    T[0, :3, 3] = torch.tensor(t, dtype=dtype)
    return T


# ------------------------------------------------------------------------------------ intrinsics
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


def test_pixels_to_grid_align_corners_false():
    pix = torch.tensor([[[[-0.5, 3.5]], [[-0.5, 1.5]]]])  # [1,2,1,2]: the image's outer corners of a 4x2 image
    grid = pixels_to_grid(pix, height=2, width=4)
    assert torch.allclose(grid, torch.tensor([[[[-1.0, -1.0], [1.0, 1.0]]]]))


# ------------------------------------------------------------------------------ project/warp
def test_identity_pose_backward_warp_leaves_image_unchanged():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 6, 9)
    depth = torch.rand(2, 1, 6, 9) * 10 + 1
    K = make_K(fx=20, fy=20, cx=4, cy=3, b=2)
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K, torch.eye(4).expand(2, 4, 4))
    warped, inside = backward_warp(image, pix)
    assert torch.allclose(warped, image, atol=1e-5)
    assert torch.all(inside == 1)
    assert torch.allclose(z, depth, rtol=1e-5)


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


def test_known_translation_backward_warp_samples_shifted_source():
    h, w = 3, 16
    depth = torch.full((1, 1, h, w), 10.0)
    K = make_K(fx=100, fy=100, cx=8, cy=1)
    pix, _ = project(backproject(depth, torch.linalg.inv(K)), K, make_pose(t=(1.0, 0.0, 0.0)))
    src = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w) + 1
    warped, inside = backward_warp(src, pix)
    # target column u samples the source at column u + 10
    assert torch.allclose(warped[0, 0, :, :6], src[0, 0, :, 10:], atol=1e-4)
    assert torch.all(inside[0, 0, :, :6] == 1)
    assert torch.all(inside[0, 0, :, 6:] == 0)
    assert torch.all(warped[0, 0, :, 7:] == 0)  # zero padding beyond the source


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


# ----------------------------------------------------------------------------------- rotations
def test_axis_angle_is_orthonormal():
    torch.manual_seed(4)
    aa = torch.randn(8, 3, dtype=torch.float64) * 2
    aa[0] = 0
    aa[1] = 1e-5
    R = axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=torch.float64).expand(8, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-10)
    assert torch.allclose(torch.linalg.det(R), torch.ones(8, dtype=torch.float64), atol=1e-10)


def test_axis_angle_hand_example_90deg_about_z():
    R = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(R[0], expected, atol=1e-6)
    # rotates x onto y
    assert torch.allclose(R[0] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_axis_angle_small_angle_branch_is_continuous():
    axis = torch.tensor([[0.6, -0.8, 0.0]], dtype=torch.float64)
    just_below = axis_angle_to_matrix(axis * 0.99e-4)  # theta^2 < 1e-8: Taylor branch
    just_above = axis_angle_to_matrix(axis * 1.01e-4)
    assert torch.allclose(just_below, just_above, atol=1e-5)
    exact = torch.linalg.matrix_exp(torch.tensor([[[0.0, 0.0, -0.8], [0.0, 0.0, -0.6], [0.8, 0.6, 0.0]]], dtype=torch.float64) * 0.99e-4)
    assert torch.allclose(just_below, exact, atol=1e-12)


def test_axis_angle_gradient_at_zero_is_finite_and_correct():
    for dtype in (torch.float32, torch.float64):
        aa = torch.zeros(1, 3, dtype=dtype, requires_grad=True)
        jac = torch.autograd.functional.jacobian(lambda a: axis_angle_to_matrix(a), aa)  # [1,3,3,1,3]
        assert torch.isfinite(jac).all()
        # d R / d a at the identity is the skew matrix of the direction
        assert jac[0, 0, 1, 0, 2].item() == pytest.approx(-1.0)  # R01 = -z
        assert jac[0, 1, 0, 0, 2].item() == pytest.approx(1.0)
        assert jac[0, 2, 1, 0, 0].item() == pytest.approx(1.0)  # R21 = x
        assert jac[0, 0, 2, 0, 1].item() == pytest.approx(1.0)  # R02 = y
        assert jac[0, 0, 0].abs().sum().item() == pytest.approx(0.0)


def test_axis_angle_gradcheck():
    aa = torch.tensor([[0.3, -0.2, 0.5], [1e-5, 0.0, -2e-5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))


def test_euler_to_matrix_hand_examples():
    half = math.pi / 2
    Rz = euler_to_matrix(torch.tensor([[0.0, 0.0, half]]))[0]
    assert torch.allclose(Rz, torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), atol=1e-6)
    Rx = euler_to_matrix(torch.tensor([[half, 0.0, 0.0]]))[0]
    assert torch.allclose(Rx, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), atol=1e-6)
    Ry = euler_to_matrix(torch.tensor([[0.0, half, 0.0]]))[0]
    assert torch.allclose(Ry, torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]), atol=1e-6)
    # Rz @ Rx: x is applied first
    Rzx = euler_to_matrix(torch.tensor([[half, 0.0, half]]))[0]
    assert torch.allclose(Rzx, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), atol=1e-6)
    # single-axis Euler == axis-angle
    for axis in range(3):
        v = torch.zeros(1, 3)
        v[0, axis] = 0.7
        assert torch.allclose(euler_to_matrix(v), axis_angle_to_matrix(v), atol=1e-6)


def test_pose_vec_to_matrix_and_invert_pose():
    torch.manual_seed(5)
    rot = torch.randn(3, 3, dtype=torch.float64)
    trans = torch.randn(3, 3, dtype=torch.float64)
    for param in ("axis_angle", "euler"):
        T = pose_vec_to_matrix(rot, trans, param)
        assert torch.allclose(T[:, :3, 3], trans)
        assert torch.allclose(T[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(3, 4))
        eye = torch.eye(4, dtype=torch.float64).expand(3, 4, 4)
        assert torch.allclose(invert_pose(T) @ T, eye, atol=1e-12)
        assert torch.allclose(T @ invert_pose(T), eye, atol=1e-12)
    with pytest.raises(ValueError, match="parameterisation"):
        pose_vec_to_matrix(rot, trans, "quaternion")


# ------------------------------------------------------------------------------------ gradcheck
def test_gradcheck_backward_warp_image_and_pix():
    torch.manual_seed(6)
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # keep samples away from integer coordinates, where bilinear interpolation has kinks
    pix = (pixel_grid(3, 4, dtype=torch.float64)[:2].unsqueeze(0) + 0.37 + 0.1 * torch.rand(1, 2, 3, 4, dtype=torch.float64))
    pix.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, p: backward_warp(i, p)[0], (image, pix))


def test_gradcheck_project_backproject_wrt_depth():
    torch.manual_seed(7)
    depth = (torch.rand(1, 1, 3, 4, dtype=torch.float64) * 5 + 1).requires_grad_(True)
    K = make_K(30, 25, 1.5, 1.0, dtype=torch.float64)
    T = pose_vec_to_matrix(torch.tensor([[0.1, -0.05, 0.02]], dtype=torch.float64), torch.tensor([[0.2, 0.1, -0.3]], dtype=torch.float64))
    K_inv = torch.linalg.inv(K)
    assert torch.autograd.gradcheck(lambda d: backproject(d, K_inv), (depth,))
    assert torch.autograd.gradcheck(lambda d: project(backproject(d, K_inv), K, T), (depth,))


# ------------------------------------------------------------------------------------ bad input
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


# -------------------------------------------------------------------------------------- surface
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
