"""``mcdepth-train demo``: the whole method on a fresh machine, with nothing downloaded.

1. renders synthetic dynamic driving scenes (a lead car at ego speed, oncoming, crossing and
   parked cars) and writes the training sequence as a rosbag2, plus held-out test sequences with
   exact depth and moving-object masks;
2. trains the whole pipeline from the rosbag (stage 1 -> masks -> objects -> DSA -> pseudo labels
   -> stage 3 -> one self-training round) at low resolution on the CPU;
3. evaluates every stage per region (dynamic / static / all) on the held-out sequences;
4. exports the final depth net (model.onnx + model.json) for the ROS node;
and prints the stage-1 vs stage-3 table. The run resumes if stopped and rerun.
Sized by ``mcdepth_train/configs/demo.yaml`` (8.1 minutes measured on 2 idle CPU cores; the goal is 15).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML over the demo's (repeatable)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. stage1.epochs=20")


def prepare_data(cfg, data_dir: Path) -> dict:
    """Render the scenes once: KITTI-like folder (held-out test GT) + rosbag2 of the training sequence."""
    from ..data.synthetic_folder import MANIFEST, params_from_config, write_synthetic

    if (data_dir / MANIFEST).is_file():
        return json.loads((data_dir / MANIFEST).read_text())
    if data_dir.exists():  # an interrupted render: start it again
        import shutil

        shutil.rmtree(data_dir)
    d = cfg.data
    return write_synthetic(data_dir, params_from_config(d), d.synth_seed, d.synth_sequences, d.synth_test_sequences,
                           formats=("kitti", "rosbag2"), image_topic=d.image_topic, camera_info_topic=d.camera_info_topic,
                           progress=cfg.run.progress)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config, save_config
    from ..eval.report import markdown_table
    from ..stages.workflow import method_pipeline

    out = Path(args.out)
    try:
        cfg = load_config([DEMO_CONFIG, *args.config], [*args.overrides, f"run.out_dir={out}"])
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    manifest = prepare_data(cfg, out / "data")
    bags = sorted((out / "data" / "rosbag2").iterdir())
    train_names = [Path(s["folder"]).name.removesuffix("_sync") for s in manifest["sequences"] if s["role"] == "train"]
    bag = next(b for b in bags if b.name in train_names)
    # Train from the bag, as a fleet engineer would; evaluate on the held-out synthetic sequences.
    cfg.data.dataset, cfg.data.root = "rosbag", str(bag)
    cfg.eval.dataset, cfg.eval.root = "synthetic", str(out / "data")
    save_config(cfg, out / "config.yaml")
    print(f"demo: training from {bag} ({manifest['frames']} frames rendered, "
          f"{100 * manifest['dynamic_fraction']:.1f}% dynamic pixels); run folder {out}")
    try:
        method_pipeline().run(cfg, out)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"mcdepth-train demo: {exc}", file=sys.stderr)
        return 1
    results = json.loads((out / "eval" / "metrics.json").read_text())
    print("\nPer-region depth error on held-out synthetic sequences (median-scaled per image; lower AbsRel is better):\n")
    print(markdown_table(results))
    stage1, final = results.get("stage 1", {}).get("dynamic"), results.get("stage 3", {}).get("dynamic")
    if stage1 and final:
        change = 100 * (final["abs_rel"] - stage1["abs_rel"]) / stage1["abs_rel"]
        print(f"dynamic-region AbsRel, stage 3 vs stage 1: {stage1['abs_rel']:.3f} -> {final['abs_rel']:.3f} ({change:+.1f}%)")
    print(f"\nreport: {out}/eval/metrics.md (+ .json, .csv, plots)\n"
          f"pseudo labels and inspection strips: {out}/pseudo/\n"
          f"exported model for the ROS node: {out}/export/ (model.onnx + model.json)\n"
          f"whole run: {out}/manifest.json; took {(time.monotonic() - started) / 60:.1f} min")
    return 0
