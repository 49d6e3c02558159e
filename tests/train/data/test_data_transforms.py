"""Flip and colour jitter: frames, per-pixel maps, intrinsics and poses stay consistent.

The authors' code flipped masks top-to-bottom while images flipped left-to-right; the tests here
compare what lies under each mask before and after the flip, which that bug fails.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from mcdepth_train.data import keys
from mcdepth_train.data.synthetic import SceneParams, render_sequence
from mcdepth_train.data.transforms import ColorJitter, RawSample, flip_intrinsics, make_sample, resize_nearest

H, W = 64, 192


@functools.lru_cache(maxsize=1)
def _sequence():
    return render_sequence(SceneParams(height=H, width=W, num_frames=3), seed=2)


@pytest.fixture(scope="module")
def raw() -> RawSample:
    seq = _sequence()
    f = seq.frames
    rng = np.random.default_rng(0)
    return RawSample(
        images={-1: f[0].image, 0: f[1].image, 1: f[2].image},
        K=seq.K,
        sequence="s",
        frame=1,
        maps={keys.DEPTH_GT: f[1].depth, keys.DYNAMIC_MASK: seq.dynamic_mask(1).astype(np.float32),
              keys.INSTANCE_MAP: f[1].instance_map, keys.PSEUDO_LABEL: rng.uniform(1, 50, (H, W)).astype(np.float32)},
        instance_dynamic=seq.dynamic_ids,
        cam_poses={-1: f[0].cam_pose, 0: f[1].cam_pose, 1: f[2].cam_pose},
    )


def test_flip_mirrors_images_and_every_map_along_the_width(raw):
    a = make_sample(raw, H, W, num_scales=2, flip=False)
    b = make_sample(raw, H, W, num_scales=2, flip=True)
    assert not a[keys.FLIPPED] and b[keys.FLIPPED]
    for f in (-1, 0, 1):
        for s in (0, 1):
            assert torch.equal(b[keys.color(f, s)], a[keys.color(f, s)].flip(-1))
    for name in (keys.DEPTH_GT, keys.DYNAMIC_MASK, keys.INSTANCE_MAP, keys.PSEUDO_LABEL):
        assert torch.equal(b[name], a[name].flip(-1)), name
        assert not torch.equal(b[name], a[name].flip(-2)), name  # the authors' top-to-bottom flip


def test_what_lies_under_each_mask_survives_the_flip(raw):
    a = make_sample(raw, H, W, num_scales=1, flip=False)
    b = make_sample(raw, H, W, num_scales=1, flip=True)
    assert a[keys.DYNAMIC_MASK].sum() > 20  # the lead car is in view
    for sample_x, sample_y in ((a, b), (b, a)):
        for name in (keys.DYNAMIC_MASK,):
            under_x = sample_x[keys.color(0)][:, sample_x[name][0] > 0]
            under_y = sample_y[keys.color(0)][:, sample_y[name][0] > 0]
            assert torch.equal(under_x.sort(dim=1).values, under_y.sort(dim=1).values)
    for inst in a[keys.INSTANCE_MAP].unique().tolist():
        ca = a[keys.color(0)][:, a[keys.INSTANCE_MAP][0] == inst]
        cb = b[keys.color(0)][:, b[keys.INSTANCE_MAP][0] == inst]
        assert torch.equal(ca.sort(dim=1).values, cb.sort(dim=1).values)
    # A top-to-bottom flipped mask would cover other colours:
    wrong = a[keys.color(0)][:, a[keys.DYNAMIC_MASK][0].flip(0) > 0]
    right = a[keys.color(0)][:, a[keys.DYNAMIC_MASK][0] > 0]
    assert not torch.equal(wrong.sort(dim=1).values, right.sort(dim=1).values)


def test_flipped_intrinsics_project_the_mirrored_point_to_the_mirrored_pixel():
    K = torch.tensor([[100.0, 0, 40.3], [0, 90.0, 20.7], [0, 0, 1]])
    point = torch.tensor([1.5, -0.4, 7.0])
    u = (K @ point)[0] / point[2]
    mirrored = point * torch.tensor([-1.0, 1.0, 1.0])
    u_flip = (flip_intrinsics(K, 96) @ mirrored)[0] / mirrored[2]
    assert float(u_flip) == pytest.approx(96 - 1 - float(u), abs=1e-4)


def test_flipped_sample_is_geometrically_consistent(raw):
    # Static pixels of frame 0, lifted with the flipped depth and K, moved by the flipped poses,
    # land in frame +1 where the flipped depth of frame +1 agrees.
    b = make_sample(raw, H, W, num_scales=1, flip=True)
    seq_depth_next = np.ascontiguousarray(raw_depth_next(raw)[:, ::-1])
    K = b[keys.intrinsics(0)].double()
    depth = b[keys.DEPTH_GT][0].double()
    static = (depth > 0) & (b[keys.INSTANCE_MAP][0] == 0)
    v, u = torch.nonzero(static, as_tuple=True)
    pts = torch.linalg.inv(K) @ torch.stack([u.double(), v.double(), torch.ones_like(u, dtype=torch.float64)]) * depth[v, u]
    next_from_ref = torch.linalg.inv(b[(keys.CAM_POSE, 1)].double()) @ b[(keys.CAM_POSE, 0)].double()
    cam1 = next_from_ref[:3, :3] @ pts + next_from_ref[:3, 3:]
    pix = K @ cam1
    u1, v1 = (pix[0] / pix[2]).round().long(), (pix[1] / pix[2]).round().long()
    inside = (u1 >= 0) & (u1 < W) & (v1 >= 0) & (v1 < H)
    z_seen = torch.from_numpy(seq_depth_next).double()[v1[inside], u1[inside]]
    agree = ((cam1[2][inside] - z_seen).abs() < 0.05 * z_seen).double().mean()
    assert agree > 0.9


def raw_depth_next(raw: RawSample) -> np.ndarray:
    return _sequence().frames[2].depth


def test_colour_jitter_is_the_same_on_every_frame_and_leaves_color_untouched(raw):
    same = RawSample({f: raw.images[0] for f in (-1, 0, 1)}, raw.K, "s", 0)
    torch.manual_seed(0)
    jitter = ColorJitter.sample()
    s = make_sample(same, H, W, num_scales=2, jitter=jitter)
    for f in (-1, 1):
        for sc in (0, 1):
            assert torch.equal(s[keys.color(f, sc, augmented=True)], s[keys.color(0, sc, augmented=True)])
    assert not torch.equal(s[keys.color(0, 0, augmented=True)], s[keys.color(0, 0)])
    np.testing.assert_allclose(s[keys.color(0)].permute(1, 2, 0).numpy(), raw.images[0] / 255.0, atol=1e-6)


def test_intrinsics_follow_resize_and_pyramid(raw):
    s = make_sample(raw, 32, 96, num_scales=2)
    K = s[keys.intrinsics(0)]
    assert float(K[0, 0]) == pytest.approx(raw.K[0, 0] / 2)
    assert float(K[0, 2]) == pytest.approx((raw.K[0, 2] + 0.5) / 2 - 0.5)
    assert torch.allclose(s[keys.intrinsics(1, inverse=True)] @ s[keys.intrinsics(1)], torch.eye(3), atol=1e-5)
    assert s[keys.INSTANCE_MAP].shape == (1, 32, 96)
    assert s[keys.DEPTH_GT].shape == (1, H, W)  # ground truth keeps its native size
    with pytest.raises(ValueError, match="multiples"):
        make_sample(raw, 31, 96, num_scales=2)


def test_resize_nearest_keeps_ids():
    label = np.arange(12).reshape(3, 4)
    assert resize_nearest(label, 6, 8)[::2, ::2].tolist() == label.tolist()


def test_maps_from_a_provider_flip_with_the_images(tmp_path):
    from mcdepth_train.data.synthetic_folder import SyntheticFolderDataset, write_synthetic

    write_synthetic(tmp_path / "s", SceneParams(height=H, width=W, num_frames=4), seed=0, num_sequences=1, num_test_sequences=0, progress=False)
    ds = SyntheticFolderDataset(tmp_path / "s", "train", height=H, width=W, num_scales=1, augment=True, flip_prob=1.0, color_jitter_prob=0.0)
    calls = []

    def provider(sequence, frame):
        calls.append((sequence, frame))
        label = np.zeros((H // 2, W // 2), np.float32)  # half size: resized to the network size
        label[:, :10] = 7.0  # the left edge of the unflipped image
        return {keys.PSEUDO_LABEL: label}

    ds.set_map_provider(provider)
    s = ds[0]
    assert calls == [(s[keys.SEQUENCE], int(s[keys.FRAME]))]
    assert bool(s[keys.FLIPPED])
    label = s[keys.PSEUDO_LABEL][0]
    assert label.shape == (H, W)
    assert (label[:, -20:] == 7.0).all() and (label[:, :-20] == 0).all()  # now on the right edge
    ds.set_map_provider(None)
    assert keys.PSEUDO_LABEL not in ds[0]
