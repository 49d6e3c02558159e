"""Stage 2b: train the Depth Scale Alignment net on static objects; measure it on held-out ones.

Orchestration (``mcdepth-train dsa``) gathers :class:`~mcdepth_train.networks.dsa.ObjectRecord`
for every static object that :mod:`mcdepth_train.stages.masks.rules` kept, with ô from the object
net, splits off ``dsa.held_out_fraction`` of them, calls :func:`train_dsa` and reports
:func:`evaluate_dsa` on the held-out part.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
from tqdm import tqdm

from ...networks.dsa import DSANet, ObjectRecord, build_dsa_input, dsa_loss, reference_scale


def split_held_out(records: list[ObjectRecord], fraction: float, seed: int = 0) -> tuple[list[ObjectRecord], list[ObjectRecord]]:
    """(train, held_out): a seeded random ``fraction`` of the records held out (at least one when fraction > 0)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction: expected a value in [0, 1), got {fraction}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_out = min(max(int(round(fraction * len(records))), 1 if fraction > 0 else 0), max(len(records) - 1, 0))
    held = set(order[:n_out])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def _stack(samples: list[dict[str, torch.Tensor]], device) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}


def train_dsa(
    net: DSANet,
    records: list[ObjectRecord],
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    lr_milestones: tuple[int, ...] = (3, 10),
    lr_gamma: float = 0.5,
    delta: float = 0.005,
    crop_size: int = 128,
    max_steps: int = 0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    train_backbone: bool = True,
    context: float = 2.0,
) -> list[float]:
    """Fit ŝ on static objects: Huber(δ) between ŝ·ô and stage-1 depth over each object's pixels.

    Args:
        net: the DSA net (trained in place).
        records: static objects only; a moving one is an error (its stage-1 depth has no valid scale).
        epochs, batch_size, lr, lr_milestones (epochs), lr_gamma: Adam schedule.
        delta: Huber delta (depth units). crop_size: input crop side (pixels).
        max_steps: stop after this many optimiser steps (0 = all epochs).
        train_backbone: False trains the FC head alone on fixed backbone features (a cheap
            fine-tune, e.g. of a DSA net from another run).
        context: crop side as a multiple of the object box's longer side (``dsa.context``).
    Returns:
        The loss of every step.
    """
    if not records:
        raise ValueError("records: no static objects to train on")
    moving = [i for i, r in enumerate(records) if r.moving]
    if moving:
        raise ValueError(f"records: DSA trains on static objects only; records {moving[:5]} are moving")
    samples = [build_dsa_input(r, crop_size, context) for r in records]
    generator = torch.Generator().manual_seed(seed)
    net.to(device).train()
    optimiser = torch.optim.Adam(net.parameters() if train_backbone else net.head.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(samples) / batch_size)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimiser, [m * steps_per_epoch for m in lr_milestones], gamma=lr_gamma
    )
    total = epochs * steps_per_epoch if not max_steps else min(max_steps, epochs * steps_per_epoch)
    losses: list[float] = []
    with tqdm(total=total, desc="dsa", disable=not progress) as bar:
        while len(losses) < total:
            order = torch.randperm(len(samples), generator=generator).tolist()
            for start in range(0, len(order), batch_size):
                if len(losses) >= total:
                    break
                batch = _stack([samples[i] for i in order[start : start + batch_size]], device)
                with torch.set_grad_enabled(train_backbone):
                    features = net.features(batch["input"])
                scale = net.scale(features)
                loss = dsa_loss(scale, batch["object_depth"], batch["depth"], batch["mask"], delta)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses


@torch.no_grad()
def predict_scales(
    net: DSANet, records: list[ObjectRecord], crop_size: int = 128, batch_size: int = 64, device="cpu", context: float = 2.0
) -> torch.Tensor:
    """[N] ŝ for each record (static or moving)."""
    net.to(device).eval()
    out = []
    for start in range(0, len(records), batch_size):
        batch = _stack([build_dsa_input(r, crop_size, context) for r in records[start : start + batch_size]], device)
        out.append(net(batch["input"]).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def evaluate_dsa(net: DSANet, records: list[ObjectRecord], crop_size: int = 128, device="cpu", context: float = 2.0) -> dict:
    """Held-out scale error: median over objects of |ŝ - s| / s.

    s is the record's ``true_scale`` when known (synthetic data), else median(D / ô) over the
    object's pixels (stage 1's scale, correct for static objects).
    """
    if not records:
        raise ValueError("records: nothing to evaluate")
    predicted = predict_scales(net, records, crop_size, device=device, context=context).numpy()
    truth = np.array([
        r.true_scale if r.true_scale is not None else reference_scale(build_dsa_input(r, crop_size, context)) for r in records
    ])
    rel = np.abs(predicted - truth) / truth
    return {"median_rel_error": float(np.median(rel)), "mean_rel_error": float(rel.mean()), "objects": len(records),
            "predicted": predicted.tolist(), "true": truth.tolist()}
