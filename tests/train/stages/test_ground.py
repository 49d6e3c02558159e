"""Ground net: learns a trivial ground mask; loss terms behave."""
from __future__ import annotations

import torch

from mcdepth_train.networks.ground import GroundNet
from mcdepth_train.stages.masks.ground import ground_loss, mask_smoothness, predict_ground, train_ground_net


def _scenes(n: int, h: int = 16, w: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=g) * 0.3 + 0.6  # bright, busy sky/buildings
    targets = torch.zeros(n, 1, h, w, dtype=torch.bool)
    for i in range(n):
        horizon = int(torch.randint(5, 11, (1,), generator=g))
        images[i, :, horizon:] = 0.25 + 0.05 * torch.rand(3, h - horizon, w, generator=g)  # dark, flat road
        targets[i, :, horizon:] = True
    return images, targets


def _iou(a, b):
    return float((a & b).sum() / (a | b).sum())


def test_ground_net_learns_a_trivial_ground_mask():
    torch.manual_seed(0)
    images, targets = _scenes(16)
    net = GroundNet(width=8)
    before = _iou(predict_ground(net, images), targets)
    losses = train_ground_net(net, images, targets, steps=60, batch_size=8, lr=3e-3, progress=False)
    test_images, test_targets = _scenes(8, seed=1)
    after = _iou(predict_ground(net, test_images), test_targets)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert after > 0.9 and after > before


def test_ground_loss_masks_invalid_pixels_and_smoothness_prefers_flat_masks():
    image = torch.zeros(1, 3, 8, 8)
    target = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    target[..., 4:, :] = True
    good = torch.where(target, 10.0, -10.0)
    loss_good, terms = ground_loss(good, target, image, smooth_weight=0.0)
    loss_bad, _ = ground_loss(-good, target, image, smooth_weight=0.0)
    assert loss_good < 1e-3 < loss_bad and terms["bce"] < 1e-3
    valid = ~target  # only the top half counts: the wrong bottom half is ignored
    half_wrong = torch.where(target, -10.0, -10.0)
    assert ground_loss(half_wrong, target, image, valid, smooth_weight=0.0)[0] < 1e-3
    checker = (torch.arange(8).view(1, 8) + torch.arange(8).view(8, 1)) % 2
    noisy = checker.float().view(1, 1, 8, 8)
    assert mask_smoothness(noisy, image).mean() > 10 * mask_smoothness(target.float(), image).mean()
