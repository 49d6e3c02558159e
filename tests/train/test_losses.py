"""Photometric error, regularisers and the pseudo-label loss, on tiny hand-computed examples."""
import math

import pytest
import torch

from mcdepth_train.losses import (
    edge_aware_smoothness,
    label_scale,
    masked_mean,
    min_reprojection,
    motion_sparsity,
    photometric_error,
    pseudo_label_loss,
    ssim,
)
from mcdepth_train.losses.photometric import SSIM_C1, SSIM_C2


def const(value, shape=(1, 1, 3, 3), dtype=torch.float64):
    return torch.full(shape, value, dtype=dtype)


# ---------------------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("luminance", [True, False])
def test_ssim_of_identical_images_is_one(luminance):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    s = ssim(x, x.clone(), luminance=luminance)
    assert s.shape == x.shape
    assert torch.allclose(s, torch.ones_like(s), atol=1e-10)
    err = photometric_error(x, x.clone(), luminance=luminance)
    assert err.shape == (2, 1, 5, 6)
    assert torch.allclose(err, torch.zeros_like(err), atol=1e-10)


def test_ssim_constant_images_hand_value():
    a, b = 0.2, 0.6
    s = ssim(const(a), const(b))
    lum = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)  # no variance: contrast-structure term = C2/C2 = 1
    assert torch.allclose(s, torch.full_like(s, lum), atol=1e-9)
    assert lum == pytest.approx(0.2401 / 0.4001)
    cs = ssim(const(a), const(b), luminance=False)
    assert torch.allclose(cs, torch.ones_like(cs), atol=1e-9)


def test_ssim_structure_hand_value_at_centre():
    # centre pixel of a 3x3 image: its window is the whole image
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, 1, 1] = 1.0
    c = 0.5
    mu_x, var_x = 1 / 9, 1 / 9 - 1 / 81
    expected_cs = SSIM_C2 / (var_x + SSIM_C2)  # y constant: no variance, no covariance
    expected_lum = (2 * mu_x * c + SSIM_C1) / (mu_x**2 + c**2 + SSIM_C1)
    assert ssim(x, const(c), luminance=False)[0, 0, 1, 1].item() == pytest.approx(expected_cs, rel=1e-9)
    assert ssim(x, const(c))[0, 0, 1, 1].item() == pytest.approx(expected_cs * expected_lum, rel=1e-9)
    # symmetric in its arguments
    assert torch.allclose(ssim(x, const(c)), ssim(const(c), x))


def test_photometric_error_hand_values_and_weights():
    a, b = 0.2, 0.6
    lum = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)
    # monodepth2 weights, with luminance
    err = photometric_error(const(a), const(b))
    assert torch.allclose(err, const(0.85 * (1 - lum) / 2 + 0.15 * 0.4), atol=1e-9)
    # authors' weights without luminance: SSIM part is 0 for constant images, L1 weighted by 2
    err = photometric_error(const(a), const(b), ssim_weight=3.0, l1_weight=2.0, luminance=False)
    assert torch.allclose(err, const(0.8), atol=1e-9)
    # pure L1, averaged over channels
    pred = torch.stack([const(a)[0, 0], const(b)[0, 0]]).unsqueeze(0)  # [1,2,3,3]
    target = torch.zeros_like(pred)
    err = photometric_error(pred, target, ssim_weight=0.0, l1_weight=1.0)
    assert err.shape == (1, 1, 3, 3)
    assert torch.allclose(err, const((a + b) / 2), atol=1e-12)
    # weights scale linearly
    e1 = photometric_error(const(a), const(b), ssim_weight=1.0, l1_weight=0.0)
    e2 = photometric_error(const(a), const(b), ssim_weight=0.0, l1_weight=1.0)
    e3 = photometric_error(const(a), const(b), ssim_weight=0.3, l1_weight=0.7)
    assert torch.allclose(e3, 0.3 * e1 + 0.7 * e2, atol=1e-12)


def test_photometric_bad_input():
    with pytest.raises(ValueError, match=r"pred.*\[3, 3\]"):
        photometric_error(torch.zeros(3, 3), torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="image sizes differ"):
        photometric_error(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="x and y"):
        ssim(torch.zeros(1, 1, 3, 3), torch.zeros(1, 2, 3, 3))


