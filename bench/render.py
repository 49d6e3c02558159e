"""Render speed of the synthetic scene generator at 192x640 on one CPU thread.

    python bench/render.py [--frames 40] [--height 192] [--width 640] [--json-only]

Prints a table and one JSON line: frames per second of ``SyntheticScene.render`` (ray casting,
texturing, shading; no disk I/O), of the tiny 64x192 path, and the dynamic-pixel fraction.
"""
from __future__ import annotations

import os

# One thread for every numerical library, before numpy/torch are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mcdepth_train.data.synthetic import SceneParams, SyntheticScene, dynamic_mask  # noqa: E402


def measure(height: int, width: int, frames: int, seed: int = 0) -> dict:
    scene = SyntheticScene(SceneParams(height=height, width=width, num_frames=frames), seed)
    scene.render(0)  # warm-up (texture atlas, caches)
    times, cpu, dyn = [], [], []
    ids = [i.id for i in scene.instances if i.dynamic]
    for i in range(frames):
        start, start_cpu = time.perf_counter(), time.process_time()
        frame = scene.render(i)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        dyn.append(float(dynamic_mask(frame.instance_map, ids).mean()))
    t = np.array(times)
    # CPU time of this (single-threaded) process: the speed on an idle core, even on a busy machine.
    return {"height": height, "width": width, "frames": frames, "fps": float(1.0 / t.mean()), "cpu_fps": float(1.0 / np.mean(cpu)),
            "ms_mean": float(1e3 * t.mean()),
            "ms_median": float(1e3 * np.median(t)), "ms_max": float(1e3 * t.max()), "dynamic_fraction": float(np.mean(dyn))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    full = measure(args.height, args.width, args.frames)
    tiny_start = time.perf_counter()
    SyntheticScene(SceneParams(height=64, width=192, num_frames=5), 1)
    tiny = measure(64, 192, 5, seed=1)
    tiny["sequence_s"] = time.perf_counter() - tiny_start
    result = {"benchmark": "synthetic_render", "threads": 1, "cpu": platform.processor() or platform.machine(),
              "load_avg_1min": os.getloadavg()[0], "full": full, "tiny": tiny, "goal_fps": 20.0}
    if not args.json_only:
        print(f"{'size':>10} {'frames':>6} {'fps':>7} {'cpu fps':>7} {'ms mean':>8} {'ms median':>9} {'ms max':>7} {'dynamic px':>10}")
        for r in (full, tiny):
            print(f"{r['height']:>4}x{r['width']:<5} {r['frames']:>6} {r['fps']:>7.1f} {r['cpu_fps']:>7.1f} {r['ms_mean']:>8.1f} {r['ms_median']:>9.1f} "
                  f"{r['ms_max']:>7.1f} {100 * r['dynamic_fraction']:>9.2f}%")
        print(f"goal: >= 20 fps at 192x640 on one core: wall clock {'met' if full['fps'] >= 20 else 'NOT met'}, "
              f"CPU time {'met' if full['cpu_fps'] >= 20 else 'NOT met'} (1-min load average {result['load_avg_1min']:.1f} on {os.cpu_count()} cores; "
              f"'cpu fps' counts only this process's CPU time)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
