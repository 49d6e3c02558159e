"""Mask rules on hand-made masks: dynamic evidence, instances, strip, size, ground, correspondence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.stages.masks.rules import (
    central_strip,
    classify_moving,
    clean_instances,
    clean_instances_from_config,
    components_to_instances,
    correspond_objects,
    dynamic_evidence,
    filter_small,
    ground_from_depth,
    grow_in_depth,
    instances_to_map,
    map_to_instances,
    moving_fraction,
    nearer_than_road,
    relative_motion,
    remove_ground,
    taller_than_road_user,
    warp_masks,
)

H, W = 64, 128


def _blob(r0, r1, c0, c1, hw=(H, W)):
    m = np.zeros(hw, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


@pytest.fixture
def grid_scene():
    """A 2x2 grid of blobs: moving (top-left), central strip (top-right, inner edge),
    too small (bottom-left), on the ground (bottom-right)."""
    moving = _blob(4, 20, 8, 30)
    strip = _blob(4, 20, 62, 80)  # touches columns 60..67, the central strip at W=128
    small = _blob(44, 47, 10, 13)  # 9 px < 0.5% of 8192 = 41 px
    on_ground = _blob(44, 60, 90, 120)
    ground = np.zeros((H, W), dtype=bool)
    ground[40:] = True
    ground[40:, :40] = False  # the small blob is not on the ground: it must go for its size alone
    dynamic = np.zeros((H, W), dtype=bool)
    dynamic[4:20, 8:26] = True  # 18 of 22 columns of the moving blob: 82 %
    dynamic[44:60, 90:120] = True  # the ground blob "moves" too: ground removal must still drop it
    return np.stack([moving, strip, small, on_ground]), dynamic, ground


def test_grid_of_blobs_rules(grid_scene):
    masks, dynamic, ground = grid_scene
    out = clean_instances(masks, dynamic, ground, dynamic_fraction=0.5, central_strip_fraction=0.05, min_instance_fraction=0.005)
    assert len(out.masks) == 2  # small and ground blobs dropped
    assert np.array_equal(out.masks[0], masks[0]) and np.array_equal(out.masks[1], masks[1])
    assert out.moving.tolist() == [True, True]  # by motion, by the central strip
    assert np.array_equal(out.dynamic_mask, masks[0] | masks[1])
    # With the strip rule off, the strip blob is a static object (what DSA trains on).
    off = clean_instances(masks, dynamic, ground, central_strip_fraction=0.0)
    assert off.moving.tolist() == [True, False]
    assert off.static.shape == (1, H, W) and np.array_equal(off.static[0], masks[1])
    # Without ground removal the ground blob survives and is classified as moving.
    no_ground = clean_instances(masks, dynamic, None)
    assert len(no_ground.masks) == 3 and no_ground.moving.tolist() == [True, True, True]


def _road_with_three_cars():
    """A flat road (ground from row 24) and three cars with their bottom edge on row 20, over it:
    one at the road's depth, one twice nearer (a crossing car as stage 1 sees it), one twice farther."""
    from tests.train.geometry.helpers import flat_road

    depth, road = flat_road()
    ground = np.zeros(depth.shape, bool)
    ground[24:] = True
    masks = np.zeros((3, *depth.shape), bool)
    for k, factor in enumerate((1.0, 0.5, 2.0)):
        masks[k, 14:21, 2 + 7 * k : 8 + 7 * k] = True
        depth[14:21, 2 + 7 * k : 8 + 7 * k] = road(21.0) * factor
    return masks, depth, ground