# ------------------------------------------------------------------------- minimum reprojection
def test_min_reprojection_picks_minimum_and_automasks():
    warped = torch.tensor([[[[0.5, 0.2, 0.9]], [[0.3, 0.4, 0.1]]]])  # [1,2,1,3]
    identity = torch.tensor([[[[0.25, 0.5, 0.1]], [[0.6, 0.7, 0.1]]]])
    loss, mask = min_reprojection(warped)
    assert torch.allclose(loss, torch.tensor([[[[0.3, 0.2, 0.1]]]]))
    assert torch.all(mask == 1)
    loss, mask = min_reprojection(warped, identity)
    # px 0: identity 0.25 beats warped 0.3 -> masked; px 1: warped wins; px 2: exact tie -> kept
    assert mask.tolist() == [[[[0.0, 1.0, 1.0]]]]
    assert torch.allclose(loss, torch.tensor([[[[0.0, 0.2, 0.1]]]]))
    # without the tie margin the tie is masked out
    _, mask = min_reprojection(warped, identity, tie_margin=0.0)
    assert mask.tolist() == [[[[0.0, 1.0, 0.0]]]]
    with pytest.raises(ValueError, match="warped_errors"):
        min_reprojection(torch.zeros(2, 1, 3))


# ----------------------------------------------------------------------------------- smoothness
def test_edge_aware_smoothness_zero_for_constant_disparity():
    torch.manual_seed(1)
    image = torch.rand(2, 3, 4, 5)
    out = edge_aware_smoothness(torch.full((2, 1, 4, 5), 0.3), image)
    assert out.shape == (2, 1, 4, 5)
    assert torch.all(out == 0)


def test_edge_aware_smoothness_hand_example():
    disp = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    disp[0, 0, 2, 2] = 4.0  # mean 4/3: normalised 0.75 and 3
    out = edge_aware_smoothness(disp, torch.zeros(1, 3, 3, 3, dtype=torch.float64))
    expected = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    expected[0, 0, 2, 1] = 2.25  # x difference between columns 1 and 2 in row 2
    expected[0, 0, 1, 2] = 2.25  # y difference between rows 1 and 2 in column 2
    assert torch.allclose(out, expected)
    # with an image edge between columns 1 and 2 of mean strength (0.5 + 1.5) / 2 = 1: weight exp(-1)
    image = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    image[0, 0, :, 2] = 0.5
    image[0, 1, :, 2] = 1.5
    out = edge_aware_smoothness(disp, image)
    expected[0, 0, 2, 1] = 2.25 * math.exp(-1)
    assert torch.allclose(out, expected)


def test_edge_aware_smoothness_scale_invariant_and_relaxed_at_edges():
    torch.manual_seed(2)
    disp = torch.rand(1, 1, 4, 6) + 0.1
    image = torch.rand(1, 3, 4, 6)
    assert torch.allclose(edge_aware_smoothness(disp, image), edge_aware_smoothness(7.5 * disp, image), atol=1e-6)
    # a disparity step where the image has an edge costs less than the same step in a flat image
    step = torch.ones(1, 1, 4, 6)
    step[..., 3:] = 2.0
    flat = torch.full((1, 3, 4, 6), 0.5)
    edge = flat.clone()
    edge[..., 3:] = 1.0
    assert edge_aware_smoothness(step, edge).sum() < edge_aware_smoothness(step, flat).sum()
    with pytest.raises(ValueError, match=r"disp.*\[1, 2, 4, 6\]"):
        edge_aware_smoothness(torch.ones(1, 2, 4, 6), image)


# ------------------------------------------------------------------------------------- sparsity
def test_motion_sparsity_hand_values():
    a = 0.7
    out = motion_sparsity(torch.full((1, 2, 3, 3), a, dtype=torch.float64))
    assert torch.allclose(out, torch.full_like(out, 2 * a * math.sqrt(2)))
    # per channel: channel 0 constant -a (sign does not matter), channel 1 = [0, 2b] -> mu = b
    b = 0.5
    m = torch.tensor([[[[-a, -a]], [[0.0, 2 * b]]]], dtype=torch.float64)
    out = motion_sparsity(m)
    assert out[0, 0].flatten().tolist() == pytest.approx([2 * a * math.sqrt(2)] * 2)
    assert out[0, 1].flatten().tolist() == pytest.approx([2 * b, 2 * b * math.sqrt(3)])
    # no motion, no penalty (and no NaN)
    assert torch.all(motion_sparsity(torch.zeros(1, 2, 2, 2)) == 0)


