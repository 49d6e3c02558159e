"""scale_mode camera_height through the node: a known road seen from a known height comes out metric."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter

from .conftest import image_msg, info_msg, make_constant_model_dir, send_until, start


H, W, F, CY, HEIGHT_M, MODEL_UNIT_M = 64, 192, 60.0, 20, 1.5, 4.0


def road_depth() -> np.ndarray:
    """Metric depth of a flat road 1.5 m below the camera (fy=60, cy=20); far wall above the horizon."""
    v = np.arange(H, dtype=np.float64)[:, None].repeat(W, 1)
    with np.errstate(divide="ignore"):
        return np.where(v > CY + 1, HEIGHT_M * F / (v - CY), 80.0).astype(np.float32)


@pytest.fixture(scope="module")
def road_model_dir(tmp_path_factory):
    # The "network" predicts the road in units of 4 m: only the camera height can recover metres.
    return make_constant_model_dir(tmp_path_factory.mktemp("road"), road_depth() / MODEL_UNIT_M)


def test_camera_height_scale_makes_depth_metric(ros, road_model_dir):
    from sensor_msgs.msg import Image

    node, pub_img, pub_info = start(ros, road_model_dir, scale_mode="camera_height", camera_height=HEIGHT_M,
                                    scale_smoothing=0.0)
    out = ros.collect(Image, "depth/image")
    info = info_msg(H, W)
    info.k = [F, 0.0, W / 2, 0.0, F, CY, 0.0, 0.0, 1.0]
    send_until(ros, pub_img, pub_info, image_msg(np.zeros((H, W, 3), np.uint8), 5), out, info=info)
    # Under load the first image can overtake the first camera_info (it then goes out in model
    # units); a frame sent now, with camera_info known, must come out metric.
    out.clear()
    send_until(ros, pub_img, pub_info, image_msg(np.zeros((H, W, 3), np.uint8), 7), out, info=info)
    depth = np.frombuffer(bytes(out[-1].data), np.float32).reshape(H, W)
    truth = road_depth()
    np.testing.assert_allclose(depth[CY + 2:], truth[CY + 2:], rtol=0.02)
    values = node.diagnostic_values()
    assert values["scale_mode"] == "camera_height" and float(values["scale_factor"]) == pytest.approx(MODEL_UNIT_M, rel=0.02)
    assert int(values["ground_fits_used"]) >= 1
    # Dynamic switch back to relative: model units again.
    assert node.set_parameters([Parameter("scale_mode", value="relative")])[0].successful
    n = len(out)
    pub_img.publish(image_msg(np.zeros((H, W, 3), np.uint8), 6))
    ros.wait_for(lambda: len(out) > n, what="depth after switching to relative")
    rel = np.frombuffer(bytes(out[-1].data), np.float32).reshape(H, W)
    np.testing.assert_allclose(rel[CY + 2:], truth[CY + 2:] / MODEL_UNIT_M, rtol=1e-5)
