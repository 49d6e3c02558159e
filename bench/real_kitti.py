"""Real-sequence benchmark: the shared 78-frame KITTI drive as a rosbag2 -> stage 1 -> ONNX -> LiDAR scores.

1. Writes the drive (``../shared/data/kitti_sfnd_2011_09_26``) as a rosbag2 with its four Velodyne
   scans and ``/tf_static`` (``mcdepth_train.data.kitti_bag``), into OUT/bag.
2. Trains stage 1 from the bag with ``configs/kitti.yaml`` + ``configs/kitti_cpu.yaml`` and the
   overrides given here (e.g. ``stage1.max_steps=200``); ``--init CKPT`` starts from another run's
   networks (``stage1.init_checkpoint``, e.g. a synthetic run), for the random-vs-synthetic start.
3. Exports the selected checkpoint to ONNX (``export_onnx``, with its PyTorch parity check) and
   scores the ONNX model, through the node's own preprocessing, against
   - the bag's LiDAR (frames 2, 4, 6: the scans' frames with both neighbours), and
   - TRI's KITTI_tiny frames 1-5 (``../shared/data/kitti_tiny_drive_0023``, projected Velodyne depth);
   both with the Garg crop, 80 m cap and per-image median scaling, in the regions all, ground and
   objects (road regions from the LiDAR itself; objects are a proxy for dynamic: docs/real_data.md).
4. Scores two trivial priors the same way: a constant depth (median scaling makes it the image's
   median LiDAR depth) and the flat-road depth of a level camera 1.65 m above the road.

usage: OMP_NUM_THREADS=1 python bench/real_kitti.py [--out runs/real_kitti] [--init CKPT] [--eval-only] [KEY=VALUE ...]
Prints a Markdown table and a JSON line; writes OUT/real_kitti.{md,json}. Resumable (stage 1 resumes
from OUT/<name>/stage1/checkpoints/last.pt; the bag and the export are reused).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = ROOT / "mcdepth_train" / "configs"
SHARED = ROOT.parent / "shared" / "data"
CAMERA_HEIGHT_M = 1.65  # KITTI's camera above the road


def ground_plane_prior(batch, height_m: float = CAMERA_HEIGHT_M, max_depth: float = 80.0):
    """Depth of a flat road under a level camera: fy * h / (v - cy) below the horizon, max_depth above."""
    import torch

    from mcdepth_train.data import keys

    image = batch[keys.color(0, 0)]
    K = batch[keys.intrinsics(0)]
    h = image.shape[-2]
    v = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    below = v - K[:, 1, 2].view(-1, 1, 1, 1)
    depth = torch.where(below > 0.5, K[:, 1, 1].view(-1, 1, 1, 1) * height_m / below.clamp(min=0.5), torch.tensor(max_depth))
    return depth.clamp(1.0, max_depth).expand(-1, 1, -1, image.shape[-1]).contiguous()


def constant_prior(batch):
    import torch

    from mcdepth_train.data import keys

    image = batch[keys.color(0, 0)]
    return torch.ones(image.shape[0], 1, *image.shape[-2:])


def onnx_predictor(model_dir: Path):
    """batch -> depth [B,1,H,W] from model.onnx, with the node's preprocessing (mcdepth_ros, read-only)."""
    import numpy as np
    import torch

    from mcdepth_ros.contract import load_contract
    from mcdepth_ros.preprocess import prepare_input
    from mcdepth_train.data import keys
    from mcdepth_train.export.onnx_export import ort_session

    contract = load_contract(model_dir)
    session = ort_session(model_dir / "model.onnx", threads=1)

    def predict(batch):
        out = []
        for image in batch[keys.color(0, 0)]:
            x = prepare_input(image.permute(1, 2, 0).numpy().astype(np.float32), contract)
            y = session.run([contract.output_name], {contract.input_name: x})[0]
            out.append(torch.from_numpy(1.0 / np.maximum(y, 1e-6) if contract.output_kind == "inv_depth" else y))
        return torch.cat(out).float()

    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/real_kitti", help="benchmark folder (resumable)")
    parser.add_argument("--name", default="", help="run name under OUT (default: 'random' or 'init')")
    parser.add_argument("--init", default="", metavar="CKPT", help="start stage 1 from this checkpoint (stage1.init_checkpoint)")
    parser.add_argument("--eval-only", action="store_true", help="score the priors only (no training)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides over kitti.yaml + kitti_cpu.yaml")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from mcdepth_train.config import load_config
    from mcdepth_train.data import build_dataset
    from mcdepth_train.data.kitti import KittiDataset
    from mcdepth_train.data.kitti_bag import write_kitti_bag
    from mcdepth_train.eval.evaluate import evaluate_predictor

    out = Path(args.out)
    drive = SHARED / "kitti_sfnd_2011_09_26" / "images" / "KITTI" / "2011_09_26"
    bag = out / "bag"
    started = time.monotonic()
    if not bag.exists():
        print(f"bag: {write_kitti_bag(drive, bag)} -> {bag}")
    name = args.name or ("init" if args.init else "random")
    run = out / name
    overrides = ["data.dataset=rosbag", f"data.root={bag}", "data.motion_topic=", "data.min_image_change=0",
                 f"run.out_dir={run}", "eval.lidar_topic=/velodyne_points", "eval.lidar_pixel_offset=-1", "eval.crop=garg",
                 "eval.lidar_regions=true", "eval.unscaled_row=true", "run.progress=false"]
    if args.init:
        overrides.append(f"stage1.init_checkpoint={args.init}")
    cfg = load_config([CONFIGS / "kitti.yaml", CONFIGS / "kitti_cpu.yaml"], overrides + list(args.overrides))

    timings = {}
    predictors = {"constant (median-scaled)": constant_prior, f"flat road, camera {CAMERA_HEIGHT_M} m": ground_plane_prior}
    summary = None
    if not args.eval_only:
        from mcdepth_train.export.onnx_export import export_onnx
        from mcdepth_train.stages.stage1 import train_stage1

        t = time.monotonic()
        summary = train_stage1(cfg)
        timings["stage1_s"] = round(time.monotonic() - t, 1)
        checkpoint = Path(summary["best_checkpoint"] or summary["last_checkpoint"])
        model_dir = run / "model"
        if not (model_dir / "model.onnx").is_file() or (model_dir / "model.onnx").stat().st_mtime < checkpoint.stat().st_mtime:
            export_onnx(checkpoint, model_dir)
        predictors = {f"stage 1 ({name} start, {summary['steps']} steps, ONNX)": onnx_predictor(model_dir), **predictors}

    # Scored on the same frames whatever the training's frame_ids: evaluation needs frame 0 only.
    eval_cfg = load_config([CONFIGS / "kitti.yaml", CONFIGS / "kitti_cpu.yaml"], overrides + list(args.overrides) + ["data.frame_ids=[-1,0,1]"])
    sets = {
        "bag LiDAR (frames 2,4,6)": build_dataset(eval_cfg, "test"),
        "KITTI_tiny (frames 1-5)": KittiDataset(SHARED / "kitti_tiny_drive_0023", [("2011_09_26/2011_09_26_drive_0023_sync", n, "l") for n in range(1, 6)],
                                                gt="velodyne", height=cfg.data.height, width=cfg.data.width, num_scales=1),
    }
    rows, table = {}, []
    for set_name, dataset in sets.items():
        for pred_name, predict in predictors.items():
            metrics, _ = evaluate_predictor(predict, dataset, cfg.eval, progress=False, dataset_name="kitti")
            scaled, unscaled = metrics.mean(), metrics.unscaled.mean()
            ratios = [r for r in metrics.ratios if r == r]
            rows[f"{set_name} | {pred_name}"] = {"scaled": scaled, "unscaled": unscaled, "median_ratio": float(sorted(ratios)[len(ratios) // 2])}
            cells = [f"{(scaled.get(r) or {}).get('abs_rel', float('nan')):.3f}" for r in ("all", "ground", "objects")]
            metric = [f"{(unscaled.get(r) or {}).get('abs_rel', float('nan')):.3f}" for r in ("all", "ground")]
            table.append(f"| {set_name} | {pred_name} | {' | '.join(cells)} | {(scaled.get('all') or {}).get('a1', float('nan')):.3f} | "
                         f"{' | '.join(metric)} | {rows[f'{set_name} | {pred_name}']['median_ratio']:.2f} | {(scaled.get('all') or {}).get('images', 0)} |")
    md = ("| ground truth | depth | AbsRel all | AbsRel ground | AbsRel objects | delta<1.25 all | unscaled AbsRel all | unscaled AbsRel ground "
          "| LiDAR/pred median | images |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(table) + "\n")
    if summary is not None:
        resumed = " (this call resumed a run: the time is this call's only)" if summary.get("resumed") else ""
        md += (f"\nstage 1: {summary['steps']} steps, {timings['stage1_s']} s{resumed}; "
               f"checkpoint {summary['best_checkpoint'] or summary['last_checkpoint']}\n")
    print(md)
    result = {"rows": rows, "timings": timings, "overrides": list(args.overrides), "init": args.init,
              "wall_s": round(time.monotonic() - started, 1), "stage1": None if summary is None else
              {k: summary[k] for k in ("steps", "epochs_completed", "best_checkpoint", "last_checkpoint")}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"real_kitti_{name if not args.eval_only else 'priors'}.md").write_text(md)
    (out / f"real_kitti_{name if not args.eval_only else 'priors'}.json").write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps({"wall_s": result["wall_s"], "timings": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