def test_nearer_than_road_flags_a_car_stage1_puts_nearer_than_where_it_stands():
    masks, depth, ground = _road_with_three_cars()
    assert nearer_than_road(masks, depth, ground, 1.5).tolist() == [False, True, False]  # "too far" is not judged
    assert nearer_than_road(masks, depth, ground, 2.5).tolist() == [False, False, False]
    assert not nearer_than_road(masks, depth, ground, 0.0).any()  # rule off
    assert not nearer_than_road(masks, depth, np.zeros_like(ground), 1.5).any()  # no road: nothing judged
    cut = masks.copy()
    cut[1, 21:, 9:15] = True  # the near car now reaches the image's lower edge: contact out of view
    assert nearer_than_road(cut, depth, ground & ~cut[1], 1.5).tolist() == [False, False, False]
    with pytest.raises(ValueError, match="sizes differ"):
        nearer_than_road(masks, depth[:-1], ground, 1.5)


def test_clean_instances_adds_the_contact_rule_to_the_motion_rule():
    masks, depth, ground = _road_with_three_cars()
    still = np.zeros(depth.shape, bool)
    assert clean_instances(masks, still, ground, central_strip_fraction=0).moving.tolist() == [False, False, False]
    out = clean_instances(masks, still, ground, central_strip_fraction=0, depth=depth, contact_ratio=1.5)
    assert out.moving.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="depth and ground"):
        clean_instances(masks, still, ground, contact_ratio=1.5)


def test_dynamic_fraction_boundary():
    m = _blob(0, 10, 0, 10)
    dyn = np.zeros((H, W), dtype=bool)
    dyn[0:5, 0:10] = True  # exactly 50 %
    assert classify_moving(m[None], dyn, 0.5, 0.0).tolist() == [True]
    dyn[4, 9] = False  # 49 %
    assert moving_fraction(m[None], dyn)[0] == pytest.approx(0.4 + 0.09)
    assert classify_moving(m[None], dyn, 0.5, 0.0).tolist() == [False]


@pytest.mark.parametrize("width", [1, 7, 20, 128, 2048])
def test_central_strip_is_never_empty_and_centred(width):
    strip = central_strip(3, width, 0.05)
    cols = np.flatnonzero(strip[0])
    assert cols.size >= 1  # the authors' empty slice disabled the rule; ours never is empty
    assert cols.size >= 0.05 * width and cols.size <= 0.05 * width + 2
    assert abs((cols.min() + cols.max()) / 2 - (width - 1) / 2) <= 1.0
    assert strip.all(0).tolist() == strip[0].tolist()  # full height
    assert not central_strip(3, width, 0.0).any()


def test_central_strip_value_error():
    with pytest.raises(ValueError, match="fraction"):
        central_strip(3, 10, 1.5)


def test_size_filter_and_ground_removal():
    big = _blob(0, 10, 0, 10)  # 100 px
    small = _blob(20, 24, 20, 24)  # 16 px
    keep = filter_small(np.stack([big, small]), min_fraction=50 / (H * W))
    assert keep.tolist() == [True, False]
    ground = np.zeros((H, W), dtype=bool)
    ground[5:] = True
    cut = remove_ground(big[None], ground)
    assert cut.sum() == 50 and not (cut[0] & ground).any()
    with pytest.raises(ValueError, match="ground"):
        remove_ground(big[None], ground[:10])


def test_dynamic_evidence_mean_over_sources():
    f1 = torch.zeros(1, 2, 4, 4)
    f2 = torch.zeros(1, 2, 4, 4)
    f1[0, 0, 0, 0] = 2.0  # mean (2 + 0) / 2 = 1 -> moving
    f1[0, 0, 1, 1] = 1.5  # mean 0.75 -> not moving
    f1[0, :, 2, 2] = torch.tensor([0.6, 0.8])  # |m| = 1 in one source ...
    f2[0, :, 2, 2] = torch.tensor([0.0, 1.0])  # ... and 1 in the other -> mean 1 -> moving
    ev = dynamic_evidence([f1, f2], 1.0)
    assert ev.shape == (1, 1, 4, 4) and ev.dtype == torch.bool
    assert ev[0, 0].nonzero().tolist() == [[0, 0], [2, 2]]
    assert dynamic_evidence([f1, f2], 0.5)[0, 0, 1, 1]
    with pytest.raises(ValueError, match="flows"):
        dynamic_evidence([torch.zeros(1, 3, 4, 4)])


