"""A seeded, shardable sampler that can resume in the middle of an epoch.

Epoch e's order is a permutation drawn from ``seed + e`` alone, so it is the same on every run and
every rank; each rank takes every ``num_replicas``-th index (DistributedSampler's layout, padded by
wrapping so ranks get equal counts). ``set_epoch(e, start)`` skips the first ``start`` indices of
this rank's share: a resumed run continues exactly where the checkpoint left off.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Indices of one rank's share of a dataset, per epoch.

    Args:
        length: dataset size.
        seed: base seed of the per-epoch permutation.
        shuffle: permute (True) or keep the dataset order (validation).
        num_replicas, rank: the process group layout (1, 0 without torchrun).
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, num_replicas: int = 1, rank: int = 0):
        if length <= 0:
            raise ValueError(f"length: the dataset is empty (got {length} samples)")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank: expected 0 <= rank < num_replicas={num_replicas}, got {rank}")
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.num_samples = math.ceil(length / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation and skip the first ``start`` indices of this rank's share."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start: expected 0..{self.num_samples}, got {start}")
        self.epoch = epoch
        self.start = start

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's full share of epoch ``epoch``, before skipping."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.num_samples * self.num_replicas
        order = (order * math.ceil(total / self.length))[:total]  # pad by wrapping
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch)[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start
