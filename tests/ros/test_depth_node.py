"""The node over real rclpy: round trip, bad input, parameters."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter

from mcdepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from mcdepth_ros.contract import ContractError, load_contract
from mcdepth_ros.depth_node import PARAMETER_NAMES, DepthNode
from mcdepth_ros.pipeline import DepthPipeline

from .conftest import IMG_H, IMG_W, MODEL_H, MODEL_W, image_msg, send_until, start


def test_round_trip_matches_backend(ros, model_dir):
    from sensor_msgs.msg import CameraInfo, Image

    node, pub_img, pub_info = start(ros, model_dir)
    depth_out = ros.collect(Image, "depth/image")
    info_out = ros.collect(CameraInfo, "depth/camera_info")
    rgb = np.random.default_rng(1).integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8)
    send_until(ros, pub_img, pub_info, image_msg(rgb, 42), depth_out, info_out)
    msg = depth_out[0]
    assert msg.header.stamp.sec == 42 and msg.header.stamp.nanosec == 123
    assert msg.header.frame_id == "cam_optical"
    assert msg.encoding == "32FC1" and (msg.height, msg.width) == (IMG_H, IMG_W) and msg.step == IMG_W * 4
    got = np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(IMG_H, IMG_W)
    contract = load_contract(model_dir)
    expected = DepthPipeline(contract, OnnxRuntimeBackend(contract, device="cpu")).run(rgb).depth
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(got).all() and (got >= 0.1 - 1e-4).all() and (got <= 100.0 + 1e-3).all()
    info = info_out[0]
    assert (info.height, info.width) == (IMG_H, IMG_W) and info.header.stamp.sec == 42
    assert info.k[0] == pytest.approx(100.0)


def test_model_resolution_scales_camera_info(ros, model_dir):
    from sensor_msgs.msg import CameraInfo, Image

    node, pub_img, pub_info = start(ros, model_dir, output_resolution="model", publish_colored=True,
                                    publish_points=True, point_stride=2, points_rgb=True)
    from sensor_msgs.msg import PointCloud2

    depth_out = ros.collect(Image, "depth/image")
    info_out = ros.collect(CameraInfo, "depth/camera_info")
    colored = ros.collect(Image, "depth/colored")
    points = ros.collect(PointCloud2, "depth/points")
    rgb = np.full((IMG_H, IMG_W, 3), 120, np.uint8)
    send_until(ros, pub_img, pub_info, image_msg(rgb, 7), depth_out, info_out, colored, points)
    assert (depth_out[0].height, depth_out[0].width) == (MODEL_H, MODEL_W)
    info = info_out[0]
    assert (info.height, info.width) == (MODEL_H, MODEL_W)
    assert info.k[0] == pytest.approx(100.0 * MODEL_W / IMG_W) and info.k[4] == pytest.approx(100.0 * MODEL_H / IMG_H)
    assert colored[0].encoding == "bgr8" and (colored[0].height, colored[0].width) == (MODEL_H, MODEL_W)
    assert points[0].width == (MODEL_H // 2) * (MODEL_W // 2)
    assert [f.name for f in points[0].fields] == ["x", "y", "z", "rgb"] and points[0].point_step == 16
    cloud = np.frombuffer(bytes(points[0].data), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    assert (cloud["rgb"] == (120 << 16 | 120 << 8 | 120)).all()  # the grey image, resized to the model size
    assert np.isfinite(cloud["z"]).all() and (cloud["z"] > 0).all()


def test_missing_model_files_are_named(ros, tmp_path):
    with pytest.raises(ContractError, match=r"model\.json, model\.onnx"):
        DepthNode(parameter_overrides=[Parameter("model_dir", value=str(tmp_path))], context=ros.context)


def test_parameters_have_descriptions_and_dynamic_ones_change(ros, model_dir):
    node, _, _ = start(ros, model_dir)
    for name in PARAMETER_NAMES:
        desc = node.describe_parameter(name)
        assert desc.description, name
    assert node.describe_parameter("point_stride").integer_range[0].to_value == 64
    assert node.set_parameters([Parameter("point_stride", value=8)])[0].successful
    assert node.params["point_stride"] == 8
    assert node.set_parameters([Parameter("scale_mode", value="fixed"), Parameter("scale_factor", value=2.5)])[0].successful
    assert node.scaler.mode == "fixed" and node.scaler.factor == 2.5
    assert node.diagnostic_values()["scale_factor"] == "2.5" and node.diagnostic_values()["scale_mode"] == "fixed"
    assert not node.set_parameters([Parameter("scale_mode", value="bogus")])[0].successful
    assert not node.set_parameters([Parameter("point_stride", value=1000)])[0].successful  # out of range
    assert not node.set_parameters([Parameter("backend", value="torch")])[0].successful  # read-only


def test_entry_point_exits_with_the_missing_files_named(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mcdepth_ros.depth_node", "--ros-args", "-p", f"model_dir:={tmp_path}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"model_dir {tmp_path} lacks model.json, model.onnx" in result.stderr


def test_startup_log_names_resolved_topics_and_the_backend_choice(ros, model_dir, capfd):
    node = ros.add(DepthNode(namespace="car", cli_args=["--ros-args", "-r", "image:=/camera/image_raw"],
                             parameter_overrides=[Parameter("model_dir", value=str(model_dir)),
                                                  Parameter("publish_colored", value=True)], context=ros.context))
    summary = node.startup_summary()
    assert "subscribes /camera/image_raw (raw) and /car/camera_info" in summary
    assert "/car/depth/image, /car/depth/camera_info, /car/depth/colored (on: publish_colored), " \
           "/car/depth/points (off: publish_points)" in summary
    assert "backend onnxruntime (CPUExecutionProvider) (auto: best available; skipped tensorrt: not installed)" in summary \
        or "tensorrt" in node.backend_reason
    assert summary in capfd.readouterr().err
