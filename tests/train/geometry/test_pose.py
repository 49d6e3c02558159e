"""geometry/pose.py: axis-angle and Euler rotations, pose vectors and inverses (hand values, gradcheck)."""
import math

import pytest
import torch

from mcdepth_train.geometry import axis_angle_to_matrix, euler_to_matrix, invert_pose, pose_vec_to_matrix


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
