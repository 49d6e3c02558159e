"""How many camera-sized images reach a subscriber in another process over Fast DDS, and why not all.

    PYTHONPATH=. .venv/bin/python bench/dds_image_loss.py [--size 375x1242] [--rate 10] [--seconds 8]
        [--profile config/fastdds_large_images.xml] [--subscriber bare|node] [--json out.json]

A publisher process sends ``--rate`` Hz rgb8 images of ``--size`` for ``--seconds``; this process
subscribes (``bare``: a plain rclpy subscription; ``node``: the real depth_node running a random
resnet18 at 192x640 on every frame, so inference competes with receiving) and counts the frames
that arrived. Each case runs with the publisher and subscriber QoS given in the table (sensor_data
= best effort, reliable), with Fast DDS's defaults and with ``--profile`` (FASTRTPS_DEFAULT_PROFILES_FILE
for both processes). Prints a table and one JSON object. Not a test: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CASES = (("sensor_data", "sensor_data"), ("reliable", "reliable"), ("reliable", "sensor_data"))


def publish(size: tuple[int, int], rate: float, seconds: float, qos: str, depth: int) -> None:
    """The publisher process: ``rate`` Hz images with stamps 1/rate apart, starting when matched."""
    import array

    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from mcdepth_ros.depth_node import qos_profile

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, "image", qos_profile(qos, depth))
    h, w = size
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                data=array.array("B", np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()))
    end = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle
    n = int(seconds * rate)
    start = time.monotonic()
    for i in range(n):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(10**9 + int(i * 1e9 / rate), 10**9)
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    print(json.dumps({"sent": n}), flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def subscribe(args, pub_qos: str, sub_qos: str, profile: str | None, model_dir: Path | None) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from mcdepth_ros.depth_node import DepthNode, qos_profile

    env = dict(os.environ)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    if profile:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(profile).resolve())
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = env["FASTRTPS_DEFAULT_PROFILES_FILE"]
    else:
        os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    stamps: list[int] = []
    if args.subscriber == "node":
        node = DepthNode(parameter_overrides=[
            Parameter("model_dir", value=str(model_dir)), Parameter("backend", value="onnxruntime"),
            Parameter("threads", value=1), Parameter("qos_in", value=sub_qos), Parameter("qos_depth", value=args.depth)],
            context=context)
    else:
        node = rclpy.create_node("bench_sub", context=context)
        node.create_subscription(Image, "image", lambda m: stamps.append(m.header.stamp.nanosec),
                                 qos_profile(sub_qos, args.depth))
    executor.add_node(node)
    h, w = args.size
    proc = subprocess.Popen([sys.executable, __file__, "--role", "pub", "--size", f"{h}x{w}", "--rate", str(args.rate),
                             "--seconds", str(args.seconds), "--pub-qos", pub_qos, "--depth", str(args.depth)],
                            env=env, stdout=subprocess.PIPE, text=True)
    end = time.monotonic() + args.seconds + 30
    while proc.poll() is None and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    for _ in range(20):
        executor.spin_once(timeout_sec=0.05)
    out = proc.communicate(timeout=30)[0]
    sent = json.loads(out.strip().splitlines()[-1])["sent"]
    if args.subscriber == "node":
        received, lost_counted = node.stats.received, node.stats.lost_upstream
    else:
        received, lost_counted = len(stamps), None
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    return {"pub_qos": pub_qos, "sub_qos": sub_qos, "profile": profile or "Fast DDS defaults", "sent": sent,
            "received": received, "received_fraction": received / sent if sent else 0.0,
            "frames_lost_upstream_counted": lost_counted}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default="sub", choices=("sub", "pub"), help=argparse.SUPPRESS)
    p.add_argument("--pub-qos", default="sensor_data", help=argparse.SUPPRESS)
    p.add_argument("--size", default="375x1242", help="Image HxW.")
    p.add_argument("--rate", type=float, default=10.0, help="Publisher rate (Hz).")
    p.add_argument("--seconds", type=float, default=8.0, help="Publishing time per case.")
    p.add_argument("--depth", type=int, default=5, help="QoS history depth on both sides.")
    p.add_argument("--profile", default=str(REPO / "config" / "fastdds_large_images.xml"),
                   help="Fast DDS XML profile for the second run of each case ('' = defaults only).")
    p.add_argument("--subscriber", default="bare", choices=("bare", "node"))
    p.add_argument("--json", default="", help="Also write the results here.")
    args = p.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.role == "pub":
        publish(args.size, args.rate, args.seconds, args.pub_qos, args.depth)
        return 0
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    model_dir, tmp = None, None
    if args.subscriber == "node":
        from ros.conftest import make_model_dir

        tmp = tempfile.TemporaryDirectory(prefix="mcdepth_dds_")
        model_dir = make_model_dir(Path(tmp.name) / "model", 192, 640)
    rows = []
    for profile in [None] + ([args.profile] if args.profile else []):
        for pub_qos, sub_qos in CASES:
            rows.append(subscribe(args, pub_qos, sub_qos, profile, model_dir))
            print(f"  {rows[-1]}", file=sys.stderr)
    result = {"size": list(args.size), "rate_hz": args.rate, "seconds": args.seconds, "depth": args.depth,
              "subscriber": args.subscriber, "cases": rows}
    print(json.dumps(result, indent=2))
    print(f"\n{'profile':28s} {'pub qos':12s} {'sub qos':12s} {'sent':>5s} {'recv':>5s} {'recv %':>7s} {'lost counted':>12s}")
    for r in rows:
        name = Path(r["profile"]).name if r["profile"] != "Fast DDS defaults" else r["profile"]
        lost = "" if r["frames_lost_upstream_counted"] is None else str(r["frames_lost_upstream_counted"])
        print(f"{name:28s} {r['pub_qos']:12s} {r['sub_qos']:12s} {r['sent']:5d} {r['received']:5d} "
              f"{100 * r['received_fraction']:6.1f}% {lost:>12s}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