def test_motion_sparsity_gradient_flows_with_detached_mean():
    m = torch.tensor([[[[1.0, -3.0]]]], dtype=torch.float64, requires_grad=True)
    motion_sparsity(m).sum().backward()
    # mu = 2 is a constant: d/dm 2 mu sqrt(|m|/mu + 1) = sign(m) / sqrt(|m|/mu + 1)
    expected = [1 / math.sqrt(1.5), -1 / math.sqrt(2.5)]
    assert m.grad.flatten().tolist() == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------- pseudo label
def test_label_scale_is_exact_for_scaled_label():
    torch.manual_seed(3)
    label = torch.rand(2, 1, 4, 5) * 10 + 1
    for k in (2.0, 0.25):
        s = label_scale(k * label, label, torch.ones_like(label))
        assert s.shape == (2,)
        assert torch.equal(s, torch.full((2,), k))
    s = label_scale(3.7 * label, label, torch.ones_like(label), upper_percentile=None)
    assert torch.allclose(s, torch.full((2,), 3.7))


def test_label_scale_second_pass_hand_example():
    label = torch.tensor([1.0, 1.0, 1.0, 10.0, 10.0]).view(1, 1, 1, 5)
    depth = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]).view(1, 1, 1, 5)
    valid = torch.ones_like(label)
    # ratios [1, 2, 3, 0.4, 0.5] -> first median 1
    assert label_scale(depth, label, valid, upper_percentile=None).item() == pytest.approx(1.0)
    # scaled labels [1, 1, 1, 10, 10]; keep those in [min D, p90 D] = [1, 4.6]: ratios [1, 2, 3] -> 2
    assert label_scale(depth, label, valid).item() == pytest.approx(2.0)
    # invalid pixels and non-positive labels are ignored; an image with none gives 1
    valid2 = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 5)
    assert label_scale(depth, label, valid2, upper_percentile=None).item() == pytest.approx(2.0)
    assert label_scale(depth, torch.zeros_like(label), valid).item() == 1.0
    assert label_scale(depth, label, torch.zeros_like(valid)).item() == 1.0


def test_pseudo_label_loss_zero_for_scaled_label():
    torch.manual_seed(4)
    label = torch.rand(2, 1, 4, 5) + 0.5
    dyn = (torch.rand(2, 1, 4, 5) > 0.5).float()
    err, weight = pseudo_label_loss(4.0 * label, label, dyn)
    assert torch.all(err == 0)
    assert torch.equal(weight, dyn)


def test_pseudo_label_loss_hand_values_and_mask():
    depth = torch.tensor([2.0, 4.0, 6.0, 8.0, 10.0]).view(1, 1, 1, 5).requires_grad_(True)
    label = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0]).view(1, 1, 1, 5)
    # ratios [2, 2, 2, 2, 2.5] -> s = 2 (both passes); |D - 2 label| = [0, 0, 0, 0, 2]
    dyn = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 5)
    err, weight = pseudo_label_loss(depth, label, dyn)
    assert err.flatten().tolist() == pytest.approx([0, 0, 0, 0, 2])
    assert weight.flatten().tolist() == [1, 1, 0, 1, 1]
    assert masked_mean(err, weight).item() == pytest.approx(2 / 4)
    # zero outside the dynamic mask, even where the label is wrong
    depth2 = torch.tensor([2.0, 4.0, 99.0, 8.0, 10.0]).view(1, 1, 1, 5)
    dyn2 = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 5)
    err2, weight2 = pseudo_label_loss(depth2, label, dyn2)
    assert err2.flatten().tolist() == pytest.approx([0, 0, 0, 0, 0])
    assert weight2.flatten().tolist() == [1, 1, 0, 1, 0]
    # label validity: an invalid label pixel gets no weight
    valid = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 5)
    err3, weight3 = pseudo_label_loss(depth, label, dyn, valid=valid)
    assert weight3.flatten().tolist() == [1, 1, 0, 1, 0]
    assert torch.all(err3 == 0)
    # gradient reaches the depth only through |D - s D_bar| (s has no gradient): sign * weight
    err.sum().backward()
    assert depth.grad.flatten().tolist() == pytest.approx([0, 0, 0, 0, 1])


