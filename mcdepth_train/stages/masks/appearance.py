"""Objects that look like the movers: a small segmentation net taught by the moving objects motion found.

The self-supervised instance source finds only what moves visibly: the components of the dynamic
evidence. DSA needs static objects to learn a scale from, and the central-strip rule needs the
lead car as an instance, and neither moves in the image. Mask R-CNN self-training (paper 4.3)
would find them, but from random weights it learns nothing in a CPU's budget (docs/stage2.md,
"Instance sources"). This module trains the tiny U-Net of the ground net instead, per pixel:

* positives: the moving components the masks rules keep (an object that moves);
* negatives: the ground, and what lies above the horizon of the road plane fitted to it (a road
  user stands on the road and, seen from a car, hardly reaches above the camera's height);
* everything else is not trained on (parked cars, facades, the lead car: what it must decide).

Its map of pixels that look like the movers, less the ground, splits into connected components:
the new instances. The masks rules then call each moving or static as they would a segmenter's.
Pure numpy per frame, except :func:`appearance_instances_from_config` (trains, resumable).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...engine.checkpoint import atomic_torch_save
from ...geometry.ground_contact import fit_ground_plane
from ...networks.ground import GroundNet
from ..frames import MASKS_DIR
from .ground import train_ground_net
from .rules import as_instance_stack, components_to_instances

log = logging.getLogger(__name__)
APPEARANCE_NET = "appearance_net.pt"  # under RUN/masks/


def above_horizon(plane: np.ndarray | None, shape: tuple[int, int], margin_rows: float = 1.0) -> np.ndarray:
    """HxW bool: pixels whose centre lies more than ``margin_rows`` above the road plane's horizon.

    The plane is :func:`~mcdepth_train.geometry.ground_contact.fit_ground_plane`'s inverse depth
    a·x + b·y + c; its horizon is where that is zero. Without a plane, or one whose inverse depth
    does not grow down the image (no road seen from above), nothing is above it.
    """
    h, w = shape
    if plane is None or not plane[1] > 0:
        return np.zeros(shape, bool)
    horizon = -(plane[0] * (np.arange(w) + 0.5) + plane[2]) / plane[1]
    return (np.arange(h)[:, None] + 0.5) < horizon[None, :] - margin_rows


def appearance_targets(moving: np.ndarray, ground: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's training target and the pixels it holds on.

    Args:
        moving: [N,H,W] bool, the moving instances the rules kept. ground: HxW bool. depth: HxW stage-1 depth.
    Returns:
        (target HxW bool: the moving pixels, trusted HxW bool: target or ground or above the horizon).
    """
    ground = np.asarray(ground, bool)
    moving = as_instance_stack("moving", moving)
    positive = moving.any(0) if len(moving) else np.zeros(ground.shape, bool)
    negative = (ground | above_horizon(fit_ground_plane(depth, ground), ground.shape)) & ~positive
    return positive, positive | negative


def merge_appearance(moving: np.ndarray, looks_alike: np.ndarray, max_inside: float = 0.5) -> np.ndarray:
    """The appearance instances, plus each moving component that lies mostly outside all of them.

    A moving component inside an appearance instance is usually part of the same car (motion
    evidence covers only the part of a car that moves enough); the appearance instance is the whole
    car, and the rules then judge it by the share of it that moves.

    Args:
        moving: [N,H,W] bool components of the dynamic evidence. looks_alike: [M,H,W] bool.
        max_inside: a moving component with more than this share of its pixels inside the
            appearance instances is dropped.
    """
    moving, looks_alike = as_instance_stack("moving", moving), as_instance_stack("looks_alike", looks_alike)
    if len(looks_alike) == 0:
        return moving
    covered = looks_alike.any(0)
    keep = [m for m in moving if (m & covered).sum() <= max_inside * m.sum()]
    return np.concatenate([looks_alike, np.stack(keep)]) if keep else looks_alike


