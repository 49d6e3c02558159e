"""Pixel-wise motion net (torchvision RAFT) and the masking rules of stage 1 (paper 4.1).

The motion net sees the reference frame rendered from a source viewpoint by forward splatting
(``I_hat_s``) and the real source frame ``I_s``; the flow between them is the 2D motion the rigid
model (depth + camera pose) cannot explain. The raw flow is then cleaned by three small rules,
each a pure function here so later stages (masks, stage 3) apply exactly the same ones:

1. :func:`splat_validity_mask` - zero where the splat left a hole (nothing of the reference there);
2. :func:`mean_magnitude_mask` - keep only |m| >= the image's mean |m| (most of a scene is static);
3. after carrying each source's flow back to the reference view
   (:func:`mcdepth_train.geometry.splat_to_reference`), :func:`two_sided_mask` keeps motion only
   where every source frame sees some.

Sign convention: ``flow[:, :, v, u]`` is where the content at pixel (u, v) of ``I_hat_s`` appears in
``I_s``, relative to (u, v) - in source-view pixels. Back at the reference pixel p it is added to
p's rigid projection into the source: ``p_s = project(p) + m(p)``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_same_hw, check_tensor
from ..config import MOTION_NETS
from .weights import read_state_dict

# RAFT's correlation pyramid needs feature maps of at least 16 px at 1/8 resolution.
RAFT_MIN_SIZE = 128
# model.motion_weights=shipped: RAFT-small pre-trained on synthetic motion pairs (docs/motion_pretraining.md).
SHIPPED = "shipped"
SHIPPED_MOTION_WEIGHTS = Path(__file__).resolve().parent / "weights" / "motion_raft_small_synthetic.pt"


def resolve_motion_weights(value: str) -> str:
    """``model.motion_weights`` as a file path: ``shipped`` is the repository's pre-trained file."""
    return str(SHIPPED_MOTION_WEIGHTS) if value == SHIPPED else value


def raft_input_size(height: int, width: int, scale: int = 1) -> tuple[int, int]:
    """Size the images are resized to for RAFT: ``scale`` times theirs, in multiples of 8, at least 128 on each side.

    RAFT correlates features at 1/8 of its input, so ``scale`` sets how many feature cells an object covers.
    """
    if scale < 1:
        raise ValueError(f"motion_input_scale: expected >= 1, got {scale}")

    def fit(n: int) -> int:
        return max(RAFT_MIN_SIZE, int(math.ceil(n * scale / 8) * 8))

    return fit(height), fit(width)


def load_raft_state(path: str | Path, name: str, raft: nn.Module) -> dict[str, torch.Tensor]:
    """A torchvision RAFT state dict from a local file (e.g. the ``Raft_Small_Weights`` file), checked
    against ``raft`` so a wrong file fails with the file named rather than deep in ``load_state_dict``.

    Accepts a bare state dict or one wrapped under "model" / "state_dict".
    """
    state = read_state_dict(path, "model.motion_weights")
    expected = raft.state_dict()
    if set(state) != set(expected):
        raise ValueError(f"model.motion_weights: {path} is not a torchvision {name} state dict")
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise ValueError(f"model.motion_weights: {path} does not fit {name} ({wrong[0]}: "
                         f"{tuple(state[wrong[0]].shape)} vs {tuple(expected[wrong[0]].shape)})")
    return state


