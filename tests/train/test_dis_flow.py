"""OpenCV DIS flow as the masks stage's classical residual-motion source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mcdepth_train.config import ConfigError, load_config, validate
from mcdepth_train.networks.dis_flow import DISFlow, dis_scale
from mcdepth_train.stages.masks.run import with_masks_motion


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture [h, w] in [0, 1] (something for patches to match)."""
    noise = np.random.default_rng(seed).random((h, w))
    smooth = ndimage.gaussian_filter(noise, 1.5)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def _pair(dx: int, dy: int, h: int = 64, w: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    """Image a and image b = a moved by (dx, dy) pixels, as [1,3,H,W] RGB."""
    big = _texture(h + 40, w + 40)
    a = big[20:20 + h, 20:20 + w]
    b = big[20 - dy:20 - dy + h, 20 - dx:20 - dx + w]  # b(q) = a(q - d): content moved by +d
    return (torch.from_numpy(np.stack([a] * 3)).float()[None], torch.from_numpy(np.stack([b] * 3)).float()[None])


def test_dis_scale_upsamples_small_images_to_the_minimum_width_only():
    assert dis_scale(192, 768) == 4.0 and dis_scale(1280, 768) == 1.0 and dis_scale(768, 768) == 1.0
    with pytest.raises(ValueError, match="min_width"):
        dis_scale(192, 0)


@pytest.mark.parametrize("min_width", [192, 768])
def test_dis_flow_recovers_a_known_shift_in_input_pixels(min_width):
    a, b = _pair(3, -2)
    flow = DISFlow(min_width=min_width)(a, b)
    assert flow.shape == (1, 2, 64, 192) and flow.dtype == a.dtype
    inner = flow[0, :, 12:-12, 12:-12]
    assert inner[0].median().item() == pytest.approx(3.0, abs=0.25)
    assert inner[1].median().item() == pytest.approx(-2.0, abs=0.25)
    still = DISFlow(min_width=min_width)(a, a)
    assert still.abs().max().item() < 0.05


def test_dis_flow_refuses_bad_input_and_settings():
    a, _ = _pair(0, 0)
    with pytest.raises(ValueError, match="preset"):
        DISFlow(preset="slowest")
    with pytest.raises(ValueError, match="min_width"):
        DISFlow(min_width=0)
    with pytest.raises(ValueError):
        DISFlow()(a, a[..., :100])


def test_masks_motion_source_swaps_only_the_motion_net():
    from mcdepth_train.stages.stage1 import Stage1Model

    cfg = load_config([], ["model.motion_weights=", "masks.motion_source=dis", "masks.dis_min_width=256"])
    model = Stage1Model.from_config(cfg)
    depth_net = model.depth
    with_masks_motion(model, cfg.masks)
    assert isinstance(model.motion, DISFlow) and model.motion.min_width == 256 and model.depth is depth_net
    cfg.masks.motion_source = "net"
    kept = model.motion
    assert with_masks_motion(model, cfg.masks).motion is kept
    for bad in ("masks.motion_source=raft", "masks.dis_preset=slowest", "masks.dis_min_width=0"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            validate(load_config([], [bad]))
