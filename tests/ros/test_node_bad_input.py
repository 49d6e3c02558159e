"""Bad frames are logged (rate-limited), counted in diagnostics, and never stop the node."""
from __future__ import annotations

import time

import cv2
import numpy as np
from rclpy.parameter import Parameter

from .conftest import IMG_H, IMG_W, image_msg, info_msg, send_until, start


def _wait_count(ros, getter, target, what):
    ros.wait_for(lambda: getter() >= target, timeout=10.0, what=what)


def test_bad_frames_are_counted_and_the_next_good_frame_is_served(ros, model_dir, capfd):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    node, pub_img, pub_info = start(ros, model_dir, error_log_period=60.0)
    depth_out = ros.collect(Image, "depth/image")
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    good = image_msg(np.full((IMG_H, IMG_W, 3), 90, np.uint8), 1)
    send_until(ros, pub_img, pub_info, good, depth_out)
    stats = node.stats

    # Unsupported encoding, three times: counted three times, logged once (rate-limited).
    bad = image_msg(np.zeros((IMG_H, IMG_W, 3), np.uint8), 2)
    bad.encoding = "32FC3"
    for n in range(1, 4):
        pub_img.publish(bad)
        _wait_count(ros, lambda: stats.errors["conversion"], n, f"conversion error {n}")
    # Zero-size image.
    empty = image_msg(np.zeros((0, 0, 3), np.uint8), 3)
    pub_img.publish(empty)
    _wait_count(ros, lambda: stats.errors["conversion"], 4, "zero-size error")
    # camera_info of another size than the image.
    pub_info.publish(info_msg(h=IMG_H * 2, w=IMG_W * 2))
    time.sleep(0.3)
    pub_img.publish(good)
    _wait_count(ros, lambda: stats.errors["camera_info"], 1, "camera_info mismatch")

    # The next good frame is served.
    published = stats.published
    pub_info.publish(info_msg())
    time.sleep(0.3)
    good.header.stamp.sec = 99
    pub_img.publish(good)
    ros.wait_for(lambda: stats.published > published and depth_out[-1].header.stamp.sec == 99, what="good frame after bad ones")
    ros.wait_for(lambda: any(any(kv.key == "errors_camera_info" for kv in d.status[0].values) for d in diags),
                 what="diagnostics with the errors")
    values = {kv.key: kv.value for kv in diags[-1].status[0].values}
    assert values["errors_conversion"] == "4" and values["errors_camera_info"] == "1"
    assert values["errors_total"] == "5" and values["backend"].startswith("onnxruntime")
    assert "32FC3" in values["last_error"] or "camera_info" in values["last_error"]
    err = capfd.readouterr().err
    # Three bad encodings and a zero-size image: one log line for the kind "conversion".
    assert err.count("frame dropped (conversion)") == 1 and "is not supported" in err, err
    assert "camera_info is 320x96 but the image is 160x48" in err


def test_corrupt_compressed_image_then_a_good_one(ros, model_dir):
    from sensor_msgs.msg import CompressedImage, Image

    node, _, pub_info = start(ros, model_dir, image_transport="compressed")
    pub = ros.tester.create_publisher(CompressedImage, "image/compressed", 10)
    depth_out = ros.collect(Image, "depth/image")
    rgb = np.random.default_rng(0).integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1])
    assert ok
    good = CompressedImage(format="jpeg", data=jpeg.tobytes())
    good.header.frame_id = "cam"
    send_until(ros, pub, pub_info, good, depth_out)
    assert (depth_out[0].height, depth_out[0].width) == (IMG_H, IMG_W)
    corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg" * 10)
    pub.publish(corrupt)
    ros.wait_for(lambda: node.stats.errors["conversion"] == 1, what="decode error")
    assert "could not be decoded" in node.stats.last_error
    n = len(depth_out)
    pub.publish(good)
    ros.wait_for(lambda: len(depth_out) > n, what="good frame after a corrupt one")


def test_nan_model_output_is_an_error_not_a_publish(ros, nan_model_dir):
    from sensor_msgs.msg import Image

    node, pub_img, pub_info = start(ros, nan_model_dir)
    depth_out = ros.collect(Image, "depth/image")
    good = image_msg(np.full((IMG_H, IMG_W, 3), 90, np.uint8), 1)
    end = time.monotonic() + 15
    while node.stats.errors["inference"] < 2 and time.monotonic() < end:
        pub_info.publish(info_msg())
        pub_img.publish(good)
        time.sleep(0.2)
    assert node.stats.errors["inference"] >= 2  # still running after the first one
    assert "no finite positive depth" in node.stats.last_error
    assert node.stats.published == 0 and depth_out == []
    assert node.diagnostic_values()["errors_inference"] == str(node.stats.errors["inference"])


def test_unknown_backend_and_bad_choice_fail_at_start(ros, model_dir):
    import pytest

    from mcdepth_ros.depth_node import DepthNode

    with pytest.raises(ValueError, match="scale_mode"):
        DepthNode(parameter_overrides=[Parameter("model_dir", value=str(model_dir)),
                                       Parameter("scale_mode", value="guess")], context=ros.context)


def test_node_marks_saturated_and_impossible_depth_invalid_with_nan(ros, tmp_path):
    """REP-118 NaN for what the model cannot know: the depth head saturated at model.json's depth_range
    (sky at max, 100), at min (0.1), and non-finite or non-positive values; the rest is published."""
    from sensor_msgs.msg import Image

    from .conftest import MODEL_H, MODEL_W, make_constant_model_dir

    depth = np.full((MODEL_H, MODEL_W), 7.5, np.float32)
    depth[:10] = 100.0                 # sky: the sigmoid at its far end
    depth[10:12] = 99.99               # within 0.1% of max: saturated too
    depth[12:14] = 99.0                # far, but a depth
    depth[20, :5] = 0.1                # at min
    depth[21, :5] = np.nan
    depth[22, :5] = -1.0
    node, pub_img, pub_info = start(ros, make_constant_model_dir(tmp_path / "m", depth), output_resolution="model")
    out = ros.collect(Image, "depth/image")
    send_until(ros, pub_img, pub_info, image_msg(np.zeros((IMG_H, IMG_W, 3), np.uint8), 3), out)
    got = np.frombuffer(bytes(out[0].data), np.float32).reshape(MODEL_H, MODEL_W)
    invalid = np.zeros_like(depth, bool)
    invalid[:12] = True
    invalid[20:23, :5] = True
    np.testing.assert_array_equal(np.isnan(got), invalid)
    np.testing.assert_allclose(got[~invalid], depth[~invalid])
