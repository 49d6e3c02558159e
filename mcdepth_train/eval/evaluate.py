"""Evaluate a depth predictor over a dataset that carries ground truth (and dynamic masks)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import EvalConfig
from ..data import keys
from .metrics import RegionMetrics, evaluate_image, protocol_crop

Predictor = Callable[[dict], torch.Tensor]  # batch -> depth [B,1,H,W] for frame 0


def evaluate_predictor(
    predict: Predictor,
    dataset,
    eval_cfg: EvalConfig,
    batch_size: int = 4,
    max_images: int = 0,
    keep_examples: int = 0,
    progress: bool = True,
    desc: str = "eval",
    dataset_name: str = "",
) -> tuple[RegionMetrics, list[dict]]:
    """Per-region metrics of ``predict`` on every sample with ``depth_gt``.

    ``dataset_name`` (as ``data.dataset``) picks the protocol when ``eval.protocol`` is 'auto'.

    Predictions are resized (bilinear) to the ground truth's size before scoring. Ground truth is
    used here only, never to select checkpoints.

    Returns:
        (metrics, examples): examples are up to ``keep_examples`` dicts of numpy maps
        (image, gt, pred, dynamic) for qualitative figures.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    crop = protocol_crop(eval_cfg.protocol, eval_cfg.crop, dataset_name)
    metrics = RegionMetrics()
    examples: list[dict] = []
    seen = 0
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            if keys.DEPTH_GT not in batch:
                raise ValueError("dataset: samples have no 'depth_gt'; evaluation needs ground truth")
            pred = predict(batch).float()
            gt = batch[keys.DEPTH_GT]
            pred = F.interpolate(pred, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            dyn = batch.get(keys.DYNAMIC_MASK)
            for i in range(pred.shape[0]):
                per_region, ratio = evaluate_image(
                    pred[i, 0].cpu().numpy(),
                    gt[i, 0].cpu().numpy(),
                    None if dyn is None else dyn[i, 0].cpu().numpy() > 0.5,
                    min_depth=eval_cfg.min_depth,
                    max_depth=eval_cfg.max_depth,
                    median_scaling=eval_cfg.median_scaling,
                    crop=crop,
                )
                metrics.add(per_region, ratio)
                if len(examples) < keep_examples:
                    image = batch[keys.color(0, 0)][i].permute(1, 2, 0).cpu().numpy()
                    examples.append({
                        "image": image,
                        "gt": gt[i, 0].cpu().numpy(),
                        "pred": pred[i, 0].cpu().numpy() * (ratio if np.isfinite(ratio) else 1.0),
                        "dynamic": None if dyn is None else dyn[i, 0].cpu().numpy() > 0.5,
                    })
                seen += 1
                if max_images and seen >= max_images:
                    return metrics, examples
    return metrics, examples
