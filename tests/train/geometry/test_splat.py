"""Forward splatting with a z-buffer, and carrying destination values back to the reference view."""
import pytest
import torch

from mcdepth_train.geometry import backproject, backward_warp, forward_splat, pixel_grid, project, splat_to_reference
from tests.train.geometry.helpers import make_K


def translation(tx=0.0, ty=0.0, tz=0.0, b=1, dtype=torch.float32):
    T = torch.eye(4, dtype=dtype).expand(b, 4, 4).clone()
    T[:, :3, 3] = torch.tensor([tx, ty, tz], dtype=dtype)
    return T


def test_identity_splat_reproduces_reference():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 5, 6)
    depth = torch.rand(2, 1, 5, 6) * 9 + 1
    K = make_K(20, 20, 2.5, 2, b=2)
    for ss in (1, 3):
        out = forward_splat(depth, image, K, K, translation(b=2), supersample=ss)
        assert torch.allclose(out.image, image)
        assert torch.allclose(out.depth, depth, rtol=1e-5)
        assert torch.all(out.valid == 1)
        assert out.valid.dtype == depth.dtype
        assert out.ref_index.dtype == torch.long
        # ref_index refers to the reference grid at its original size, also when supersampled
        assert torch.equal(out.ref_index, torch.arange(30).view(1, 1, 5, 6).expand(2, -1, -1, -1))


def test_known_translation_shifts_splat_and_leaves_holes():
    # fronto-parallel plane at 10 m, fx = 100, tx = 1 -> every point moves 10 px right
    h, w = 2, 14
    depth = torch.full((1, 1, h, w), 10.0)
    image = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w) + 1
    K = make_K(100, 100, 7, 0.5)
    out = forward_splat(depth, image, K, K, translation(tx=1.0))
    assert torch.equal(out.image[0, 0, :, 10:], image[0, 0, :, :4])
    assert torch.all(out.valid[0, 0, :, 10:] == 1)
    assert torch.all(out.valid[0, 0, :, :10] == 0)
    assert torch.all(out.image[0, 0, :, :10] == 0)
    assert torch.all(out.depth[0, 0, :, :10] == 0)
    assert torch.allclose(out.depth[0, 0, :, 10:], torch.full((h, 4), 10.0))
    assert torch.all(out.ref_index[0, 0, :, :10] == -1)
    assert torch.equal(out.ref_index[0, 0, 1, 10:], torch.tensor([14, 15, 16, 17]))
    # a larger destination image, with its own intrinsics
    out_big = forward_splat(depth, image, K, make_K(100, 100, 12, 0.5), translation(tx=1.0), out_hw=(2, 30))
    assert out_big.image.shape == (1, 1, 2, 30)
    assert torch.equal(out_big.image[0, 0, :, 15:29], image[0, 0])  # u_dst = u - 7 + 12 + 10
    assert torch.all(out_big.valid[0, 0, :, :15] == 0) and torch.all(out_big.valid[0, 0, :, 29:] == 0)


def test_forward_splat_then_backward_warp_exact_on_integer_shift():
    torch.manual_seed(3)
    h, w = 6, 9
    depth = torch.full((1, 1, h, w), 10.0)
    image = torch.rand(1, 3, h, w)  # textured plane
    K = make_K(100, 100, 4, 2.5)
    T = translation(tx=0.3, ty=-0.2)  # (+3, -2) px
    out = forward_splat(depth, image, K, K, T)
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K, T)
    back, inside = backward_warp(out.image, pix)
    back_valid, _ = backward_warp(out.valid, pix)
    ok = (inside > 0) & (back_valid > 0.999)
    assert ok.sum() == (w - 3) * (h - 2)
    sel = ok.expand(-1, 3, -1, -1)
    assert torch.allclose(back[sel], image[sel], atol=1e-5)
    back_depth, _ = backward_warp(out.depth, pix)
    assert torch.allclose(back_depth[ok], z[ok])


