"""stages/masks/appearance.py: targets from the movers, the merge, and a net that finds a car that does not move."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.config import load_config
from mcdepth_train.stages.masks.appearance import (APPEARANCE_NET, above_horizon, appearance_instances,
                                                   appearance_instances_from_config, appearance_targets, depth_steps,
                                                   merge_appearance)

H, W = 32, 48
HORIZON = 12.0


def _road_depth() -> np.ndarray:
    """Inverse depth 0.02 * (row - 12) below the horizon row 12; far above it."""
    rows = np.arange(H)[:, None] + 0.5
    inverse = 0.02 * (rows - HORIZON) * np.ones((1, W))
    return np.where(inverse > 0, 1.0 / np.maximum(inverse, 1e-9), 60.0)


def test_above_horizon_is_read_off_the_road_plane():
    plane = np.array([0.0, 0.02, -0.02 * HORIZON])  # inverse depth 0 at row 12
    above = above_horizon(plane, (H, W), margin_rows=1.0)
    assert above[:11].all() and not above[11:].any()  # row 10's centre 10.5 < 11; row 11's 11.5 is not
    assert not above_horizon(None, (H, W)).any()
    assert not above_horizon(np.array([0.0, -0.02, 1.0]), (H, W)).any()  # inverse depth shrinking down the image


def test_targets_trust_the_movers_the_ground_and_the_sky_and_leave_the_rest_open():
    depth = _road_depth()
    ground = np.zeros((H, W), bool)
    ground[16:] = True
    moving = np.zeros((1, H, W), bool)
    moving[0, 13:20, 4:12] = True
    ground &= ~moving[0]
    target, trusted = appearance_targets(moving, ground, depth)
    assert (target == moving[0]).all()
    assert trusted[moving[0]].all() and trusted[ground].all() and trusted[:5].all()
    assert not trusted[13:16, 30:40].any()  # off the ground, under the horizon, no mover: what the net decides
    empty_target, _ = appearance_targets(np.zeros((0, H, W), bool), ground, depth)
    assert not empty_target.any()


def test_merge_keeps_the_whole_car_and_the_movers_outside_every_car():
    car = np.zeros((1, H, W), bool)
    car[0, 10:20, 10:30] = True
    part_of_car, elsewhere = np.zeros((2, H, W), bool)
    part_of_car[12:16, 12:18] = True  # motion evidence on a part of the car
    elsewhere[2:6, 40:46] = True      # a mover the net does not see
    merged = merge_appearance(np.stack([part_of_car, elsewhere]), car)
    assert len(merged) == 2 and (merged[0] == car[0]).all() and (merged[1] == elsewhere).all()
    assert merge_appearance(np.stack([elsewhere]), np.zeros((0, H, W), bool)).shape == (1, H, W)


def test_instances_are_components_off_the_ground_above_the_threshold_and_size():
    probability = np.zeros((H, W))
    probability[5:10, 5:10] = 0.9
    probability[20:30, 20:30] = 0.9   # on the ground: not an object
    probability[5:6, 40:41] = 0.9     # one pixel: too small
    probability[5:10, 30:35] = 0.4    # under the threshold
    ground = np.zeros((H, W), bool)
    ground[18:] = True
    found = appearance_instances(probability, ground, threshold=0.5, min_pixels=4)
    assert len(found) == 1 and found[0].sum() == 25


def test_cars_touching_in_the_image_at_different_depths_come_apart():
    probability = np.zeros((H, W))
    probability[5:12, 5:25] = 0.9  # one region of the map: a car at 10 m beside one at 15 m
    depth = np.where(np.arange(W)[None, :] < 15, 10.0, 15.0) * np.ones((H, 1))
    ground = np.zeros((H, W), bool)
    assert len(appearance_instances(probability, ground, 0.5, 4)) == 1
    apart = appearance_instances(probability, ground, 0.5, 4, depth, max_depth_step=0.1)
    assert len(apart) == 2 and apart[0].sum() == apart[1].sum() == 7 * 9  # each loses its column at the step
    steps = depth_steps(depth, 0.1)
    assert steps[:, 14:16].all() and not steps[:, :14].any() and not steps[:, 16:].any()
    assert not depth_steps(depth, 0.5)[5:12, 14:16].any()  # log(1.5) = 0.41: under a 0.5 step


def _frames(n: int = 12):
    """Frames of a grey road under a blue sky with two red cars; in each the left one moves (the
    motion evidence's component) and the right one is parked (nothing marks it)."""
    rng = np.random.default_rng(0)
    images, moving, grounds, depths = [], [], [], []
    for i in range(n):
        image = np.zeros((3, H, W), np.float32)
        image[:, :12] = np.array([0.3, 0.5, 0.9])[:, None, None]
        image[:, 12:] = 0.5
        left, right = np.zeros((2, H, W), bool)
        x = 2 + i % 6
        left[13:19, x : x + 8] = True
        right[13:19, 30:38] = True
        image[:, left | right] = np.array([0.9, 0.1, 0.1])[:, None]
        image += rng.normal(0, 0.02, image.shape).astype(np.float32)
        ground = np.zeros((H, W), bool)
        ground[14:] = True
        ground &= ~(left | right)
        images.append(np.clip(image, 0, 1))
        moving.append(left[None])
        grounds.append(ground)
        depths.append(_road_depth())
    return torch.from_numpy(np.stack(images)), moving, grounds, depths


def test_the_net_taught_by_the_moving_car_finds_the_parked_one_and_resumes(tmp_path):
    images, moving, grounds, depths = _frames()
    cfg = load_config([], ["masks.appearance_net_steps=150", "masks.maskrcnn_steps=0", "run.progress=false",
                           "masks.min_instance_fraction=0.01"])
    found = appearance_instances_from_config(cfg, tmp_path, images, moving, grounds, depths, moving)
    assert (tmp_path / "masks" / APPEARANCE_NET).is_file()
    parked = np.zeros((H, W), bool)
    parked[13:19, 30:38] = True
    for frame in found:
        hits = [m for m in frame if (m & parked).any()]
        assert len(hits) == 1 and (hits[0] & parked).sum() / (hits[0] | parked).sum() > 0.7  # the parked car, as one instance
    # a second call loads the kept net: no training, the same instances
    again = appearance_instances_from_config(cfg, tmp_path, images, moving, grounds, depths, moving)
    assert all((a == b).all() for a, b in zip(found, again))


def test_config_refuses_the_appearance_net_beside_mask_rcnn():
    with pytest.raises(ValueError, match="masks.maskrcnn_steps=0"):
        load_config([], ["masks.appearance_net_steps=10", "masks.maskrcnn_steps=5"])
