"""End-to-end latency of depth_node over real rclpy, against the backend's own latency.

    PYTHONPATH=. .venv/bin/python bench/node_latency.py [--model DIR] [--seconds 6]

Measures, with the ONNX Runtime backend at the model's size (default: a random resnet18 depth net
exported at 192x640):
  backend   backend.infer alone (median/p90 ms) and the whole pipeline (pre + infer + post);
  e2e       publish -> depth received by a subscriber in the same process, one frame in flight
            (median/p90 ms); the node's overhead is e2e / backend (goal <= 1.15x);
  sustained output rate while frames arrive at --rate Hz (faster than the backend), with the
            drop count: the node runs flat out on the newest frame.
Prints one JSON object and a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test fixtures' model maker and rclpy harness


def percentiles(values_s: list[float]) -> dict:
    arr = np.asarray(values_s) * 1000.0
    return {"median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90)), "n": int(arr.size)}


def bench_backend(model_dir: Path, rgb: np.ndarray, threads: int, seconds: float) -> dict:
    from mcdepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from mcdepth_ros.contract import load_contract
    from mcdepth_ros.pipeline import DepthPipeline
    from mcdepth_ros.preprocess import prepare_input

    contract = load_contract(model_dir)
    backend = OnnxRuntimeBackend(contract, device="cpu", threads=threads)
    pipeline = DepthPipeline(contract, backend)
    x = prepare_input(rgb, contract)
    for _ in range(3):
        backend.infer(x)
    infer, full = [], []
    end = time.monotonic() + seconds / 2
    while time.monotonic() < end or len(infer) < 5:
        t = time.perf_counter()
        backend.infer(x)
        infer.append(time.perf_counter() - t)
        t = time.perf_counter()
        pipeline.run(rgb)
        full.append(time.perf_counter() - t)
    return {"backend": backend.describe(), "infer": percentiles(infer), "pipeline": percentiles(full)}


def bench_node(model_dir: Path, rgb: np.ndarray, threads: int, seconds: float, rate: float) -> dict:
    from rclpy.parameter import Parameter
    from ros.conftest import RosHarness, image_msg
    from sensor_msgs.msg import Image

    from mcdepth_ros.depth_node import DepthNode

    ros = RosHarness()
    try:
        node = ros.add(DepthNode(parameter_overrides=[
            Parameter("model_dir", value=str(model_dir)), Parameter("backend", value="onnxruntime"),
            Parameter("device", value="cpu"), Parameter("threads", value=threads),
            Parameter("qos_in", value="reliable")], context=ros.context))
        pub = ros.tester.create_publisher(Image, "image", 5)
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        received: list[float] = []

        def on_depth(msg):
            now = time.perf_counter()
            received.append(now)
            t = sent_at.pop(msg.header.stamp.sec, None)
            if t is not None:
                latencies.append(now - t)

        ros.tester.create_subscription(Image, "depth/image", on_depth, 5)
        msg = image_msg(rgb, 0)
        # Warm up (discovery, first runs), then one frame in flight at a time.
        ros.wait_for(lambda: (pub.publish(msg), time.sleep(0.2), received)[-1], timeout=30, what="first depth")
        ros.wait_for(lambda: not node.pending(), what="idle")
        latencies.clear()
        seq = 1
        end = time.monotonic() + seconds / 2
        while time.monotonic() < end or len(latencies) < 5:
            n = len(latencies)
            msg.header.stamp.sec = seq
            sent_at[seq] = time.perf_counter()
            pub.publish(msg)
            ros.wait_for(lambda: len(latencies) > n, timeout=10, what=f"depth for frame {seq}")
            seq += 1
        e2e = percentiles(latencies)
        # The backend's time inside the node over the same frames: the fairest denominator on a
        # shared machine, where the load changes between separate measurements.
        in_node = percentiles(list(node.stats.inference.values)[-len(latencies):])
        # Sustained: frames at `rate` Hz; count outputs over the window.
        ros.wait_for(lambda: not node.pending(), what="idle")
        base_pub, base_drop = node.stats.published, node.stats.dropped
        received.clear()
        start = time.monotonic()
        next_t = start
        while time.monotonic() - start < seconds / 2:
            seq += 1
            msg.header.stamp.sec = seq
            pub.publish(msg)
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.monotonic()))
        window = time.monotonic() - start
        out = [t for t in received]
        sustained = (len(out) - 1) / (out[-1] - out[0]) if len(out) > 1 else 0.0
        return {"e2e": e2e, "infer_in_node": in_node, "sustained_hz": sustained, "input_hz": rate, "window_s": window,
                "published": node.stats.published - base_pub, "dropped": node.stats.dropped - base_drop}
    finally:
        ros.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="Model folder (default: a random resnet18 exported at --height x --width).")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default).")
    p.add_argument("--seconds", type=float, default=6.0, help="Time per measurement (split between its parts).")
    p.add_argument("--rate", type=float, default=30.0, help="Input rate for the sustained measurement (Hz).")
    args = p.parse_args(argv)
    tmp = None
    model_dir = Path(args.model) if args.model else None
    if model_dir is None:
        from ros.conftest import make_model_dir

        tmp = tempfile.TemporaryDirectory(prefix="mcdepth_bench_")
        model_dir = make_model_dir(Path(tmp.name), args.height, args.width)
    rgb = np.random.default_rng(0).integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    backend = bench_backend(model_dir, rgb, args.threads, args.seconds)
    node = bench_node(model_dir, rgb, args.threads, args.seconds, args.rate)
    result = {
        "size": [args.height, args.width], "threads": args.threads, **backend, **node,
        "overhead_ratio": node["e2e"]["median_ms"] / node["infer_in_node"]["median_ms"],
        "overhead_ratio_vs_separate_backend_run": node["e2e"]["median_ms"] / backend["infer"]["median_ms"],
        "overhead_ratio_vs_pipeline": node["e2e"]["median_ms"] / backend["pipeline"]["median_ms"],
        "goal_ratio": 1.15,
    }
    print(json.dumps(result, indent=2))
    rows = [("backend infer (alone)", backend["infer"]), ("pipeline (pre+infer+post)", backend["pipeline"]),
            ("backend infer (in the node)", node["infer_in_node"]), ("node end-to-end", node["e2e"])]
    print(f"\n{'what':28s} {'median ms':>10s} {'p90 ms':>10s} {'n':>5s}")
    for name, r in rows:
        print(f"{name:28s} {r['median_ms']:10.1f} {r['p90_ms']:10.1f} {r['n']:5d}")
    print(f"overhead (e2e / backend median, same frames): {result['overhead_ratio']:.3f}x (goal <= 1.15x); "
          f"against the separate backend run: {result['overhead_ratio_vs_separate_backend_run']:.3f}x")
    print(f"sustained output {node['sustained_hz']:.1f} Hz at {args.rate:.0f} Hz input; "
          f"{node['published']} published, {node['dropped']} dropped; backend {backend['backend']}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