def _sideways(t_x: float, yaw_deg: float = 0.0) -> torch.Tensor:
    pose = torch.eye(4)[None]
    a = np.deg2rad(yaw_deg)
    pose[0, :3, :3] = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=torch.float32)
    pose[0, 0, 3] = t_x
    return pose


@pytest.mark.parametrize("error", [0.2, -0.3, 1.0])
def test_relative_motion_reads_the_depth_error_that_explains_a_static_point(error):
    """Sideways camera motion: the flow is f t / Z exactly, so the residual that carries a point seen
    at depth Z (1 + e) to where its true depth Z puts it is |e| times the flow at Z (1 + e)."""
    from mcdepth_train.geometry import backproject, project

    K = torch.tensor([[[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]])
    true_depth = torch.full((1, 1, H, W), 10.0)
    est_depth = true_depth * (1 + error)
    pose = _sideways(0.5)
    truth, _ = project(backproject(true_depth, torch.linalg.inv(K)), K, pose)
    rigid, _ = project(backproject(est_depth, torch.linalg.inv(K)), K, pose)
    ratio = relative_motion([truth - rigid], est_depth, K, [pose])
    assert ratio.shape == (1, 1, H, W)
    torch.testing.assert_close(ratio, torch.full_like(ratio, abs(error)), rtol=1e-3, atol=1e-4)
    # A rotation adds depth-independent flow; the ratio only looks at the translational part.
    turned = _sideways(0.5, yaw_deg=1.0)
    truth, _ = project(backproject(true_depth, torch.linalg.inv(K)), K, turned)
    rigid, _ = project(backproject(est_depth, torch.linalg.inv(K)), K, turned)
    ratio = relative_motion([truth - rigid], est_depth, K, [turned])
    assert (ratio - abs(error)).abs().max() < 0.05 * abs(error)


def test_relative_rule_drops_motion_a_depth_error_explains_and_keeps_the_rest():
    K = torch.tensor([[[60.0, 0, 2.0], [0, 60.0, 2.0], [0, 0, 1]]])
    depth = torch.full((1, 1, 4, 4), 10.0)
    pose = _sideways(1.0)  # 6 px of translational flow everywhere
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0, 0, 0] = 1.2  # 0.2 of the flow: a 20% depth error explains it
    flow[0, 0, 3, 3] = 4.0  # 0.67 of it: moving
    relative = relative_motion([flow], depth, K, [pose])
    assert dynamic_evidence([flow], 1.0)[0, 0].nonzero().tolist() == [[0, 0], [3, 3]]
    assert dynamic_evidence([flow], 1.0, relative, 0.5)[0, 0].nonzero().tolist() == [[3, 3]]
    assert dynamic_evidence([flow], 1.0, relative, 0.0)[0, 0].sum() == 2
    still = relative_motion([flow], depth, K, [torch.eye(4)[None]])  # no translation: any residual is motion
    assert still[0, 0, 0, 0] > 100
    with pytest.raises(ValueError, match="one pose per flow"):
        relative_motion([flow, flow], depth, K, [pose])