def test_pseudo_label_loss_relative_hand_values():
    depth = torch.tensor([2.0, 4.0, 6.0, 8.0, 10.0]).view(1, 1, 1, 5).requires_grad_(True)
    label = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0]).view(1, 1, 1, 5)
    dyn = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 5)
    # s = 2; |D - 2 label| / (2 label) = [0, 0, 0, 0, 2 / 8]
    err, weight = pseudo_label_loss(depth, label, dyn, relative=True)
    assert err.flatten().tolist() == pytest.approx([0, 0, 0, 0, 0.25])
    assert weight.flatten().tolist() == [1, 1, 0, 1, 1]
    err.sum().backward()
    assert depth.grad.flatten().tolist() == pytest.approx([0, 0, 0, 0, 1 / 8])


def test_pseudo_label_loss_relative_ignores_the_prediction_scale_depth_form_does_not():
    torch.manual_seed(5)
    label = torch.rand(2, 1, 6, 7) * 20 + 1
    depth = label * (1 + 0.3 * torch.rand_like(label))  # another shape
    dyn = (torch.rand_like(label) > 0.3).float()
    for relative, grows in ((True, 1.0), (False, 3.0)):
        base = masked_mean(*pseudo_label_loss(depth, label, dyn, relative=relative))
        scaled = masked_mean(*pseudo_label_loss(3.0 * depth, label, dyn, relative=relative))
        assert base > 0.01
        assert scaled.item() == pytest.approx(grows * base.item(), rel=1e-5)
    # an unlabelled pixel (label 0) stays finite and unweighted
    label[0, 0, 0, 0] = 0.0
    err, weight = pseudo_label_loss(depth, label, dyn, relative=True)
    assert torch.isfinite(err).all() and weight[0, 0, 0, 0] == 0 and err[0, 0, 0, 0] == 0


def test_masked_mean():
    values = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0
    assert masked_mean(values, mask.bool()).item() == pytest.approx(2.0)
    # a one-channel mask over a multi-channel map: the mean over the selected elements
    values3 = torch.cat([values, 10 * values, 100 * values], 1)
    assert masked_mean(values3, mask).item() == pytest.approx((2 + 20 + 200) / 3)


# ------------------------------------------------------------------------- sparsity schedule / units
def test_sparsity_ramp_is_off_before_the_start_then_linear_to_one():
    from mcdepth_train.losses.regularizers import sparsity_ramp

    assert [sparsity_ramp(s, 10, 4) for s in (0, 9, 10, 11, 12, 13, 50)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert sparsity_ramp(10, 10, 0) == 1.0 and sparsity_ramp(9, 10, 0) == 0.0
    with pytest.raises(ValueError, match="ramp_steps"):
        sparsity_ramp(0, 0, -1)


def test_pixel_sparsity_weight_matches_the_pre_divide_penalty():
    """w * S(z p) == pixel_sparsity_weight(w, z) * S(p): the sparsity term is homogeneous of degree 1."""
    from mcdepth_train.losses.regularizers import pixel_sparsity_weight

    torch.manual_seed(0)
    p = torch.randn(2, 2, 5, 7, dtype=torch.float64)
    z = 0.4
    before_divide = 0.02 * motion_sparsity(z * p).mean()
    assert float(pixel_sparsity_weight(0.02, z) * motion_sparsity(p).mean()) == pytest.approx(float(before_divide), rel=1e-12)
    assert pixel_sparsity_weight(0.02, 0.5, width_ratio=3.0) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="depth"):
        pixel_sparsity_weight(0.02, 0.0)


def test_sparsity_bounds_follow_the_gradient_at_the_mean():
    from mcdepth_train.losses.regularizers import sparsity_onset_bound, sparsity_suppression_bound

    # |m| = mu: gradient w / sqrt(2); it equals the slope exactly at the onset bound.
    m = torch.full((1, 1, 2, 2), 0.3, dtype=torch.float64, requires_grad=True)
    w = sparsity_onset_bound(0.005)
    (w * motion_sparsity(m)).sum().backward()
    assert float(m.grad[0, 0, 0, 0]) == pytest.approx(0.005, rel=1e-12)
    assert sparsity_suppression_bound(0.005, 1.0) == pytest.approx(w)
    assert sparsity_suppression_bound(0.005, 99.0) == pytest.approx(0.05)
