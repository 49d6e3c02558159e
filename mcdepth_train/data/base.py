"""The dataset base every loader shares: frame triplets from ordered sequences, augmentation, splits."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .transforms import ColorJitter, RawSample, check_sizes, make_sample


class TripletDataset(torch.utils.data.Dataset):
    """A dataset of samples (frames t+f for f in frame_ids) built by :func:`make_sample`.

    Subclasses fill ``self.items`` (one entry per sample, any type) and implement ``load(index)``
    returning a :class:`RawSample`. With ``augment`` the flip and the colour jitter are drawn from
    torch's global generator (seeded per data-loader worker), one draw per sample.

    Later pipeline stages add per-pixel maps of frame 0 (pseudo labels, masks) with
    :meth:`set_map_provider`; they go through the same flip as the images.
    """

    def __init__(
        self,
        height: int,
        width: int,
        frame_ids: Sequence[int] = (-1, 0, 1),
        num_scales: int = 4,
        augment: bool = False,
        flip_prob: float = 0.5,
        color_jitter_prob: float = 0.5,
    ):
        check_sizes(height, width, num_scales)
        if 0 not in frame_ids:
            raise ValueError(f"data.frame_ids must contain 0 (the reference frame), got {list(frame_ids)}")
        self.height, self.width = int(height), int(width)
        self.frame_ids = [int(f) for f in frame_ids]
        self.num_scales = int(num_scales)
        self.augment = bool(augment)
        self.flip_prob = float(flip_prob)
        self.color_jitter_prob = float(color_jitter_prob)
        self.items: list = []
        self.map_provider: Optional[Callable[[str, int], dict]] = None

    def set_map_provider(self, provider: Optional[Callable[[str, int], dict]]) -> None:
        """``provider(sequence, frame) -> {key: [h,w] array}`` adds maps of frame 0 to every sample.

        Keys must be per-pixel keys of keys.py (``pseudo_label``, ``pseudo_dynamic``, ...); maps of
        any size are resized (nearest) to the network size and flipped with the images. ``sequence``
        and ``frame`` are the sample's ``keys.SEQUENCE`` / ``keys.FRAME``. None removes it.
        """
        self.map_provider = provider

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> RawSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} outside 0..{len(self) - 1}")
        raw = self.load(index)
        if self.map_provider is not None:
            extra = self.map_provider(raw.sequence, raw.frame) or {}
            raw.maps.update({k: np.asarray(v) for k, v in extra.items()})
        flip = self.augment and float(torch.rand(())) < self.flip_prob
        jitter = ColorJitter.sample() if self.augment and float(torch.rand(())) < self.color_jitter_prob else None
        return make_sample(raw, self.height, self.width, self.num_scales, flip=flip, jitter=jitter, index=index)


def triplet_positions(num_frames: int, frame_ids: Sequence[int]) -> list[int]:
    """Positions p in a sequence of num_frames where every p + f (f in frame_ids) exists."""
    lo, hi = -min(frame_ids), num_frames - max(frame_ids)
    return list(range(max(lo, 0), max(hi, 0)))


def split_tail(positions: list, split: str, val_fraction: float = 0.1) -> list:
    """Held-out tail of one sequence: 'val' = the last ``val_fraction`` (at least one), 'train' = the rest.

    Any other split ('test', 'all') returns every position.
    """
    if split not in ("train", "val"):
        return list(positions)
    n_val = max(1, int(round(len(positions) * val_fraction))) if len(positions) > 1 else 0
    cut = len(positions) - n_val
    return list(positions[:cut]) if split == "train" else list(positions[cut:])
