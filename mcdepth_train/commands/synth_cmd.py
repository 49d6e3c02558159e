"""``mcdepth-train synth``: render synthetic dynamic driving scenes into a KITTI-like folder and/or rosbag2.

The scene size and counts come from the config (``data.height``, ``data.width``, ``data.synth_*``),
so ``mcdepth-train synth --out DIR data.synth_sequences=2`` and a later
``mcdepth-train stage1 data.dataset=synthetic data.root=DIR`` agree.
"""
from __future__ import annotations

import argparse
import sys

from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, or be empty)")
    parser.add_argument("--format", choices=("kitti", "rosbag2", "both"), default="kitti", help="KITTI-like folder, rosbag2 per sequence, or both (default: kitti)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="rosbag2 storage plugin (default: sqlite3)")
    parser.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage (PNG) instead of Image")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first sequence (default: data.synth_seed)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic_folder import params_from_config, write_synthetic

    cfg = config_from_args(args)
    d = cfg.data
    formats = ("kitti", "rosbag2") if args.format == "both" else (args.format,)
    try:
        manifest = write_synthetic(
            args.out, params_from_config(d), d.synth_seed if args.seed is None else args.seed, d.synth_sequences, d.synth_test_sequences,
            formats=formats, storage=args.storage, compressed=args.compressed, image_topic=d.image_topic,
            camera_info_topic=d.camera_info_topic, progress=cfg.run.progress,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"mcdepth-train synth: {exc}", file=sys.stderr)
        return 2
    p = manifest["params"]
    print(f"wrote {args.out}: {len(manifest['sequences'])} sequences x {p['num_frames']} frames = {manifest['frames']} frames "
          f"at {p['height']}x{p['width']} ({', '.join(formats)})")
    print(f"samples: train {manifest['samples']['train']}, val {manifest['samples']['val']}, test {manifest['samples']['test']}")
    per_sequence = ", ".join(f"{100 * s['dynamic_fraction']:.2f}%" for s in manifest["sequences"])
    print(f"dynamic pixel fraction: {100 * manifest['dynamic_fraction']:.2f}% (per sequence: {per_sequence})")
    if "rosbag2" in formats:
        print(f"rosbag2 ({args.storage}): {args.out}/rosbag2/<sequence>, topics {d.image_topic} and {d.camera_info_topic}")
    return 0