def test_far_explains_calls_a_residual_towards_infinity_a_depth_error_and_nothing_else():
    """Sideways camera, 6 px of translational flow: a point at infinity seen at 10 m needs -t (it stays
    where rotation alone puts it); with far_explains that and anything between 0 and -t is static,
    a residual along +t (nearer) or across t keeps its ratio, and beyond -t only the excess counts."""
    K = torch.tensor([[[60.0, 0, 2.0], [0, 60.0, 2.0], [0, 0, 1]]])
    depth = torch.full((1, 1, 4, 4), 10.0)
    pose = _sideways(1.0)
    flow = torch.zeros(1, 2, 4, 4)
    from mcdepth_train.geometry import backproject, project

    moved, _ = project(backproject(depth, torch.linalg.inv(K)), K, pose)
    still, _ = project(backproject(depth, torch.linalg.inv(K)), K, torch.eye(4)[None])
    translational = moved - still  # [1,2,4,4]
    flow[:, :, 0, 0] = -translational[:, :, 0, 0]  # at infinity
    flow[:, :, 0, 1] = -0.5 * translational[:, :, 0, 1]  # twice as far
    flow[:, :, 0, 2] = 0.8 * translational[:, :, 0, 2]  # nearer
    flow[:, 1, 0, 3] = 0.8 * translational[:, 0, 0, 3]  # across the flow, as large
    flow[:, :, 1, 0] = -1.5 * translational[:, :, 1, 0]  # beyond infinity: 0.5 of it is motion
    plain = relative_motion([flow], depth, K, [pose])[0, 0]
    far = relative_motion([flow], depth, K, [pose], far_explains=True)[0, 0]
    torch.testing.assert_close(plain[0, :4], torch.tensor([1.0, 0.5, 0.8, 0.8]), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(far[0, :4], torch.tensor([0.0, 0.0, 0.8, 0.8]), atol=1e-3, rtol=1e-3)
    assert far[1, 0].item() == pytest.approx(0.5, abs=1e-3) and plain[1, 0].item() == pytest.approx(1.5, abs=1e-3)


def test_components_and_id_maps():
    mask = _blob(0, 5, 0, 5) | _blob(10, 12, 10, 12) | _blob(30, 40, 50, 60)
    mask[5, 5] = True  # diagonal neighbour joins the first blob (8-connectivity)
    inst = components_to_instances(mask, min_pixels=5)
    assert inst.shape == (2, H, W)
    assert inst[0].sum() == 26 and inst[1].sum() == 100
    id_map = instances_to_map(inst)
    assert set(np.unique(id_map).tolist()) == {0, 1, 2}
    assert np.array_equal(map_to_instances(id_map), inst)
    assert components_to_instances(np.zeros((4, 4), bool)).shape == (0, 4, 4)


def _plane_setup(h=32, w=64, depth=10.0, f=50.0):
    K = torch.tensor([[[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]])
    return torch.full((1, 1, h, w), depth), K


def test_warp_masks_known_shift_with_pose_and_flow():
    depth, K = _plane_setup()
    mask = torch.zeros(1, 1, 32, 64)
    mask[0, 0, 10:20, 20:30] = 1
    pose = torch.eye(4)[None].clone()
    pose[0, 0, 3] = -0.4  # src_from_ref: the point moves -0.4 m in x -> -2 px (fx 50, z 10)
    warped = warp_masks(mask, depth, K, pose)
    expected = torch.zeros_like(mask)
    expected[0, 0, 10:20, 18:28] = 1
    assert torch.equal(warped >= 0.5, expected > 0)
    flow = torch.zeros(1, 2, 32, 64)
    flow[:, 0] = 3.0  # the object moves a further +3 px
    warped = warp_masks(mask, depth, K, pose, flow)
    expected = torch.zeros_like(mask)
    expected[0, 0, 10:20, 21:31] = 1
    assert torch.equal(warped >= 0.5, expected > 0)


def test_warp_masks_occlusion_by_nearer_surface():
    depth, K = _plane_setup()
    depth[0, 0, :, 40:50] = 2.0  # a near pole right of the object
    mask = torch.zeros(1, 1, 32, 64)
    mask[0, 0, 10:20, 30:40] = 1
    pose = torch.eye(4)[None].clone()
    pose[0, 0, 3] = 0.2  # far object moves +1 px, the pole (z 2) +5 px: covers columns 45..54
    warped = warp_masks(mask, depth, K, pose) >= 0.5
    assert warped[0, 0, 10:20, 31:41].all()  # the object shifted by 1 px, still visible
    pose[0, 0, 3] = -0.4  # object -2 px (28..37), pole -10 px (30..39): pole hides 30..37
    warped = warp_masks(mask, depth, K, pose) >= 0.5
    assert warped[0, 0, 10:20, 28:30].all() and not warped[0, 0, :, 30:40].any()


def test_correspond_objects_keeps_objects_visible_in_all_frames():
    depth, K = _plane_setup()
    masks = torch.zeros(1, 2, 32, 64)
    masks[0, 0, 10:20, 20:30] = 1
    masks[0, 1, 10:20, 0:6] = 1  # at the left edge: leaves the image in frame +1
    fwd = torch.eye(4)[None].clone()
    fwd[0, 0, 3] = -1.6  # -8 px
    bwd = torch.eye(4)[None].clone()
    bwd[0, 0, 3] = 1.6
    warped, keep = correspond_objects(masks, depth, K, {-1: bwd, 1: fwd}, threshold=0.5, min_fraction=20 / (32 * 64))
    assert keep.tolist() == [[True, False]]
    assert warped[1][0, 0, 10:20, 12:22].all() and warped[1][0, 0].sum() == 100
    assert warped[-1][0, 0, 10:20, 28:38].all()


def test_ground_from_depth_on_a_road_and_wall():
    h, w, f, cam_height = 32, 64, 40.0, 1.5
    K = torch.tensor([[[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]])
    v = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    below = v - (h - 1) / 2
    road = f * cam_height / below.clamp_min(1e-3)
    depth = torch.where(below > 0.5, road, torch.full_like(road, 5.0)).clamp_max(5.0)
    is_road = (below > 0.5) & (road < 5.0)
    ground = ground_from_depth(depth.view(1, 1, h, w), torch.linalg.inv(K), 10.0)[0, 0]
    interior = is_road.clone()
    interior[:, -1] = False
    interior[-1] = False
    rows = is_road.any(1).nonzero().flatten()
    interior[rows.min()] = False  # the row where the wall meets the road mixes both
    assert ground[interior].float().mean() > 0.95
    wall = ~is_road
    wall[rows.min() - 1 :] = False
    assert not ground[wall].any()


def _half_found_car():
    """A 20x40 scene: road below row 14, a car (rows 6-13, columns 10-21) at depth 10 before a wall at 30;
    the motion component covers only the car's left half."""
    depth = np.full((20, 40), 30.0)
    depth[14:] = 8.0
    depth[6:14, 10:22] = 10.0
    depth[6:14, 16:22] *= 1.1  # the car's other half: the same surface, a little farther
    ground = np.zeros((20, 40), bool)
    ground[14:] = True
    part = np.zeros((1, 20, 40), bool)
    part[0, 6:14, 10:16] = True
    return part, depth, ground


def test_grow_in_depth_completes_the_car_and_takes_neither_wall_road_nor_others():
    part, depth, ground = _half_found_car()
    grown = grow_in_depth(part, depth, ground, np.array([True]), tolerance=0.25, radius_px=8)
    car = np.zeros((20, 40), bool)
    car[6:14, 10:22] = True
    assert np.array_equal(grown[0], car)  # the wall (3x farther) and the road are not the same layer
    assert np.array_equal(grow_in_depth(part, depth, ground, np.array([False]), 0.25, 8), part)  # not selected
    near = grow_in_depth(part, depth, ground, np.array([True]), tolerance=0.25, radius_px=2)
    assert near[0, 6:14, 10:18].all() and not near[0, :, 18:].any()  # at most radius_px from the component
    assert np.array_equal(grow_in_depth(part, depth, ground, np.array([True]), 0.05, 8)[0], part[0])  # 10% is off the layer
    other = np.concatenate([part, np.zeros_like(part)])
    other[1, 6:14, 19:22] = True  # a second instance holds the car's right end
    out = grow_in_depth(other, depth, ground, np.array([True, False]), 0.25, 8)
    assert out[0, 6:14, 10:19].all() and not (out[0] & other[1]).any() and np.array_equal(out[1], other[1])
    with pytest.raises(ValueError, match="tolerance"):
        grow_in_depth(part, depth, ground, np.array([True]), 0.0, 8)
    with pytest.raises(ValueError, match="flags"):
        grow_in_depth(part, depth, ground, np.array([True, True]), 0.25, 8)


def test_clean_instances_grows_moving_instances_only():
    part, depth, ground = _half_found_car()
    moving_evidence = part[0].copy()
    static = np.zeros((1, 20, 40), bool)
    static[0, 2:5, 30:36] = True  # a static patch on the wall
    masks = np.concatenate([part, static])
    off = clean_instances(masks, moving_evidence, ground, central_strip_fraction=0, min_instance_fraction=0.001)
    on = clean_instances(masks, moving_evidence, ground, central_strip_fraction=0, min_instance_fraction=0.001,
                         depth=depth, grow_depth_tolerance=0.25, grow_radius_px=8)
    assert off.moving.tolist() == on.moving.tolist() == [True, False]
    assert on.masks[0].sum() == 8 * 12 > off.masks[0].sum() and np.array_equal(on.masks[1], off.masks[1])
    with pytest.raises(ValueError, match="needs the frame's depth"):
        clean_instances(masks, moving_evidence, ground, central_strip_fraction=0, grow_depth_tolerance=0.25)


def _street_with_sky_blob():
    """A level camera 1.5 m over a flat road (f = 20 px, horizon row 10), a car standing on it and
    a moving patch of sky: the residual motion a far texture gives."""
    from tests.train.geometry.helpers import flat_road

    depth, _ = flat_road(h=32, w=40, f=20.0, cy=10.0, cam_height=1.5)
    ground = np.zeros(depth.shape, bool)
    ground[22:] = True
    car = np.zeros(depth.shape, bool)
    car[10:16, 4:12] = True  # 1.5 m tall at 5 m: one camera height
    sky = np.zeros(depth.shape, bool)
    sky[1:8, 20:34] = True  # ends above the horizon
    return np.stack([car, sky]), depth, ground


def test_taller_than_road_user_flags_what_cannot_stand_on_the_road():
    masks, depth, ground = _street_with_sky_blob()
    assert taller_than_road_user(masks, depth, ground, 3.0).tolist() == [False, True]
    assert taller_than_road_user(masks, depth, ground, 0.9).tolist() == [True, True]  # a car is 1 camera height
    assert taller_than_road_user(masks, depth, ground, 0.0).tolist() == [False, False]  # off
    assert taller_than_road_user(masks, depth, np.zeros_like(ground), 3.0).tolist() == [False, False]  # no plane: not judged
    assert taller_than_road_user(masks, depth * 7.0, ground, 3.0).tolist() == [False, True]  # the scale does not matter


def test_clean_instances_drops_instances_that_cannot_stand_on_the_road():
    from mcdepth_train.config import load_config

    masks, depth, ground = _street_with_sky_blob()
    moving = masks.any(0)  # both show motion
    off = clean_instances(masks, moving, ground, central_strip_fraction=0, min_instance_fraction=0.01)
    assert off.moving.tolist() == [True, True]
    on = clean_instances(masks, moving, ground, central_strip_fraction=0, min_instance_fraction=0.01, depth=depth,
                         max_height_ratio=3.0)
    assert on.moving.tolist() == [True] and np.array_equal(on.masks[0], masks[0])
    cfg = load_config([], ["masks.max_height_ratio=3", "masks.central_strip_fraction=0", "masks.min_instance_fraction=0.01"])
    assert clean_instances_from_config(masks, moving, ground, cfg, depth).moving.tolist() == [True]
    with pytest.raises(ValueError, match="depth and ground"):
        clean_instances(masks, moving, ground, max_height_ratio=3.0)