def depth_steps(depth: np.ndarray, max_step: float) -> np.ndarray:
    """HxW bool: pixels with a 4-neighbour whose log depth differs by more than ``max_step``.

    Cars that touch in the image (a lead car in front of parked ones) are one region of the
    appearance map; they are at different depths. Stage 1's depth is smooth across such an edge
    (a 64-row net spreads it over a few pixels), so the step per pixel is small: a few percent.
    """
    log_depth = np.log(np.maximum(np.asarray(depth, np.float64), 1e-6))
    steps = np.zeros(log_depth.shape, bool)
    across = np.abs(np.diff(log_depth, axis=1)) > max_step
    down = np.abs(np.diff(log_depth, axis=0)) > max_step
    steps[:, :-1] |= across
    steps[:, 1:] |= across
    steps[:-1] |= down
    steps[1:] |= down
    return steps


def appearance_instances(probability: np.ndarray, ground: np.ndarray, threshold: float, min_pixels: int,
                         depth: np.ndarray | None = None, max_depth_step: float = 0.0) -> np.ndarray:
    """[M,H,W] bool: connected components of (probability >= threshold) off the ground, of at least ``min_pixels``.

    With ``depth`` and ``max_depth_step`` > 0 the pixels on a depth step (:func:`depth_steps`) are
    left out first, so objects at different depths come apart.
    """
    region = (np.asarray(probability) >= threshold) & ~np.asarray(ground, bool)
    if depth is not None and max_depth_step > 0:
        region &= ~depth_steps(depth, max_depth_step)
    return components_to_instances(region, min_pixels)


@torch.no_grad()
def predict_probability(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """[N,3,H,W] RGB in [0,1] -> [N,H,W] float32 probability of looking like a mover."""
    net.eval()
    device = next(net.parameters()).device
    out = [torch.sigmoid(net(images[i : i + batch_size].to(device)))[:, 0].cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def appearance_instances_from_config(cfg, run_dir: Path, images: torch.Tensor, moving: list[np.ndarray],
                                     grounds: list[np.ndarray], depths: list[np.ndarray], components: list[np.ndarray]) -> list[np.ndarray]:
    """Train (or load, ``RUN/masks/appearance_net.pt``) the net on every frame's targets, and each frame's instances.

    Args:
        images: [N,3,H,W] RGB in [0,1]. moving: per frame [K,H,W] the moving instances the rules
            keep from the evidence's components. grounds, depths: per frame HxW. components: per
            frame [N,H,W], the dynamic evidence's components (kept where no appearance instance covers them).
    Returns:
        Per frame [M,H,W] bool: :func:`merge_appearance` of the components and the appearance instances.
    """
    m = cfg.masks
    h, w = grounds[0].shape
    path = Path(run_dir) / MASKS_DIR / APPEARANCE_NET
    torch.manual_seed(cfg.run.seed)
    net = GroundNet()
    if path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        pairs = [appearance_targets(k, g, d) for k, g, d in zip(moving, grounds, depths)]
        targets = torch.from_numpy(np.stack([t for t, _ in pairs]))[:, None]
        trusted = torch.from_numpy(np.stack([v for _, v in pairs]))[:, None]
        if not targets.any():
            log.warning("masks: no moving object to teach the appearance net; no appearance instances")
            return components
        train_ground_net(net, images, targets, trusted, steps=m.appearance_net_steps, lr=m.ground_net_lr,
                         smooth_weight=m.ground_smooth_weight, seed=cfg.run.seed, device=cfg.run.device,
                         progress=cfg.run.progress, desc="masks: appearance net")
        atomic_torch_save(net.state_dict(), path)
    probability = predict_probability(net.to(cfg.run.device), images)
    min_pixels = max(int(m.min_instance_fraction * h * w), 1)
    return [merge_appearance(c, appearance_instances(p, g, m.appearance_threshold, min_pixels, d, m.appearance_depth_step))
            for c, p, g, d in zip(components, probability, grounds, depths)]
