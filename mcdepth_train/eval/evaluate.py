"""Evaluate a depth predictor over a dataset that carries ground truth (and dynamic masks)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import EvalConfig
from ..data import keys
from ..geometry.camera import scale_intrinsics
from .metrics import RegionMetrics, evaluate_image, protocol_crop
from .road_regions import RoadRegionSettings, road_regions

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
    used here only, never to select checkpoints. With ``eval.lidar_regions`` the regions 'ground'
    and 'objects' are found in each ground-truth map itself (road_regions.py); with
    ``eval.unscaled_row`` the returned metrics carry ``.unscaled``, the same images without median
    scaling.

    Returns:
        (metrics, examples): examples are up to ``keep_examples`` dicts of numpy maps
        (image, gt, pred, dynamic) for qualitative figures.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    crop = protocol_crop(eval_cfg.protocol, eval_cfg.crop, dataset_name)
    metrics = RegionMetrics()
    if eval_cfg.unscaled_row:
        metrics.unscaled = RegionMetrics()
    road = RoadRegionSettings(ground_tolerance_m=eval_cfg.ground_tolerance_m, object_min_height_m=eval_cfg.object_height_m[0],
                              object_max_height_m=eval_cfg.object_height_m[1], corridor_half_width_m=eval_cfg.corridor_half_width_m)
    examples: list[dict] = []
    seen = 0
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            if keys.DEPTH_GT not in batch:
                raise ValueError("dataset: samples have no 'depth_gt'; evaluation needs ground truth")
            pred = predict(batch).float()
            pred_size = batch[keys.color(0, 0)].shape[-2:]
            gt = batch[keys.DEPTH_GT]
            pred = F.interpolate(pred, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            dyn = batch.get(keys.DYNAMIC_MASK)
            # K at the ground truth's size (the batch's K is at the network's)
            if eval_cfg.lidar_regions:
                K_gt = scale_intrinsics(batch[keys.intrinsics(0)].double(), gt.shape[-1] / pred_size[1], gt.shape[-2] / pred_size[0])
            for i in range(pred.shape[0]):
                gt_i = gt[i, 0].cpu().numpy()
                regions = None
                if eval_cfg.lidar_regions:
                    found = road_regions(gt_i, K_gt[i].numpy(), road, max_depth=eval_cfg.max_depth)
                    regions = found or {"ground": None, "objects": None}
                args = dict(dynamic_mask=None if dyn is None else dyn[i, 0].cpu().numpy() > 0.5, min_depth=eval_cfg.min_depth,
                            max_depth=eval_cfg.max_depth, crop=crop, regions=regions)
                per_region, ratio = evaluate_image(pred[i, 0].cpu().numpy(), gt_i, median_scaling=eval_cfg.median_scaling, **args)
                metrics.add(per_region, ratio)
                if metrics.unscaled is not None:
                    metrics.unscaled.add(*evaluate_image(pred[i, 0].cpu().numpy(), gt_i, median_scaling=False, **args))
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
