"""The shared stage-1 photometric loss, on a ray-cast scene with exact depth and pose."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from mcdepth_train.data import keys
from mcdepth_train.geometry.disparity import depth_to_sigmoid
from mcdepth_train.losses.reprojection import (
    PhotometricOptions, min_photometric_map, multiscale_photometric_loss, reconstruct, reproject_pixels,
)
from tests.train.scenes import TinyScene


@pytest.fixture(scope="module")
def scene():
    data = TinyScene(2, box_speed=0.0)
    return data, default_collate([data[1]])


def _disps_from_depth(depth, scales=4):
    sig = depth_to_sigmoid(depth.clamp(0.1, 100), 0.1, 100)
    return [torch.nn.functional.interpolate(sig, scale_factor=0.5**s, mode="bilinear") if s else sig for s in range(scales)]


def test_identity_pose_and_zero_flow_reproduce_the_image(scene):
    _, batch = scene
    img = batch[keys.color(0, 0)]
    eye = torch.eye(4).unsqueeze(0)
    warped, inside = reconstruct(img, batch[keys.DEPTH_GT], batch[keys.intrinsics(0)], batch[keys.intrinsics(0, True)], eye)
    assert inside.min() == 1
    torch.testing.assert_close(warped, img, atol=1e-4, rtol=0)


def test_flow_shifts_the_correspondence_by_pixels(scene):
    _, batch = scene
    eye = torch.eye(4).unsqueeze(0)
    depth = batch[keys.DEPTH_GT]
    flow = torch.zeros(1, 2, *depth.shape[-2:])
    flow[:, 0] = 3.0
    rigid, _ = reproject_pixels(depth, batch[keys.intrinsics(0, True)], batch[keys.intrinsics(0)], eye)
    moved, _ = reproject_pixels(depth, batch[keys.intrinsics(0, True)], batch[keys.intrinsics(0)], eye, flow)
    torch.testing.assert_close(moved[:, 0] - rigid[:, 0], torch.full_like(rigid[:, 0], 3.0))
    torch.testing.assert_close(moved[:, 1], rigid[:, 1])


def test_true_depth_and_pose_reconstruct_better_than_wrong_depth(scene):
    data, batch = scene
    sources = {f: batch[keys.color(f, 0)] for f in (-1, 1)}
    poses = {f: data.src_from_ref(1, f).unsqueeze(0) for f in (-1, 1)}
    opts = PhotometricOptions(automask=False)
    args = (batch[keys.color(0, 0)], sources, batch[keys.intrinsics(0)], batch[keys.intrinsics(0, True)], poses, opts, 0.1, 100.0)
    gt = batch[keys.DEPTH_GT]
    true_loss, details = multiscale_photometric_loss(_disps_from_depth(gt)[:1], *args)
    no_motion, _ = multiscale_photometric_loss(_disps_from_depth(gt)[:1], batch[keys.color(0, 0)], sources,
                                               batch[keys.intrinsics(0)], batch[keys.intrinsics(0, True)],
                                               {f: torch.eye(4).unsqueeze(0) for f in (-1, 1)}, opts, 0.1, 100.0)
    for factor in (0.5, 2.0):
        wrong, _ = multiscale_photometric_loss(_disps_from_depth(gt * factor)[:1], *args)
        assert true_loss < 0.6 * wrong, (factor, float(true_loss), float(wrong))
    assert true_loss < 0.5 * no_motion
    assert details["loss_map"].shape == (1, 1, 64, 128) and set(details["warped"]) == {-1, 1}


def test_multiscale_loss_averages_scales_and_respects_mask(scene):
    data, batch = scene
    sources = {f: batch[keys.color(f, 0)] for f in (-1, 1)}
    poses = {f: data.src_from_ref(1, f).unsqueeze(0) for f in (-1, 1)}
    disps = _disps_from_depth(batch[keys.DEPTH_GT])
    args = (batch[keys.color(0, 0)], sources, batch[keys.intrinsics(0)], batch[keys.intrinsics(0, True)], poses,
            PhotometricOptions(), 0.1, 100.0)
    loss, details = multiscale_photometric_loss(disps, *args)
    assert len(details["per_scale"]) == 4
    torch.testing.assert_close(loss, torch.stack(details["per_scale"]).mean())
    empty, _ = multiscale_photometric_loss(disps, *args, mask=torch.zeros(1, 1, 64, 128))
    assert empty == 0
    with pytest.raises(ValueError, match="poses"):
        multiscale_photometric_loss(disps, args[0], sources, args[2], args[3], {-1: poses[-1]}, *args[5:])


def test_min_photometric_map_automask_excludes_static_match():
    target = torch.rand(1, 3, 16, 16)
    good = target.clone()
    bad = torch.rand(1, 3, 16, 16)
    loss, mask = min_photometric_map(target, [bad], [good], PhotometricOptions())
    assert mask.sum() == 0 and loss.sum() == 0  # the unwarped source already matches: auto-masked
    loss, mask = min_photometric_map(target, [good], [bad], PhotometricOptions())
    assert mask.mean() > 0.99
