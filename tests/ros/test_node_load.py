"""Load: input faster than the backend; the node keeps no backlog, memory and latency stay flat."""
from __future__ import annotations

import time

import numpy as np

from .conftest import image_msg, info_msg, rss_bytes, send_until, start


def test_30hz_input_faster_than_backend_keeps_no_backlog(ros, large_model_dir):
    from sensor_msgs.msg import Image

    h, w = 192, 640
    node, pub_img, pub_info = start(ros, large_model_dir, threads=1)
    depth_out = ros.collect(Image, "depth/image")
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    info = info_msg(h, w)
    send_until(ros, pub_img, pub_info, image_msg(rgb, 0), depth_out, info=info)
    ros.wait_for(lambda: not node.pending(), what="warm-up frames done")
    stats = node.stats
    base_received, base_published, base_dropped = stats.received, stats.published, stats.dropped
    pub_info.publish(info)

    sent, duration, period = 0, 4.0, 1.0 / 30.0
    rss_samples, latency_by_second = [], []
    start_t = time.monotonic()
    next_t = start_t
    while time.monotonic() - start_t < duration:
        msg = image_msg(rgb, 1000 + sent)
        pub_img.publish(msg)
        sent += 1
        next_t += period
        elapsed = time.monotonic() - start_t
        if len(rss_samples) < int(elapsed) + 1:
            rss_samples.append(rss_bytes())
            latency_by_second.append(list(stats.latency.values)[-5:])
        time.sleep(max(0.0, next_t - time.monotonic()))
    # DDS may discard frames in its own bounded queues (qos_depth) before the node sees them; the
    # node's promise is about frames it received. Wait until those stop arriving and are all done.
    ros.wait_for(lambda: depth_out[-1].header.stamp.sec >= 1000 + sent - 6, timeout=10.0, what="one of the last frames")
    ros.wait_for(lambda: not node.pending(), timeout=10.0, what="the last frame processed")

    received = stats.received - base_received
    published = stats.published - base_published
    dropped = stats.dropped - base_dropped
    assert sent * 0.5 <= received <= sent
    assert published + dropped == received, (published, dropped, received)  # nothing lost, nothing queued
    assert dropped > 0, "the backend kept up with 30 Hz; the test needs a slower one"
    assert published >= 3
    # Published frames are the newest ones: stamps strictly increase and the last sent frame is among them.
    # (The last published message may still be on its way to this subscriber: wait for all of them.)
    ros.wait_for(lambda: sum(m.header.stamp.sec >= 1000 for m in depth_out) >= published, timeout=5.0,
                 what="every published frame delivered")
    stamps = [m.header.stamp.sec for m in depth_out if m.header.stamp.sec >= 1000]
    assert stamps == sorted(set(stamps)) and len(stamps) == published
    # Latency: a frame waits at most for the one in progress, then runs itself; with a queue it
    # would wait for every frame ahead of it and grow without bound. latency/inference are recorded
    # together per published frame, so they line up.
    latency = np.asarray(list(stats.latency.values)[-published:])
    inference = np.asarray(list(stats.inference.values)[-published:])
    bound = 1.5 * (inference[1:] + inference[:-1]) + 0.3
    # A busy CI machine can stall the process for a moment and push a frame or two over the bound;
    # a queue instead pushes every later frame over it, further each time. So: most frames within the
    # bound, and the last ones too (no growth by the end of the run).
    within = latency[1:] < bound
    pairs = list(zip(latency[1:].round(3), bound.round(3)))
    assert within.mean() >= 0.75, pairs
    assert np.median(latency[-5:]) < np.median(bound[-5:]), pairs
    # Memory: flat after the first second (a queue of 192x640 frames would grow ~370 KB per frame).
    growth = rss_samples[-1] - rss_samples[1]
    assert growth < 30 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB under load"
    values = node.diagnostic_values()
    assert int(values["frames_dropped"]) == stats.dropped and float(values["input_rate_hz"]) > 15.0