def trained_input_scale(path: str | Path) -> int | None:
    """The ``model.motion_input_scale`` a ``pretrain-motion`` file was trained at; None for a bare state dict.

    Cards written before the key existed were all trained at 1.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_state_dict reports unreadable files with the option named
        return None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    return int(meta.get("motion_input_scale", 1)) if isinstance(meta, dict) else None


class MotionNet(nn.Module):
    """torchvision RAFT (random init, or weights from a local file) returning the residual flow ``[B,2,H,W]`` in pixels.

    Inputs of any size are resized to :func:`raft_input_size` (``input_scale`` times their size) and
    the flow is resized back (and its components rescaled), so small training images work too.
    """

    def __init__(self, name: str = "raft_small", iterations: int = 1, weights_path: str = "", input_scale: int = 1,
                 any_trained_scale: bool = False):
        super().__init__()
        from torchvision.models.optical_flow import raft_large, raft_small

        factories = {"raft_small": raft_small, "raft_large": raft_large}
        if name not in MOTION_NETS:
            raise ValueError(f"motion_net: expected one of {MOTION_NETS}, got {name!r}")
        if iterations < 1:
            raise ValueError(f"motion_iters: expected >= 1, got {iterations}")
        if input_scale < 1:
            raise ValueError(f"motion_input_scale: expected >= 1, got {input_scale}")
        self.name = name
        self.iterations = iterations
        self.input_scale = input_scale
        self.raft = factories[name](weights=None, progress=False)
        if weights_path:
            path = resolve_motion_weights(weights_path)
            self.raft.load_state_dict(load_raft_state(path, name, self.raft))
            # Flow magnitudes per feature cell depend on the scale: a net trained at another one reads motion
            # wrong. Only a pre-training may start from one (it is taught the new scale).
            trained = trained_input_scale(path)
            if trained is not None and trained != input_scale and not any_trained_scale:
                raise ValueError(f"model.motion_weights: {path} was trained at model.motion_input_scale={trained}; "
                                 f"set model.motion_input_scale={trained} (got {input_scale})")

    @classmethod
    def from_config(cls, cfg, any_trained_scale: bool = False) -> "MotionNet":
        return cls(cfg.model.motion_net, cfg.model.motion_iters, cfg.model.motion_weights, cfg.model.motion_input_scale,
                   any_trained_scale)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        """Flow from ``image_a`` to ``image_b``.

        Args:
            image_a, image_b: [B,3,H,W] RGB in [0, 1].
        Returns:
            [B,2,H,W] flow (dx, dy) in pixels of the input size.
        """
        check_tensor("image_a", image_a, "B3HW")
        check_tensor("image_b", image_b, "B3HW")
        check_same_hw(image_a=image_a, image_b=image_b)
        h, w = image_a.shape[-2:]
        rh, rw = raft_input_size(h, w, self.input_scale)
        a, b = image_a * 2 - 1, image_b * 2 - 1  # RAFT expects [-1, 1]
        if (rh, rw) != (h, w):
            a = F.interpolate(a, size=(rh, rw), mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=(rh, rw), mode="bilinear", align_corners=False)
        flow = self.raft(a, b, num_flow_updates=self.iterations)[-1]
        if (rh, rw) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([w / rw, h / rh], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
        return flow


def splat_validity_mask(flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zero the flow where the forward splat left a hole.

    Args:
        flow: [B,2,H,W] source-view flow. valid: [B,1,H,W] splat validity (1 = a reference point landed).
    Returns:
        [B,2,H,W] flow * valid.
    """
    check_tensor("flow", flow, "B2HW")
    check_same_hw(flow=flow, valid=valid)
    return flow * (valid > 0).to(flow.dtype)


def mean_magnitude_mask(flow: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 where |flow| >= the mean |flow| of its image (over valid pixels), else 0. No gradient.

    Args:
        flow: [B,2,H,W]. valid: [B,1,H,W] or None (all pixels).
    Returns:
        [B,1,H,W] float mask; 0 outside ``valid``.
    """
    check_tensor("flow", flow, "B2HW")
    magnitude = flow.detach().norm(dim=1, keepdim=True)
    weight = torch.ones_like(magnitude) if valid is None else (valid > 0).to(magnitude.dtype)
    mean = (magnitude * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    return ((magnitude >= mean) & (weight > 0)).to(flow.dtype)


def two_sided_mask(ref_flows: list[torch.Tensor], ref_valids: list[torch.Tensor] | None = None) -> torch.Tensor:
    """1 where every source's back-splatted motion is non-zero (and valid) at a reference pixel.

    Args:
        ref_flows: per source, [B,2,H,W] masked motion carried back to the reference view.
        ref_valids: per source, [B,1,H,W] 1 where a source pixel mapped back (None = all).
    Returns:
        [B,1,H,W] float mask.
    """
    if not ref_flows:
        raise ValueError("ref_flows: expected at least one source's flow")
    mask = None
    for i, flow in enumerate(ref_flows):
        check_tensor(f"ref_flows[{i}]", flow, "B2HW")
        moving = flow.detach().abs().sum(1, keepdim=True) > 0
        if ref_valids is not None:
            moving = moving & (ref_valids[i] > 0)
        mask = moving if mask is None else mask & moving
    return mask.to(ref_flows[0].dtype)
