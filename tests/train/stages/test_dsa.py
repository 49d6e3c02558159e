"""DSA net: architecture as specified, input channels, loss, static-only training that learns the scale."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch
import torch.nn as nn

from mcdepth_train.networks.dsa import DSANet, ObjectRecord, build_dsa_input, dsa_loss, object_box
from mcdepth_train.stages.dsa.fit import evaluate_dsa, predict_scales, split_held_out, train_dsa
from tests.train.geometry.helpers import flat_road


def _records(n: int, seed: int = 1, size: int = 24) -> list[ObjectRecord]:
    """Objects standing on a road (their depth = the road's at their bottom row), ô = D / k with random k."""
    g = torch.Generator().manual_seed(seed)
    v = torch.arange(size, dtype=torch.float32).view(size, 1).expand(size, size)
    horizon = size // 3
    ground = v > horizon
    road = torch.where(ground, 60.0 / (v - horizon).clamp_min(1), torch.full_like(v, 60.0))
    out = []
    for _ in range(n):
        h, w = (int(torch.randint(size // 6, size // 3, (1,), generator=g)) for _ in range(2))
        bottom = int(torch.randint(horizon + size // 6 + 1, size - 1, (1,), generator=g))
        left = int(torch.randint(0, size - w, (1,), generator=g))
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[bottom - h : bottom, left : left + w] = True
        depth = road.clone()
        depth[mask] = road[bottom - 1, 0] * (1 + 0.05 * torch.rand(int(mask.sum()), generator=g))
        k = math.exp(float(torch.empty(1).uniform_(math.log(0.5), math.log(2.0), generator=g)))
        image = torch.rand(3, size, size, generator=g) * 0.2 + 0.4
        image[:, mask] = torch.rand(3, 1, generator=g)
        out.append(ObjectRecord(image, depth[None], (ground & ~mask)[None], torch.where(mask, depth / k, 0)[None], mask[None], true_scale=k))
    return out


def test_architecture_as_specified():
    net = DSANet()
    assert net.backbone.conv1.in_channels == 5
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in net.modules()) == 20  # every ResNet18 norm layer
    linears = [m for m in net.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 256), (256, 128), (128, 1)]
    assert [type(m) for m in net.head] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    scale = net(torch.rand(3, 5, 32, 32))
    assert scale.shape == (3,) and torch.allclose(scale, torch.ones(3), atol=1e-5)  # starts at 1
    with torch.no_grad():
        net.head[-1].bias.fill_(-50.0)  # a very negative pre-activation stays positive
    assert (net(torch.rand(2, 5, 32, 32) * 100) > 0).all()
    with pytest.raises(ValueError, match="x"):
        net(torch.rand(1, 3, 32, 32))


def test_input_channels():
    rec = _records(1)[0]
    full = build_dsa_input(rec, 24, 2.0)
    inp = full["input"]
    assert inp.shape == (5, 24, 24) and full["mask"].shape == (1, 24, 24)
    m = full["mask"][0] > 0
    assert inp[3][m].mean().item() == pytest.approx(1.0, rel=0.02)  # ô normalised to mean 1 inside the mask
    ratio = (full["depth"][0][m] / inp[4][m]).median().item()
    assert ratio == pytest.approx(rec.true_scale, rel=0.02)  # channel 4 is ô at its own scale
    assert (inp[4][~m] == 0).all()


def test_combined_channel_uses_ground_outside_the_box_only():
    size = 16
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    mask[0, 6:10, 6:10] = True
    ground = torch.zeros(1, size, size, dtype=torch.bool)
    ground[0, 8:] = True  # also under the object box (rows 8-9): must not show there
    depth = torch.full((1, size, size), 7.0)
    obj = torch.where(mask, 3.0, 0.0)
    rec = ObjectRecord(torch.zeros(3, size, size), depth, ground, obj, mask)
    sample = build_dsa_input(rec, crop_size=16, context=4.0)  # 16x16 window around the 4x4 box: the image
    combined = sample["input"][3]
    assert torch.allclose(combined[6:10, 6:10], torch.ones(4, 4))  # ô / mean(ô)
    assert torch.allclose(combined[12:, :], torch.full((4, 16), 7.0))  # ground depth
    assert (combined[:8, :6] == 0).all()  # not ground, not object
    assert (sample["input"][4][6:10, 6:10] == 3.0).all()


def test_loss_is_zero_at_the_true_scale_and_relative():
    obj = torch.full((1, 1, 4, 4), 2.0)
    depth = torch.full((1, 1, 4, 4), 6.0)
    mask = torch.ones(1, 1, 4, 4)
    assert dsa_loss(torch.tensor([3.0]), obj, depth, mask).item() == 0
    wrong = dsa_loss(torch.tensor([3.3]), obj, depth, mask).item()
    assert wrong > 0
    # Relative: the same 10 % error costs the same in any depth unit.
    assert dsa_loss(torch.tensor([3.3]), obj * 1000, depth * 1000, mask).item() == pytest.approx(wrong)
    # Pixels outside the mask do not count.
    depth_off = depth.clone()
    depth_off[..., 0, 0] = 100.0
    mask_off = mask.clone()
    mask_off[..., 0, 0] = 0
    assert dsa_loss(torch.tensor([3.0]), obj, depth_off, mask_off).item() == 0


def test_static_only_and_held_out_split():
    recs = _records(10)
    train, held = split_held_out(recs, 0.2, seed=3)
    assert len(train) == 8 and len(held) == 2 and not {id(r) for r in train} & {id(r) for r in held}
    assert split_held_out(recs, 0.2, seed=3)[1][0] is held[0]  # seeded
    recs[0].moving = True
    with pytest.raises(ValueError, match="static objects only"):
        train_dsa(DSANet(8), recs, epochs=1, progress=False)


def test_training_on_static_objects_learns_their_scale():
    torch.manual_seed(0)
    records = _records(8)
    net = DSANet(groups=8)
    before = evaluate_dsa(net, records, crop_size=16)
    assert before["median_rel_error"] > 0.25  # ŝ starts at 1, k is spread over [0.5, 2]
    losses = train_dsa(net, records, epochs=1000, batch_size=8, lr=3e-4, lr_milestones=(), crop_size=16,
                       max_steps=50, progress=False)
    after = evaluate_dsa(net, records, crop_size=16)
    assert len(losses) == 50 and losses[-1] < losses[0]
    assert after["median_rel_error"] < 0.3 * before["median_rel_error"]  # measured: 0.37 -> 0.03
    assert predict_scales(net, records, crop_size=16).shape == (8,)


def test_ground_contact_fallback_scales_each_moving_object_onto_the_road(tmp_path):
    from mcdepth_train.stages.frames import load_frame
    from mcdepth_train.stages.dsa.run import ground_contact_fallback

    depth, road_depth = flat_road()
    ground = np.zeros(depth.shape, bool)
    ground[24:] = True
    masks, records = [], []
    for k, (bottom, moving) in enumerate([(20, True), (22, True), (21, False)]):
        mask = np.zeros(depth.shape, bool)
        mask[bottom - 6 : bottom, 2 + 7 * k : 7 + 7 * k] = True
        masks.append(mask)
        records.append((k, ObjectRecord(image=torch.zeros(3, *depth.shape), depth=torch.from_numpy(depth)[None],
                                        ground=torch.from_numpy(ground)[None],
                                        object_depth=torch.full((1, *depth.shape), 2.0), mask=torch.from_numpy(mask)[None],
                                        moving=moving)))
    summary = ground_contact_fallback(tmp_path, {0: (3, records)}, static=1, moving=2, min_contact_share=0.5)
    scales = load_frame(tmp_path / "dsa" / "frames", 0)["scales"]
    # each moving object's bottom edge lands on the road at its own row; the static one is not scaled
    assert scales[0] == pytest.approx(road_depth(20.0) / 2.0, rel=1e-3)
    assert scales[1] == pytest.approx(road_depth(22.0) / 2.0, rel=1e-3)
    assert np.isnan(scales[2])
    assert summary["method"] == "ground_contact_fallback" and summary["moving_objects_scaled"] == 2


def test_ground_contact_fallback_only_bounds_an_object_whose_contact_is_out_of_view(tmp_path):
    from mcdepth_train.stages.frames import load_frame
    from mcdepth_train.stages.dsa.run import ground_contact_fallback

    depth, road_depth = flat_road()
    ground = np.zeros(depth.shape, bool)
    ground[24:28] = True  # the ground mask ends 4 rows above the image's lower edge
    near, far = (np.zeros(depth.shape, bool) for _ in range(2))
    near[20:28, 2:8] = True   # cut-off car stage 1 has nearer than the road under its lowest visible row
    far[20:28, 12:18] = True  # cut-off car stage 1 sends far away (the hole of infinite depth)
    ground &= ~(near | far)
    stage1 = depth.copy()
    stage1[near] = 0.5 * road_depth(28.0)
    stage1[far] = 40.0
    records = [(k, ObjectRecord(image=torch.zeros(3, *depth.shape), depth=torch.from_numpy(stage1)[None],
                                ground=torch.from_numpy(ground)[None], object_depth=torch.full((1, *depth.shape), 2.0),
                                mask=torch.from_numpy(m)[None], moving=True)) for k, m in enumerate((near, far))]
    summary = ground_contact_fallback(tmp_path, {0: (2, records)}, static=0, moving=2, min_contact_share=0.5)
    scales = load_frame(tmp_path / "dsa" / "frames", 0)["scales"]
    assert scales[0] == pytest.approx(0.5 * road_depth(28.0) / 2.0, rel=1e-3)  # stage 1's level: nearer than the bound
    assert scales[1] == pytest.approx(road_depth(28.0) / 2.0, rel=1e-2)        # the bound: the road under its lowest row
    assert summary["kept_stage1_level_contact_unseen"] == 1 and summary["moving_objects_scaled"] == 2
    # 0 turns the check off: every object goes to the road.
    ground_contact_fallback(tmp_path, {0: (2, records)}, static=0, moving=2, min_contact_share=0.0)
    assert load_frame(tmp_path / "dsa" / "frames", 0)["scales"][0] == pytest.approx(road_depth(28.0) / 2.0, rel=1e-2)


def test_ground_contact_fallback_reads_o_k_at_its_bottom_or_its_median(tmp_path):
    """o_k whose lowest row blends into the road (twice its body's depth): 'bottom' puts that row on
    the road and halves the object's scale; 'median' puts the body's depth there."""
    from mcdepth_train.stages.frames import load_frame
    from mcdepth_train.stages.dsa.run import ground_contact_fallback

    depth, road_depth = flat_road()
    ground = np.zeros(depth.shape, bool)
    ground[24:] = True
    mask = np.zeros(depth.shape, bool)
    mask[14:20, 2:12] = True
    object_depth = np.where(mask, 2.0, 0.0)
    object_depth[19, 2:12] = 4.0
    record = ObjectRecord(image=torch.zeros(3, *depth.shape), depth=torch.from_numpy(depth)[None], ground=torch.from_numpy(ground)[None],
                          object_depth=torch.from_numpy(object_depth).float()[None], mask=torch.from_numpy(mask)[None], moving=True)
    scales = {}
    for contact_depth in ("bottom", "median"):
        ground_contact_fallback(tmp_path, {0: (1, [(0, record)])}, static=0, moving=1, min_contact_share=0.5, contact_depth=contact_depth)
        scales[contact_depth] = float(load_frame(tmp_path / "dsa" / "frames", 0)["scales"][0])
    assert scales["bottom"] == pytest.approx(road_depth(20.0) / 4.0, rel=1e-3)
    assert scales["median"] == pytest.approx(road_depth(20.0) / 2.0, rel=1e-3)
