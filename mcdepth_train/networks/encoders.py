"""Image encoders by name. Add a backbone with ``@register_encoder("name")``.

An encoder maps [B,C,H,W] to five feature maps at strides 2, 4, 8, 16, 32 and exposes their
channel counts as ``channels``. ImageNet weights come from a local file (no hub access on robots
or CI): ``pretrained_path`` is a torchvision ResNet state dict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torchvision

from .. import config
from .weights import read_state_dict

ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str):
    def wrap(factory: Callable[..., nn.Module]):
        if name in ENCODERS:
            raise ValueError(f"encoder '{name}' is already registered")
        ENCODERS[name] = factory
        config.ENCODERS.add(name)  # so model.encoder=<name> passes the check at load
        return factory

    return wrap


def build_encoder(name: str, in_channels: int = 3, pretrained_path: str = "") -> nn.Module:
    """Encoder ``name`` from the registry, with weights from ``pretrained_path`` when given."""
    if name not in ENCODERS:
        raise ValueError(f"encoder: unknown name {name!r} (registered: {', '.join(sorted(ENCODERS))})")
    return ENCODERS[name](in_channels=in_channels, pretrained_path=pretrained_path)


def load_imagenet_state(path: str | Path, in_channels: int) -> dict[str, torch.Tensor]:
    """Read a torchvision ResNet state dict from a local file, adapted to ``in_channels`` inputs.

    For a multi-frame input (the pose net's 6 channels) the first conv's RGB filters are repeated
    and divided by the number of frames, so the initial response to identical frames is unchanged.
    """
    state = read_state_dict(path, "pretrained_path")
    if "conv1.weight" not in state:
        raise ValueError(f"pretrained_path: {path} is not a ResNet state dict (no 'conv1.weight')")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if in_channels != 3:
        if in_channels % 3:
            raise ValueError(f"in_channels: pretrained RGB weights need a multiple of 3 channels, got {in_channels}")
        repeats = in_channels // 3
        state["conv1.weight"] = state["conv1.weight"].repeat(1, repeats, 1, 1) / repeats
    return state


class ResNetEncoder(nn.Module):
    """torchvision ResNet without its classifier; returns the five stride levels."""

    def __init__(self, depth: int, in_channels: int = 3, pretrained_path: str = ""):
        super().__init__()
        factories = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}
        net = factories[depth](weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if pretrained_path:
            try:
                missing, unexpected = net.load_state_dict(load_imagenet_state(pretrained_path, in_channels), strict=False)
            except RuntimeError as exc:  # size mismatches raise even with strict=False
                raise ValueError(f"pretrained_path: {pretrained_path} does not fit resnet{depth}: {str(exc)[:300]}") from exc
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(
                    f"pretrained_path: {pretrained_path} does not fit resnet{depth}: "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
        net.fc = nn.Identity()
        self.net = net
        expansion = 4 if depth >= 50 else 1
        self.channels = [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        f0 = n.relu(n.bn1(n.conv1(x)))
        f1 = n.layer1(n.maxpool(f0))
        f2 = n.layer2(f1)
        f3 = n.layer3(f2)
        f4 = n.layer4(f3)
        return [f0, f1, f2, f3, f4]


@register_encoder("resnet18")
def _resnet18(in_channels: int = 3, pretrained_path: str = "") -> nn.Module:
    return ResNetEncoder(18, in_channels, pretrained_path)


@register_encoder("resnet34")
def _resnet34(in_channels: int = 3, pretrained_path: str = "") -> nn.Module:
    return ResNetEncoder(34, in_channels, pretrained_path)


@register_encoder("resnet50")
def _resnet50(in_channels: int = 3, pretrained_path: str = "") -> nn.Module:
    return ResNetEncoder(50, in_channels, pretrained_path)
