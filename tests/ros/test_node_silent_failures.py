"""What used to fail silently now says so, over real rclpy: camera_info missing for metric scale or
points, a broken model.onnx under backend auto, frames lost upstream, integers for doubles."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter

from mcdepth_ros.backends import ModelLoadError
from mcdepth_ros.contract import ContractError
from mcdepth_ros.depth_node import DepthNode

from .conftest import IMG_H, IMG_W, image_msg, info_msg, send_until, start


def _diag_values(diag) -> dict[str, str]:
    return {kv.key: kv.value for kv in diag.status[0].values}


def _publish_images_only(ros, pub_img, until, timeout=15.0, stamp0=1):
    """Publish images (never a camera_info) until ``until()`` holds."""
    end, i = time.monotonic() + timeout, 0
    while not until() and time.monotonic() < end:
        pub_img.publish(image_msg(np.full((IMG_H, IMG_W, 3), 90, np.uint8), stamp0 + i))
        i += 1
        time.sleep(0.1)
    assert until(), f"condition not met in {timeout} s"


def test_camera_height_without_camera_info_holds_depth_and_warns(ros, model_dir, capfd):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from sensor_msgs.msg import Image

    node, pub_img, pub_info = start(ros, model_dir, scale_mode="camera_height", error_log_period=60.0)
    depth_out = ros.collect(Image, "depth/image")
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    _publish_images_only(ros, pub_img, lambda: node.stats.held["no_camera_info"] >= 3)
    ros.wait_for(lambda: any(d.status[0].level == DiagnosticStatus.WARN for d in diags), what="a WARN diagnostic")
    time.sleep(0.3)
    assert depth_out == [] and node.stats.published == 0  # model units are never published as metres
    warn = next(d.status[0] for d in diags if d.status[0].level == DiagnosticStatus.WARN)
    assert "needs camera_info" in warn.message and "no camera_info has arrived on /camera_info" in warn.message
    assert int(_diag_values(diags[-1])["frames_held_no_camera_info"]) >= 3
    err = capfd.readouterr().err
    # Rate-limited: one line for several held frames, naming the topic it waits on.
    assert err.count("depth not published: scale_mode camera_height needs the camera's intrinsics") == 1, err
    assert "no camera_info has arrived on /camera_info" in err
    # Once camera_info comes, depth flows.
    send_until(ros, pub_img, pub_info, image_msg(np.full((IMG_H, IMG_W, 3), 90, np.uint8), 50), depth_out)
    assert depth_out[-1].encoding == "32FC1"


def test_publish_points_without_camera_info_warns(ros, model_dir, capfd):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from sensor_msgs.msg import Image, PointCloud2

    node, pub_img, _ = start(ros, model_dir, publish_points=True, error_log_period=60.0)
    depth_out = ros.collect(Image, "depth/image")
    points = ros.collect(PointCloud2, "depth/points")
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    _publish_images_only(ros, pub_img, lambda: len(depth_out) >= 2 and node.stats.skipped["points_no_camera_info"] >= 2)
    ros.wait_for(lambda: any(d.status[0].level == DiagnosticStatus.WARN for d in diags), what="a WARN diagnostic")
    assert points == []  # depth is published (relative scale needs no intrinsics), points cannot be
    warn = next(d.status[0] for d in diags if d.status[0].level == DiagnosticStatus.WARN)
    assert "depth/points not published" in warn.message and "/camera_info" in warn.message
    err = capfd.readouterr().err
    assert err.count("depth/points not published: no camera_info has arrived on /camera_info") == 1, err


@pytest.fixture
def corrupt_model_dir(model_dir, tmp_path):
    """A copy of the exported model folder with model.onnx cut in half."""
    broken = tmp_path / "broken_model"
    shutil.copytree(model_dir, broken)
    onnx = broken / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    return broken


def test_truncated_model_with_recorded_hash_says_truncated_or_modified(ros, corrupt_model_dir):
    with pytest.raises(ContractError, match=r"model\.onnx: SHA-256 .* differs .*truncated or modified"):
        DepthNode(parameter_overrides=[Parameter("model_dir", value=str(corrupt_model_dir))], context=ros.context)


def test_corrupt_model_with_backend_auto_is_an_error_not_a_fallback_to_torch(ros, corrupt_model_dir, capfd):
    meta = json.loads((corrupt_model_dir / "model.json").read_text())
    # The torch fallback the old code took is really there: the checkpoint model.json names exists.
    assert (corrupt_model_dir / meta["source"]["checkpoint"]).is_file()
    meta["onnx"]["sha256"] = ""  # no hash to catch it: the backend must
    (corrupt_model_dir / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r"onnxruntime cannot load .*model\.onnx.*not falling back"):
        DepthNode(parameter_overrides=[Parameter("model_dir", value=str(corrupt_model_dir)),
                                       Parameter("backend", value="auto")], context=ros.context)
    err = capfd.readouterr().err
    assert "cannot start" in err and "torch (" not in err


def test_frames_lost_upstream_are_counted_from_stamp_gaps(ros, model_dir):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from sensor_msgs.msg import Image

    node, pub_img, pub_info = start(ros, model_dir)
    depth_out = ros.collect(Image, "depth/image")
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    rgb = np.full((IMG_H, IMG_W, 3), 90, np.uint8)
    send_until(ros, pub_img, pub_info, image_msg(rgb, 1), depth_out)  # discovery done, stamp 1 s
    base = node.stats.received
    # A 10 Hz camera (stamps 0.1 s apart) from which every fourth frame after the eighth never arrives.
    sent = 0
    for i in range(50):
        if i >= 8 and i % 4 == 3:
            continue
        msg = image_msg(rgb, 10)
        msg.header.stamp.nanosec = 0
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(10 * 10**9 + i * 10**8, 10**9)
        pub_img.publish(msg)
        sent += 1
        time.sleep(0.04)
    ros.wait_for(lambda: node.stats.received - base == sent, what=f"all {sent} sent frames received")
    assert sent == 40 and node.stats.lost_upstream == 10
    values = node.diagnostic_values()
    assert values["frames_lost_upstream"] == "10" and float(values["input_period_ms"]) == pytest.approx(100.0, abs=1.0)
    ros.wait_for(lambda: any(d.status[0].level == DiagnosticStatus.WARN and "lost before reaching the node" in
                             d.status[0].message for d in diags), what="a WARN about lost frames")


def test_integer_for_a_double_parameter_is_accepted(ros, model_dir):
    node = ros.add(DepthNode(cli_args=["--ros-args", "-p", "camera_height:=2", "-p", "colormap_max:=40"],
                             parameter_overrides=[Parameter("model_dir", value=str(model_dir)),
                                                  Parameter("backend", value="onnxruntime")], context=ros.context))
    assert node.params["camera_height"] == 2.0 and isinstance(node.params["camera_height"], float)
    assert node.scaler.camera_height == 2.0 and node.params["colormap_max"] == 40.0
    assert node.set_parameters([Parameter("camera_height", value=3)])[0].successful
    assert node.scaler.camera_height == 3.0
    result = node.set_parameters([Parameter("camera_height", value=20)])[0]
    assert not result.successful and "camera_height: 20.0 is outside 0.05..10.0" in result.reason
    result = node.set_parameters([Parameter("camera_height", value="high")])[0]
    assert not result.successful and "camera_height: expected a number" in result.reason
    with pytest.raises(ValueError, match="camera_height: 20.0 is outside"):
        DepthNode(cli_args=["--ros-args", "-p", "camera_height:=20"],
                  parameter_overrides=[Parameter("model_dir", value=str(model_dir))], context=ros.context)
