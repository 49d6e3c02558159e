"""depth_node over real rclpy at real camera sizes: end-to-end latency, per stage, against inference.

    PYTHONPATH=. .venv/bin/python bench/node_latency.py [--model DIR] [--sizes 375x1242 1080x1920 192x640]
        [--resolutions input model] [--frames 15] [--threads 1] [--json out.json]

For each camera size and ``output_resolution``, a depth_node (ONNX Runtime, CPU; ``scale_mode``
camera_height with camera_info, ``publish_colored`` on, so every stage runs) gets rgb8 frames of that
size from a publisher in the same process, one frame in flight. Per frame, from the node's own
stage clock (``DepthNode.stage_times``) and the publisher/subscriber instants:

  receive   publish -> the node's subscription callback (DDS + rclpy message conversion)
  queued    callback -> the worker picks the frame up
  convert   Image -> RGB array (encoding, step)
  resize    RGB -> network input (one INTER_AREA resize, planar float32 into a kept buffer)
  infer     backend.infer alone
  scale     model-unit depth -> metres (ground-plane fit at the network size)
  upsample  depth to the camera's size (output_resolution input; into a kept buffer)
  publish   32FC1 serialise + publish, and camera_info
  deliver   depth publish -> the subscriber's callback
  colour    the turbo colour map + its publish (after depth is out: costs throughput, not latency)

``e2e`` is publish -> depth received; the goal is e2e <= 1.15x infer (medians, same frames).
Then a sustained run at ``--rate`` Hz (default 10, the first size): the node's own receive -> publish
latency, which includes the wait for the frame in progress when frames come faster than it works.
Prints a table and one JSON object (``--json`` also writes it). Model default: a random resnet18
depth net exported at 192x640 (random weights time the same as trained ones).
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

STAGES = ("receive", "queued", "convert", "resize", "infer", "scale_fit", "upsample", "publish", "deliver", "colour")


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _node(ros, model_dir: Path, threads: int, **params):
    """A depth_node in ``ros`` on ONNX Runtime's CPU provider with reliable input, plus ``params``."""
    from rclpy.parameter import Parameter

    from mcdepth_ros.depth_node import DepthNode

    params = {"model_dir": str(model_dir), "backend": "onnxruntime", "device": "cpu", "threads": threads,
              "qos_in": "reliable", **params}
    return ros.add(DepthNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()], context=ros.context))


def bench_case(model_dir: Path, size: tuple[int, int], resolution: str, frames: int, threads: int) -> dict:
    """One size x output_resolution: per-frame stage times (ms) and their medians."""
    from ros.conftest import RosHarness, image_msg, info_msg
    from sensor_msgs.msg import Image

    h, w = size
    ros = RosHarness()
    try:
        node = _node(ros, model_dir, threads, output_resolution=resolution, scale_mode="camera_height",
                     publish_colored=True)
        pub = ros.tester.create_publisher(Image, "image", 5)
        pub_info = ros.tester.create_publisher(type(info_msg()), "camera_info", 5)
        got: dict[int, float] = {}
        ros.tester.create_subscription(Image, "depth/image", lambda m: got.setdefault(m.header.stamp.sec, time.monotonic()), 5)
        rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        msg = image_msg(rgb, 0)
        info = info_msg(h, w)
        info.k = [0.9 * w, 0.0, w / 2, 0.0, 0.9 * w, h / 2, 0.0, 0.0, 1.0]
        # Warm up: discovery, camera_info known, first runs.
        ros.wait_for(lambda: (pub_info.publish(info), pub.publish(msg), time.sleep(0.3), got)[-1], timeout=60, what="first depth")
        ros.wait_for(lambda: not node.pending(), what="idle")
        # An older node (before the stage clock) still gives e2e and infer: compare code versions.
        clock = node.stage_times if hasattr(node, "stage_times") else node.stats.inference.values
        rows, sent_at = [], {}
        for seq in range(1, frames + 3):
            msg.header.stamp.sec = seq
            n = len(clock)
            sent_at[seq] = time.monotonic()
            pub.publish(msg)
            try:
                ros.wait_for(lambda: seq in got and len(clock) > n and not node.pending(), timeout=60,
                             what=f"depth for frame {seq}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; node stats {node.diagnostic_values()}") from None
            if seq <= 2:
                continue  # two more warm-up frames at this size
            if clock is node.stats.inference.values:
                row = {k: float("nan") for k in STAGES}
                row["infer"] = 1000.0 * clock[-1]
            else:
                st = clock[-1]
                row = {k: 1000.0 * st.get(k, 0.0) for k in ("queued", "convert", "resize", "infer", "scale_fit",
                                                            "upsample", "publish", "colour")}
                row["receive"] = 1000.0 * (st["received_at"] - sent_at[seq])
                row["deliver"] = 1000.0 * (got[seq] - st["published_at"])
            row["e2e"] = 1000.0 * (got[seq] - sent_at[seq])
            rows.append(row)
        medians = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        return {"size": [h, w], "output_resolution": resolution, "frames": len(rows), "median_ms": medians,
                "ratio_e2e_to_infer": medians["e2e"] / medians["infer"],
                "per_frame_ratio_median": float(np.median([r["e2e"] / r["infer"] for r in rows])),
                "backend": node.backend.describe()}
    finally:
        ros.close()


