"""Depth network: encoder + multi-scale disparity decoder (monodepth2-style U-Net)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_tensor
from ..geometry.disparity import sigmoid_to_depth
from ..io import CheckpointError
from .encoders import build_encoder

# ImageNet statistics; normalisation happens inside the net so exported graphs take RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBlock(nn.Module):
    """3x3 conv (reflection padded) + ELU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode="reflect")
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DisparityDecoder(nn.Module):
    """Upsampling decoder with skip connections; a sigmoid head at each of ``num_scales`` levels."""

    def __init__(self, encoder_channels: list[int], num_scales: int = 4, out_channels: int = 1):
        super().__init__()
        self.num_scales = num_scales
        dec_ch = [16, 32, 64, 128, 256]
        self.up_a = nn.ModuleList()
        self.up_b = nn.ModuleList()
        for i in range(4, -1, -1):
            in_a = encoder_channels[-1] if i == 4 else dec_ch[i + 1]
            self.up_a.append(ConvBlock(in_a, dec_ch[i]))
            in_b = dec_ch[i] + (encoder_channels[i - 1] if i > 0 else 0)
            self.up_b.append(ConvBlock(in_b, dec_ch[i]))
        self.heads = nn.ModuleList(
            nn.Conv2d(dec_ch[s], out_channels, 3, padding=1, padding_mode="reflect") for s in range(num_scales)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Returns sigmoid outputs, finest first: [scale 0 (H,W), scale 1 (H/2,W/2), ...]."""
        x = features[-1]
        outputs: dict[int, torch.Tensor] = {}
        for step, i in enumerate(range(4, -1, -1)):
            x = self.up_a[step](x)
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.up_b[step](x)
            if i < self.num_scales:
                outputs[i] = torch.sigmoid(self.heads[i](x))
        return [outputs[s] for s in range(self.num_scales)]


class DepthNet(nn.Module):
    """RGB in [0,1] -> multi-scale depth. Height and width must be multiples of 32."""

    def __init__(
        self,
        encoder: str = "resnet18",
        min_depth: float = 0.1,
        max_depth: float = 100.0,
        num_scales: int = 4,
        pretrained_path: str = "",
        in_channels: int = 3,
    ):
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ValueError(f"min_depth/max_depth: need 0 < min < max, got {min_depth}, {max_depth}")
        self.encoder_name = encoder
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.encoder = build_encoder(encoder, in_channels=in_channels, pretrained_path=pretrained_path)
        self.decoder = DisparityDecoder(self.encoder.channels, num_scales)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, cfg) -> "DepthNet":
        m = cfg.model
        return cls(m.encoder, m.min_depth, m.max_depth, cfg.data.num_scales, m.pretrained_path)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Args: image [B,3,H,W] RGB in [0,1]. Returns: sigmoid disparity per scale, finest first."""
        check_tensor("image", image, "B3HW")
        h, w = image.shape[-2:]
        if h % 32 or w % 32 or h < 64 or w < 64:
            # Stride-32 features must be at least 2x2 for the decoder's reflection padding.
            raise ValueError(f"image: height and width must be multiples of 32 and at least 64, got {h}x{w}")
        x = image
        if x.shape[1] == 3:
            x = (x - self.mean) / self.std
        return self.decoder(self.encoder(x))

    def depth(self, image: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] -> [B,1,H,W] full-resolution depth."""
        return sigmoid_to_depth(self(image)[0], self.min_depth, self.max_depth)


class DepthInference(nn.Module):
    """Single-output wrapper for export: RGB [B,3,H,W] in [0,1] -> depth [B,1,H,W]."""

    def __init__(self, net: DepthNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.depth(image)


def build_depth_net(payload: dict, model_key: str = "depth") -> tuple[DepthNet, "Config"]:
    """Rebuild the depth network stored in a checkpoint payload from the config saved with it.

    Returns (net, the checkpoint's config). CheckpointError when the payload has no ``model_key``
    network or its weights do not fit the saved config's architecture.
    """
    from ..config import config_from_dict

    if model_key not in payload["models"]:
        raise CheckpointError(f"checkpoint has no '{model_key}' network (it has: {', '.join(payload['models'])})")
    cfg = config_from_dict(payload["config"])
    cfg.model.pretrained_path = ""  # the weights come from the checkpoint
    net = DepthNet.from_config(cfg)
    try:
        net.load_state_dict(payload["models"][model_key])
    except RuntimeError as exc:
        raise CheckpointError(f"the '{model_key}' weights do not fit a {cfg.model.encoder} depth net: {exc}") from exc
    return net, cfg
