"""Argument checks at public entry points: a wrong shape names the argument and what it got."""
from __future__ import annotations

import torch


def check_tensor(name: str, value, dims: str, channels: int | None = None, floating: bool = True) -> None:
    """Raise ValueError unless ``value`` is a tensor whose rank matches ``dims`` (e.g. ``"BCHW"``).

    Args:
        name: the argument's name, quoted in the error.
        value: what the caller passed.
        dims: one letter per expected dimension, for the message ("B1HW" means channel size 1).
        channels: required size of dimension 1, when it is fixed.
        floating: require a floating dtype.
    """
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor [{','.join(dims)}], got {type(value).__name__}")
    if value.dim() != len(dims):
        raise ValueError(f"{name}: expected shape [{','.join(dims)}], got {list(value.shape)}")
    for axis, letter in enumerate(dims):
        if letter.isdigit() and value.shape[axis] != int(letter):
            raise ValueError(f"{name}: expected shape [{','.join(dims)}], got {list(value.shape)}")
    if channels is not None and value.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels in dim 1 of [{','.join(dims)}], got {list(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {value.dtype}")


def check_same_hw(**tensors) -> None:
    """Raise ValueError unless every tensor shares the last two (H, W) dimensions."""
    sizes = {name: tuple(t.shape[-2:]) for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("image sizes differ: " + ", ".join(f"{k} {list(v)}" for k, v in sizes.items()))


def check_batch(**tensors) -> None:
    """Raise ValueError unless every tensor has the same batch size."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("batch sizes differ: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
