"""The node's CPU stages around inference, alone, at camera sizes (no ROS): resize, ground fit, colour map.

    PYTHONPATH=. .venv/bin/python bench/postprocess_stages.py [--repeats 20] [--json out.json]

Times ``prepare_input`` (one INTER_AREA resize + planar float32) from 1242x375 and 1920x1080 to
192x640, ``fit_ground_plane`` on a 192x640 road seen from 1.5 m, ``resize_depth`` back up, and
``colorize`` at the camera sizes. Medians in ms, a table and JSON. Run it on another checkout to
compare code versions (it imports only functions that exist since the first node release).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcdepth_ros.postprocess import colorize, resize_depth  # noqa: E402
from mcdepth_ros.preprocess import prepare_input  # noqa: E402
from mcdepth_ros.scale import fit_ground_plane  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def road(h: int = 192, w: int = 640, f: float = 500.0, height_m: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Depth of a flat road ``height_m`` below a camera with focal ``f`` (horizon at mid-height), and K."""
    v = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
    cy = h / 2
    with np.errstate(divide="ignore"):
        depth = np.where(v > cy + 2, height_m * f / (v - cy), 80.0).astype(np.float32)
    return depth, np.array([[f, 0, w / 2], [0, f, cy], [0, 0, 1.0]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    contract = SimpleNamespace(height=192, width=640, color_order="rgb", input_range=(0.0, 1.0),
                               normalization_in_graph=True, mean=(0, 0, 0), std=(1, 1, 1))
    depth, k = road()
    out = {"fit_ground_plane 192x640 road": median_ms(lambda: fit_ground_plane(depth, k), args.repeats)}
    for h, w in ((375, 1242), (1080, 1920)):
        rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        full = np.random.default_rng(1).uniform(1, 80, (h, w)).astype(np.float32)
        out[f"prepare_input {w}x{h} -> 640x192"] = median_ms(lambda: prepare_input(rgb, contract), args.repeats)
        out[f"resize_depth 640x192 -> {w}x{h}"] = median_ms(lambda: resize_depth(depth, h, w), args.repeats)
        out[f"colorize {w}x{h}"] = median_ms(lambda: colorize(full, 0.5, 50.0), args.repeats)
    for name, ms in out.items():
        print(f"{name:40s} {ms:8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
