"""Does the stage-1 loss reward the motion moving objects need, and does the motion net learn it?

Three measurements per object kind (lead / oncoming / crossing / parked car, background) on
synthetic frames, where the generator knows where every pixel truly goes:

1. needed: the residual motion (px) that moves stage 1's rigid projection (its own depth and pose)
   onto the pixel's true position in the source frame, and the photometric loss on those pixels
   with zero motion vs with that ideal motion: whether the loss rewards the right answer at all;
2. free flow: a coarse free flow field (1/8 resolution, bilinearly upsampled), optimised by the
   stage-1 loss alone on the frames with the fastest-moving cars: whether plain gradient descent
   on the loss finds that motion without a network;
3. predicted: the checkpoint's motion net on the same frames.

    python bench/motion_landscape.py runs/demo/stage1/checkpoints/best.pt [KEY=VALUE ...]

Overrides change the checkpoint's saved config (e.g. ``data.dataset=synthetic data.root=DIR`` when
it trained from a rosbag of synthetic scenes). Ground truth is used for this analysis only.
Prints a table and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcdepth_train.data.synthetic_motion import rigid_source_pixels, true_source_pixels  # noqa: E402


def region_names(instance_map: np.ndarray, kinds: dict, min_pixels: int) -> dict:
    """{name: [H,W] bool} of the background and every instance with at least ``min_pixels``."""
    out = {"background": instance_map == 0}
    for k in np.unique(instance_map):
        if k != 0 and (instance_map == k).sum() >= min_pixels:
            out[f"{kinds.get(int(k), 'object')}#{int(k)}"] = instance_map == k
    return out


def _per_kind(rows: list[tuple[str, dict]]) -> dict:
    """Mean of each measured value over the regions of each kind ('crossing#4' -> 'crossing')."""
    grouped: dict = {}
    for name, values in rows:
        grouped.setdefault(name.split("#")[0], []).append(values)
    return {kind: {key: float(np.mean([v[key] for v in vals])) for key in vals[0]} | {"regions": len(vals)}
            for kind, vals in sorted(grouped.items())}


def fit_free_flow(model, samples: list[dict], sparsity_weight: float, steps: int, lr: float = 0.05) -> np.ndarray:
    """Fit a coarse free flow per source in place of the motion net, by the stage-1 loss alone.

    The flow lives at 1/8 resolution and is upsampled bilinearly, so each value moves a patch (a
    per-pixel flow gets no gradient inside flat regions). Depth and pose stay fixed (motion phase).

    Returns:
        [N,H,W] the masked motion magnitude at the reference pixels, averaged over the sources.
    """
    from torch.utils.data import default_collate

    from mcdepth_train.data import keys

    batch = default_collate(samples)
    h, w = batch[keys.color(0, 0)].shape[-2:]
    generator = torch.Generator().manual_seed(0)
    free = {f: (0.01 * torch.randn(len(samples), 2, max(1, h // 8), max(1, w // 8), generator=generator)).requires_grad_()
            for f in model.source_ids}
    calls: list[int] = []

    def free_flow(image_a, image_b):  # called once per source, in source order
        f = model.source_ids[len(calls) % len(model.source_ids)]
        calls.append(f)
        return F.interpolate(free[f], size=(h, w), mode="bilinear", align_corners=False)

    network_forward, network_weight, network_scale = model.motion.forward, model.sparsity_weight, model.sparsity_scale
    model.motion.forward, model.sparsity_weight, model.sparsity_scale = free_flow, sparsity_weight, 1.0
    # The 'all' phase's loss (mean rule and sparsity on; the motion-only phase has neither), with
    # depth and pose held fixed.
    fixed = [p for p in model.parameters() if p.requires_grad]
    for p in fixed:
        p.requires_grad_(False)
    try:
        optimizer = torch.optim.Adam(list(free.values()), lr=lr)
        for _ in range(steps):
            calls.clear()
            loss = model(batch, "all")["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        calls.clear()
        with torch.no_grad():
            flows = model.infer(batch)["flow"]
    finally:
        model.motion.forward, model.sparsity_weight, model.sparsity_scale = network_forward, network_weight, network_scale
        for p in fixed:
            p.requires_grad_(True)
    return torch.stack([flows[f].norm(dim=1) for f in model.source_ids]).mean(0).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a stage-1 (or stage-3) checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the checkpoint's config")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--frames", type=int, default=24, help="frames, evenly spread over the split")
    parser.add_argument("--free-frames", type=int, default=4, help="frames the free flow is fitted on (fastest cars)")
    parser.add_argument("--free-steps", type=int, default=150, help="Adam steps of the free flow (0 = skip)")
    parser.add_argument("--free-sparsity", type=float, nargs="+", default=None,
                        help="sparsity weights the free flow is fitted with (default: the checkpoint's, and 0)")
    parser.add_argument("--min-pixels", type=int, default=20, help="smallest object counted")
    args = parser.parse_args(argv)
    for name in ("frames", "free_frames", "min_pixels"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(args, name)}")
    if args.free_steps < 0:
        parser.error(f"--free-steps: expected >= 0, got {args.free_steps}")

    from mcdepth_train.config import apply_overrides, config_from_dict
    from mcdepth_train.data import keys
    from mcdepth_train.data.synthetic_folder import SyntheticFolderDataset
    from mcdepth_train.engine.checkpoint import load_checkpoint
    from mcdepth_train.losses.reprojection import multiscale_photometric_loss
    from mcdepth_train.stages.frames import frames_dataset, load_stage1_model

    cfg = config_from_dict(load_checkpoint(args.checkpoint)["config"])
    apply_overrides(cfg, args.overrides)
    model, _ = load_stage1_model(args.checkpoint, "cpu")  # an analysis of a few frames; numpy geometry throughout
    dataset = frames_dataset(cfg, args.split)
    if not isinstance(dataset, SyntheticFolderDataset):
        parser.error(f"needs the synthetic generator's ground truth; data.dataset '{cfg.data.dataset}' has none")
    started = time.time()

    def photometric_map(out, batch, flows):
        _, details = multiscale_photometric_loss(
            out["disp"], batch[keys.color(0, 0)], {f: batch[keys.color(f, 0)] for f in model.source_ids},
            batch[keys.intrinsics(0)], batch[keys.intrinsics(0, inverse=True)], out["poses"], model.photometric,
            model.depth.min_depth, model.depth.max_depth, flows=flows)
        return details["loss_map"][0, 0].numpy()

    needed_rows, fastest = [], []
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(args.frames, len(dataset))).round().astype(int))
    for index in indices:
        sample = dataset[int(index)]
        truth = dataset.scene_truth(int(index))
        batch = {k: (v[None] if torch.is_tensor(v) else v) for k, v in sample.items()}
        with torch.no_grad():
            out = model.infer(batch)
        gt = sample[keys.DEPTH_GT][0].numpy()
        instances = sample[keys.INSTANCE_MAP][0].numpy()
        if gt.shape != instances.shape:
            parser.error("ground truth and training images differ in size: run at the generator's resolution")
        K = batch[keys.intrinsics(0)][0].double().numpy()
        depth = out["depth"][0, 0].double().numpy()
        ideal = {}
        for f in model.source_ids:
            residual = true_source_pixels(gt, instances, K, truth, f) - rigid_source_pixels(depth, K, out["poses"][f][0].double().numpy())
            ideal[f] = torch.from_numpy(residual[None]).float()
        needed = np.mean([np.linalg.norm(ideal[f][0].numpy(), axis=0) for f in model.source_ids], axis=0)
        predicted = np.mean([out["flow"][f][0].norm(dim=0).numpy() for f in model.source_ids], axis=0)
        with torch.no_grad():
            loss_zero = photometric_map(out, batch, None)
            # The ideal motion only on objects: stage 1's background error stays stage 1's.
            on_objects = torch.from_numpy(instances > 0)[None, None].float()
            loss_ideal = photometric_map(out, batch, {f: ideal[f] * on_objects for f in model.source_ids})
        regions = region_names(instances, truth["kinds"], args.min_pixels)
        for name, sel in regions.items():
            needed_rows.append((name, {"needed_px": float(np.median(needed[sel])), "predicted_px": float(predicted[sel].mean()),
                                       "loss_zero_motion": float(loss_zero[sel].mean()), "loss_ideal_motion": float(loss_ideal[sel].mean())}))
            if name != "background" and truth["dynamic"].get(int(name.split("#")[1])):
                fastest.append((float(np.median(needed[sel])), int(index)))

    result = {"checkpoint": str(args.checkpoint), "split": args.split, "frames": len(indices), "by_kind": _per_kind(needed_rows)}

    if args.free_steps > 0 and fastest:
        chosen = sorted({i for _, i in sorted(fastest, reverse=True)[: 4 * args.free_frames]})[: args.free_frames]
        samples = [dataset[i] for i in chosen]
        weights = args.free_sparsity if args.free_sparsity is not None else [model.sparsity_weight, 0.0]
        magnitudes = {str(w): fit_free_flow(model, samples, w, args.free_steps) for w in weights}
        free_rows: dict[str, list] = {w: [] for w in magnitudes}
        for j, index in enumerate(chosen):
            instances = samples[j][keys.INSTANCE_MAP][0].numpy()
            regions = region_names(instances, dataset.scene_truth(index)["kinds"], args.min_pixels)
            for w, magnitude in magnitudes.items():
                free_rows[w] += [(name, {"free_flow_px": float(magnitude[j][sel].mean())}) for name, sel in regions.items()]
        result["free_flow"] = {"frames": chosen, "steps": args.free_steps,
                               "by_sparsity_weight": {w: _per_kind(rows) for w, rows in free_rows.items()}}
    result["seconds"] = round(time.time() - started, 1)

    free = result.get("free_flow", {}).get("by_sparsity_weight", {})
    print(f"{'kind':<11} {'regions':>7} {'needed px':>9} {'predicted px':>12} {'loss zero m':>11} {'loss ideal m':>12}"
          + "".join(f" {'free px, sp ' + w:>16}" for w in free))
    for kind, row in result["by_kind"].items():
        cells = [free[w].get(kind, {}).get("free_flow_px") for w in free]
        print(f"{kind:<11} {row['regions']:>7} {row['needed_px']:>9.2f} {row['predicted_px']:>12.3f} "
              f"{row['loss_zero_motion']:>11.4f} {row['loss_ideal_motion']:>12.4f}"
              + "".join(f" {'-' if c is None else f'{c:.2f}':>16}" for c in cells))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