def test_forward_splat_then_backward_warp_agree_on_visible_pixels():
    torch.manual_seed(1)
    h, w = 8, 12
    # a textured slanted plane (inverse depth linear in the pixel coordinates is a plane)
    u = torch.arange(w, dtype=torch.float32).view(1, w)
    v = torch.arange(h, dtype=torch.float32).view(h, 1)
    depth = (1.0 / (0.1 + 0.004 * u + 0.002 * v)).expand(h, w).reshape(1, 1, h, w)
    image = torch.rand(1, 3, h, w)
    K = make_K(50, 50, 5.5, 3.5)
    T = translation(tx=0.2, ty=-0.1)
    out = forward_splat(depth, image, K, K, T)
    # the true correspondence: where each reference pixel lands in the destination
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K, T)
    # pixels landing (after rounding) on a destination pixel they won; compare there, sampling at
    # the rounded position (the splat puts each point on its nearest pixel centre)
    rounded = torch.round(pix)
    back_image, inside = backward_warp(out.image, rounded)
    back_depth, _ = backward_warp(out.depth, rounded)
    back_index, _ = backward_warp(out.ref_index.to(torch.float32), rounded)
    own = (back_index == torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)) & (inside > 0)
    assert own.sum() > 0.5 * h * w
    sel = own.expand(-1, 3, -1, -1)
    assert torch.allclose(back_image[sel], image[sel], atol=1e-5)
    assert torch.allclose(back_depth[own], z[own], rtol=1e-5)
    # and with the exact (sub-pixel) correspondence the colours agree within the 0.5 px rounding
    # for a smooth texture
    smooth = (u / w + v / h).expand(h, w).reshape(1, 1, h, w)
    out_s = forward_splat(depth, smooth, K, K, T)
    back_s, inside_s = backward_warp(out_s.image, pix)
    back_valid, _ = backward_warp(out_s.valid, pix)
    ok = (inside_s > 0) & (back_valid > 0.999)
    assert ok.sum() > 0.3 * h * w
    assert (back_s - smooth)[ok].abs().max() < 0.15


def test_forward_splat_with_motion_offset():
    # per-pixel object motion of (+2, +1) px, given as the 3D offset of flow_to_offset
    from mcdepth_train.geometry import flow_to_offset

    h, w = 5, 7
    depth = torch.full((1, 1, h, w), 4.0)
    image = torch.rand(1, 1, h, w)
    K = make_K(20, 20, 3, 2)
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0] = 2.0
    flow[:, 1] = 1.0
    offset = flow_to_offset(flow, depth, K)  # identity pose: projected depth = reference depth
    for ss in (1, 3):
        out = forward_splat(depth, image, K, K, translation(), offset=offset, supersample=ss)
        assert torch.equal(out.image[0, 0, 1:, 2:], image[0, 0, :-1, :-2])
        assert out.valid[0, 0, 0].sum() == 0 and out.valid[0, 0, :, :2].sum() == 0
        assert out.ref_index[0, 0, 1, 2].item() == 0


def test_occlusion_nearer_point_wins_depth_and_colour():
    K = make_K(100, 100, 0.0, 0.0)
    image = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]], [[[10.0, 20.0, 30.0, 40.0]]]]).expand(2, 2, 1, 4).clone()
    image[:, 1] *= -1  # two channels, both follow the winner
    # u_dst = u + fx * tx / z.
    # tx = +0.1: u=2 at 5 m -> 2 + 2 = 4; u=3 at 10 m -> 3 + 1 = 4: the nearer has the *lower* index.
    depth_a = torch.tensor([100.0, 100.0, 5.0, 10.0]).view(1, 1, 1, 4)
    out = forward_splat(depth_a, image[:1], K, K, translation(tx=0.1), out_hw=(1, 6))
    assert out.depth[0, 0, 0, 4].item() == pytest.approx(5.0)
    assert out.image[0, :, 0, 4].tolist() == [3.0, -3.0]
    assert out.ref_index[0, 0, 0, 4].item() == 2
    # tx = -0.1: u=2 at 10 m -> 1; u=3 at 5 m -> 1: the nearer has the *higher* index.
    depth_b = torch.tensor([100.0, 100.0, 10.0, 5.0]).view(1, 1, 1, 4)
    out = forward_splat(depth_b, image[1:], K, K, translation(tx=-0.1), out_hw=(1, 6))
    assert out.depth[0, 0, 0, 1].item() == pytest.approx(5.0)
    assert out.image[0, :, 0, 1].tolist() == [40.0, -40.0]
    assert out.ref_index[0, 0, 0, 1].item() == 3
    # points behind the destination camera never land
    out = forward_splat(torch.full((1, 1, 1, 4), 1.0), image[:1], K, K, translation(tz=-2.0), out_hw=(1, 6))
    assert torch.all(out.valid == 0)