def bench_sustained(model_dir: Path, size: tuple[int, int], rate: float, seconds: float, threads: int) -> dict:
    """Frames at ``rate`` Hz for ``seconds`` (not one at a time): the node's own receive -> publish latency.

    When processing takes about as long as the input period, every frame waits in the one-deep slot
    for the frame in progress, so receive -> publish approaches twice the processing time (by design:
    the newest frame, never a queue)."""
    from ros.conftest import RosHarness, image_msg
    from sensor_msgs.msg import Image

    h, w = size
    ros = RosHarness()
    try:
        node = _node(ros, model_dir, threads)
        pub = ros.tester.create_publisher(Image, "image", 5)
        got: list = []
        ros.tester.create_subscription(Image, "depth/image", got.append, 5)
        msg = image_msg(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8), 0)
        ros.wait_for(lambda: (pub.publish(msg), time.sleep(0.3), got)[-1], timeout=60, what="first depth")
        ros.wait_for(lambda: not node.pending(), what="idle")
        stats = node.stats
        base = (stats.received, stats.published, stats.dropped, len(stats.latency.values))
        start = time.monotonic()
        for i in range(int(seconds * rate)):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(10**9 + int(i * 1e9 / rate), 10**9)
            pub.publish(msg)
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        ros.wait_for(lambda: not node.pending(), timeout=30, what="idle after the stream")
        n = len(stats.latency.values) - base[3]
        latency = 1000.0 * np.asarray(list(stats.latency.values)[-n:])
        inference = 1000.0 * np.asarray(list(stats.inference.values)[-n:])
        return {"size": [h, w], "rate_hz": rate, "seconds": seconds, "received": stats.received - base[0],
                "published": stats.published - base[1], "dropped": stats.dropped - base[2],
                "latency_p50_ms": float(np.median(latency)), "inference_p50_ms": float(np.median(inference)),
                "ratio_latency_to_infer": float(np.median(latency) / np.median(inference))}
    finally:
        ros.close()


def table(results: list[dict]) -> str:
    head = f"{'size':>10} {'out':>5} " + " ".join(f"{s[:8]:>8}" for s in STAGES) + f" {'e2e':>8} {'e2e/inf':>8}"
    lines = [head]
    for r in results:
        m = r["median_ms"]
        lines.append(f"{'x'.join(map(str, r['size'])):>10} {r['output_resolution']:>5} "
                     + " ".join(f"{m[s]:8.1f}" for s in STAGES) + f" {m['e2e']:8.1f} {r['ratio_e2e_to_infer']:8.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="Model folder (default: a random resnet18 exported at 192x640).")
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(375, 1242), (1080, 1920), (192, 640)],
                   help="Camera sizes HxW (the last default is the network's).")
    p.add_argument("--resolutions", nargs="+", default=["input", "model"], choices=("input", "model"))
    p.add_argument("--frames", type=int, default=15, help="Timed frames per case (after three warm-up frames).")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (0 = its default).")
    p.add_argument("--rate", type=float, default=10.0,
                   help="Input rate of the sustained run at the first size (0 = skip it).")
    p.add_argument("--sustained-seconds", type=float, default=8.0)
    p.add_argument("--json", default="", help="Also write the results here.")
    args = p.parse_args(argv)
    tmp = None
    model_dir = Path(args.model) if args.model else None
    if model_dir is None:
        from ros.conftest import make_model_dir

        tmp = tempfile.TemporaryDirectory(prefix="mcdepth_bench_")
        model_dir = make_model_dir(Path(tmp.name) / "model", 192, 640)
    results = []
    for size in args.sizes:
        for resolution in args.resolutions:
            if resolution == "model" and len(args.resolutions) > 1 and size == (192, 640):
                continue  # at the network size both resolutions are the same
            results.append(bench_case(model_dir, size, resolution, args.frames, args.threads))
            print(f"  {results[-1]['size']} {resolution}: e2e {results[-1]['median_ms']['e2e']:.1f} ms, "
                  f"ratio {results[-1]['ratio_e2e_to_infer']:.3f}", file=sys.stderr)
    sustained = bench_sustained(model_dir, args.sizes[0], args.rate, args.sustained_seconds, args.threads) \
        if args.rate > 0 else None
    report = {"model": str(model_dir) if args.model else "random resnet18 at 192x640", "threads": args.threads,
              "frames": args.frames, "goal_ratio": 1.15, "results": results, "sustained": sustained}
    print(json.dumps(report, indent=2))
    print()
    print(table(results))
    print("medians in ms; e2e/inf = median end-to-end / median inference (goal <= 1.15)")
    if sustained:
        print(f"sustained {sustained['rate_hz']:.1f} Hz for {sustained['seconds']:.0f} s at {sustained['size'][1]}x"
              f"{sustained['size'][0]}: {sustained['published']} published, {sustained['dropped']} dropped of "
              f"{sustained['received']}; node latency (receive -> publish) p50 {sustained['latency_p50_ms']:.1f} ms = "
              f"{sustained['ratio_latency_to_infer']:.2f}x inference p50 {sustained['inference_p50_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
