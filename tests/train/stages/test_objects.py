"""Object-net loss: the true object depth and motion explain a hand-rendered textured object best."""
from __future__ import annotations

import pytest
import torch

from mcdepth_train.networks.depth import DepthNet
from mcdepth_train.networks.pose import PoseNet
from mcdepth_train.stages.objects.geometry import init_object_nets, mask_frames, object_forward, object_losses

H, W, F_PX, Z = 32, 48, 40.0, 5.0
K = torch.tensor([[[F_PX, 0, (W - 1) / 2], [0, F_PX, (H - 1) / 2], [0, 0, 1]]])


def _render(shift_x: float):
    """A fronto-parallel textured board at depth Z, moved by shift_x metres; returns (image, mask)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    x = (u - (W - 1) / 2) / F_PX * Z - shift_x  # board coordinates of the ray's hit point
    y = (v - (H - 1) / 2) / F_PX * Z
    mask = (x.abs() < 1.2) & (y.abs() < 0.8)
    tex = torch.stack([0.5 + 0.3 * torch.sin(7 * x) * torch.cos(5 * y), 0.5 + 0.3 * torch.cos(9 * x + 2 * y),
                       0.5 + 0.3 * torch.sin(4 * x - 6 * y)])
    return (tex * mask).float()[None], mask[None, None]


def _pose(tx: float):
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = tx
    return T


def test_true_object_depth_and_motion_give_the_lowest_loss():
    target, mask_ref = _render(0.0)
    src_p, mask_p = _render(0.25)  # frame +1: the board moved +0.25 m (2 px at 5 m)
    src_m, mask_m = _render(-0.25)
    sources, masks_src = {-1: src_m, 1: src_p}, {-1: mask_m, 1: mask_p}

    def loss(depth, tx):
        d = torch.full((1, 1, H, W), depth)
        return object_losses([d, d[..., ::2, ::2]], target, mask_ref, sources, masks_src,
                             {-1: _pose(-tx), 1: _pose(tx)}, K)["loss"].item()

    true = loss(Z, 0.25)
    assert true < 0.02
    assert loss(2 * Z, 0.25) > 3 * true  # wrong depth
    assert loss(Z, 0.0) > 3 * true  # wrong motion (the object treated as static)
    assert loss(Z, -0.25) > 3 * true
    # The object's scale is free: twice the depth with twice the motion warps identically.
    assert abs(loss(2 * Z, 0.5) - true) < 1e-4


def test_masked_smoothness_and_mask_frames():
    target, mask_ref = _render(0.0)
    flat = torch.full((1, 1, H, W), Z)
    bumpy = flat + torch.rand(1, 1, H, W)
    args = (target, mask_ref, {1: target}, {1: mask_ref}, {1: _pose(0.0)}, K)
    assert object_losses([flat], *args)["smooth"].item() < 1e-6
    assert object_losses([bumpy], *args)["smooth"].item() > 1e-3
    # Bumps off the object are not the object net's business.
    off = flat.clone()
    off[~mask_ref] += torch.rand(int((~mask_ref).sum()))
    assert object_losses([off], *args)["smooth"].item() < 0.2 * object_losses([bumpy], *args)["smooth"].item()
    frames = mask_frames({0: torch.ones(1, 3, H, W)}, {0: mask_ref})
    assert frames[0][:, :, ~mask_ref[0, 0]].abs().sum() == 0 and frames[0][:, :, mask_ref[0, 0]].min() == 1


def test_object_nets_from_stage1_weights_run_on_masked_frames():
    depth_net, pose_net = DepthNet("resnet18", num_scales=2), PoseNet("resnet18")
    payload = {"models": {"depth": depth_net.state_dict(), "pose": pose_net.state_dict()}}
    from mcdepth_train.config import Config

    cfg = Config()
    cfg.data.num_scales = 2
    obj_depth, obj_pose = init_object_nets(payload, cfg)
    assert torch.equal(obj_depth.decoder.heads[0].weight, depth_net.decoder.heads[0].weight)
    frames = {f: torch.rand(1, 3, 64, 64) for f in (-1, 0, 1)}
    masks = {f: torch.zeros(1, 1, 64, 64, dtype=torch.bool) for f in frames}
    depths, poses = object_forward(obj_depth, obj_pose, frames, masks)
    assert [d.shape[-2:] for d in depths] == [(64, 64), (32, 32)] and set(poses) == {-1, 1}
    assert poses[1].shape == (1, 4, 4)


def test_translation_parallax_is_the_depth_dependent_shift_and_scale_free():
    from mcdepth_train.geometry.pose import axis_angle_to_matrix
    from mcdepth_train.stages.objects.geometry import translation_parallax

    K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 16], [0, 0, 1]]])
    K_inv = torch.linalg.inv(K)
    depth = torch.full((1, 1, 32, 64), 10.0)
    mask = torch.zeros(1, 1, 32, 64)
    mask[..., 10:20, 20:40] = 1
    sideways = torch.eye(4)[None].clone()
    sideways[0, 0, 3] = 0.5  # 0.5 m sideways at 10 m with f = 100 px: 5 px for every pixel
    assert translation_parallax(depth, mask, K, K_inv, sideways).item() == pytest.approx(5.0, rel=1e-4)
    # (k·depth, k·translation) warp alike, so the object net's arbitrary scale cancels.
    double = sideways.clone()
    double[0, 0, 3] = 1.0
    assert translation_parallax(2 * depth, mask, K, K_inv, double).item() == pytest.approx(5.0, rel=1e-4)
    # A pure rotation moves pixels whatever their depth: no parallax, however large the motion.
    turn = torch.eye(4)[None].clone()
    turn[0, :3, :3] = axis_angle_to_matrix(torch.tensor([[0.0, 0.05, 0.0]]))[0]
    assert translation_parallax(depth, mask, K, K_inv, turn).item() < 1e-4
    # Only the mask's pixels count; an empty mask gives 0, not NaN.
    assert translation_parallax(depth, torch.zeros_like(mask), K, K_inv, sideways).item() == 0.0
