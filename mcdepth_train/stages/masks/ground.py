"""Ground segmentation: learn the normal-based ground pseudo-mask with BCE + smoothness.

The ground is used to clean object masks (:func:`mcdepth_train.stages.masks.rules.remove_ground`) and
as DSA input; it never enters a depth loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ...checks import check_batch, check_same_hw, check_tensor
from ...networks.ground import GroundNet


def mask_smoothness(prob: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware total variation of a probability map: [B,1,H,W] (last row/column hold no term).

    Unlike the disparity smoothness there is no mean normalisation: a mask's scale is fixed.
    """
    dx = (prob[..., :, 1:] - prob[..., :, :-1]).abs() * torch.exp(-(image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
    dy = (prob[..., 1:, :] - prob[..., :-1, :]).abs() * torch.exp(-(image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    return F.pad(dx, (0, 1, 0, 0)) + F.pad(dy, (0, 0, 0, 1))


def ground_loss(
    logits: torch.Tensor, target: torch.Tensor, image: torch.Tensor, valid: torch.Tensor | None = None, smooth_weight: float = 0.1
) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE against the pseudo-mask on valid pixels + ``smooth_weight`` x edge-aware smoothness.

    Args:
        logits: [B,1,H,W]. target: [B,1,H,W] 0/1 pseudo-mask. image: [B,3,H,W].
        valid: [B,1,H,W] pixels where the pseudo-mask is trusted (None = all).
    Returns:
        (loss, {"bce": ..., "smooth": ...}).
    """
    check_tensor("logits", logits, "B1HW")
    check_tensor("target", target, "B1HW", floating=False)
    check_same_hw(logits=logits, target=target, image=image)
    check_batch(logits=logits, target=target, image=image)
    weight = torch.ones_like(logits) if valid is None else (valid > 0).to(logits.dtype)
    bce_map = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    bce = (bce_map * weight).sum() / weight.sum().clamp_min(1)
    smooth = mask_smoothness(torch.sigmoid(logits), image).mean()
    return bce + smooth_weight * smooth, {"bce": float(bce.detach()), "smooth": float(smooth.detach())}


def train_ground_net(
    net: GroundNet,
    images: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor | None = None,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-3,
    smooth_weight: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "ground",
) -> list[float]:
    """Fit the ground net to pseudo-masks; returns the loss of every step.

    Args:
        images: [N,3,H,W] RGB in [0,1]. targets: [N,1,H,W] normal-based ground masks.
        valid: [N,1,H,W] where the targets hold (e.g. valid depth), or None.
        desc: the progress bar's name (the appearance net, :mod:`.appearance`, trains here too).
    """
    check_tensor("images", images, "B3HW")
    check_tensor("targets", targets, "B1HW", floating=False)
    check_batch(images=images, targets=targets)
    generator = torch.Generator().manual_seed(seed)
    net.to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=generator)
        image = images[idx].to(device)
        loss, _ = ground_loss(net(image), targets[idx].to(device), image, None if valid is None else valid[idx].to(device), smooth_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def predict_ground(net: GroundNet, images: torch.Tensor, threshold: float = 0.5, batch_size: int = 16) -> torch.Tensor:
    """[N,3,H,W] -> [N,1,H,W] bool ground masks."""
    net.eval()
    device = next(net.parameters()).device
    out = [torch.sigmoid(net(images[i : i + batch_size].to(device))).cpu() >= threshold for i in range(0, len(images), batch_size)]
    return torch.cat(out)