def test_supersampling_leaves_fewer_holes_on_slanted_plane():
    h, w = 12, 12
    u = torch.arange(w, dtype=torch.float32).view(1, w)
    depth = (1.0 / (0.25 + 0.02 * (u - 5.5))).expand(h, w).reshape(1, 1, h, w)  # a slanted wall, ~2.5-8 m
    image = torch.rand(1, 1, h, w)
    K = make_K(10, 10, 5.5, 5.5)
    # the destination camera steps 1.8 m towards the wall (points get nearer: t_z < 0 in dst_from_ref)
    # and 0.2 m sideways: the wall is magnified ~2x, so plain splatting leaves holes inside it
    T = translation(tx=0.2, tz=-1.8)
    out1 = forward_splat(depth, image, K, K, T, supersample=1)
    out3 = forward_splat(depth, image, K, K, T, supersample=3)
    holes1 = int((out1.valid == 0).sum())
    holes3 = int((out3.valid == 0).sum())
    assert holes3 < holes1
    interior = (slice(None), slice(None), slice(2, 10), slice(2, 10))
    assert (out1.valid[interior] == 0).sum() > 10
    assert torch.all(out3.valid[interior] == 1)
    for out in (out1, out3):
        idx = out.ref_index[out.valid.bool()]
        assert torch.all((idx >= 0) & (idx < h * w))
        # colour and index agree: each splatted colour is its reference pixel's colour
        assert torch.equal(out.image[out.valid.bool()], image.flatten()[idx])
    with pytest.raises(ValueError, match="supersample"):
        forward_splat(depth, image, K, K, T, supersample=0)


def test_splat_to_reference_carries_values_back():
    # shift by (+3, -1) px; send back the destination pixel coordinates
    h, w = 4, 8
    depth = torch.full((1, 1, h, w), 10.0)
    K = make_K(100, 100, 3.5, 1.5)
    out = forward_splat(depth, torch.rand(1, 1, h, w), K, K, translation(tx=0.3, ty=-0.1))
    dst_coords = pixel_grid(h, w)[:2].unsqueeze(0)
    ref_values, ref_valid = splat_to_reference(dst_coords, out.ref_index, (h, w))
    ref_coords = pixel_grid(h, w)[:2].unsqueeze(0)
    expected_valid = (ref_coords[:, 0:1] + 3 <= w - 1) & (ref_coords[:, 1:2] - 1 >= 0)
    assert torch.equal(ref_valid.bool(), expected_valid)
    shift = torch.tensor([3.0, -1.0]).view(1, 2, 1, 1)
    sel = expected_valid.expand(-1, 2, -1, -1)
    assert torch.equal(ref_values[sel], (ref_coords + shift)[sel])
    assert torch.all(ref_values[~sel] == 0)


def test_splat_to_reference_averages_hand_example():
    values = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    ref_index = torch.tensor([[[[0, 0], [1, -1]]]])
    ref_values, ref_valid = splat_to_reference(values, ref_index, (1, 3))
    assert ref_values.tolist() == [[[[2.0, 5.0, 0.0]]]]
    assert ref_valid.tolist() == [[[[1.0, 1.0, 0.0]]]]
    with pytest.raises(ValueError, match=r"ref_index.*\[1, 2, 2\]"):
        splat_to_reference(values, ref_index[0], (1, 3))


def test_gradcheck_forward_splat_wrt_image_and_depth_flows():
    torch.manual_seed(2)
    depth = torch.rand(1, 1, 3, 4, dtype=torch.float64) * 3 + 4
    image = torch.rand(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    K = make_K(10, 10, 1.5, 1.0, dtype=torch.float64)
    T = translation(tx=0.15, ty=0.05, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda i: forward_splat(depth, i, K, K, T).image, (image,))
    assert torch.autograd.gradcheck(lambda i: forward_splat(depth, i, K, K, T, supersample=2).image, (image,))
    # the splatted depth is differentiable in the reference depth (winners fixed)
    d = depth.clone().requires_grad_(True)
    out = forward_splat(d, image.detach(), K, K, T)
    out.depth.sum().backward()
    assert torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


def test_forward_splat_bad_input():
    K = make_K()
    with pytest.raises(ValueError, match=r"depth_ref.*\[1, 2, 4, 4\]"):
        forward_splat(torch.ones(1, 2, 4, 4), torch.ones(1, 3, 4, 4), K, K, translation())
    with pytest.raises(ValueError, match="image sizes differ"):
        forward_splat(torch.ones(1, 1, 4, 4), torch.ones(1, 3, 4, 5), K, K, translation())
    with pytest.raises(ValueError, match=r"dst_from_ref.*\[4, 4\]"):
        forward_splat(torch.ones(1, 1, 4, 4), torch.ones(1, 3, 4, 4), K, K, torch.eye(4))
