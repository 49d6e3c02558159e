"""Fixtures for the ROS node tests: tiny exported model folders and a real rclpy harness."""
from __future__ import annotations

import array
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# One DDS domain per test session, so engineers running tests at once do not hear each other.
os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_model_json(path: Path, height: int, width: int, input_name: str = "image", output_name: str = "depth",
                     kind: str = "depth", depth_range=(0.1, 100.0), policy: str = "relative", factor: float = 1.0) -> dict:
    """model.json exactly per docs/contract.md, beside an existing model.onnx."""
    meta = {
        "format": "mcdepth-model-v1",
        "input": {"name": input_name, "shape": [1, 3, height, width], "dtype": "float32",
                  "color_order": "rgb", "range": [0.0, 1.0],
                  "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "normalization_in_graph": True},
        "output": {"name": output_name, "shape": [1, 1, height, width], "kind": kind, "units": "relative"},
        "depth_range": list(depth_range),
        "scale": {"policy": policy, "factor": factor},
        "source": {"checkpoint": "", "checkpoint_sha256": "", "git_commit": "", "stage": "test"},
        "onnx": {"opset": 17, "sha256": _sha256(path / "model.onnx")},
        "int8": None,
    }
    (path / "model.json").write_text(json.dumps(meta, indent=2))
    return meta


def make_model_dir(path: Path, height: int, width: int) -> Path:
    """A model folder made by the real exporter: a seeded random-init resnet18 DepthNet checkpoint
    exported with ``mcdepth_train.export.onnx_export.export_onnx`` (opset 17, static HxW, model.json)."""
    import torch

    from mcdepth_train.config import config_to_dict, load_config
    from mcdepth_train.engine.checkpoint import save_checkpoint
    from mcdepth_train.export.onnx_export import export_onnx
    from mcdepth_train.networks.depth import DepthNet

    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = DepthNet("resnet18", min_depth=0.1, max_depth=100.0)
    checkpoint = path.parent / f"{path.name}_source.pt"
    save_checkpoint(checkpoint, stage="stage1", step=0, epoch=0, config=config_to_dict(load_config()), models={"depth": net})
    export_onnx(checkpoint, path, height, width)
    return path


def make_constant_model_dir(path: Path, depth: "np.ndarray") -> Path:
    """A model folder whose graph ignores the image and outputs ``depth`` [H,W] (NaN stays NaN).

    Built with onnx.helper as ``mean(image) * 0 + depth`` so the input is still wired in.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = depth.shape
    path.mkdir(parents=True, exist_ok=True)
    consts = [numpy_helper.from_array(np.zeros(1, np.float32), name="zero"),
              numpy_helper.from_array(depth.astype(np.float32).reshape(1, 1, height, width), name="const")]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1], keepdims=1),
         helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
         helper.make_node("Add", ["nothing", "const"], ["depth"])],
        "constant_depth",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, height, width])],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path / "model.onnx"))
    write_model_json(path, height, width)
    return path


def make_nan_model_dir(path: Path, height: int, width: int) -> Path:
    """A model folder whose graph outputs NaN everywhere."""
    return make_constant_model_dir(path, np.full((height, width), np.nan, np.float32))


MODEL_H, MODEL_W = 64, 192
IMG_H, IMG_W = 48, 160  # not the model's size: the node resizes in and out


def image_msg(rgb: np.ndarray, stamp_s: int, frame_id: str = "cam_optical", encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                step=rgb.shape[1] * 3, data=array.array("B", rgb.tobytes()))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = stamp_s, 123, frame_id
    return msg


def info_msg(h: int = IMG_H, w: int = IMG_W, frame_id: str = "cam_optical"):
    from sensor_msgs.msg import CameraInfo

    k = [100.0, 0.0, w / 2, 0.0, 100.0, h / 2, 0.0, 0.0, 1.0]
    info = CameraInfo(height=h, width=w, distortion_model="plumb_bob", d=[0.0] * 5, k=k,
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0])
    info.header.frame_id = frame_id
    return info


def start(ros, model_dir, **params):
    """A DepthNode on ``model_dir`` (ONNX Runtime, reliable input) in ``ros``, plus image/camera_info publishers."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image

    from mcdepth_ros.depth_node import DepthNode

    overrides = [Parameter("model_dir", value=str(model_dir)), Parameter("backend", value="onnxruntime"),
                 Parameter("qos_in", value="reliable"), Parameter("diagnostics_period", value=0.2),
                 Parameter("error_log_period", value=0.5)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = ros.add(DepthNode(parameter_overrides=overrides, context=ros.context))
    pub_img = ros.tester.create_publisher(Image, "image", 10)
    pub_info = ros.tester.create_publisher(CameraInfo, "camera_info", 10)
    return node, pub_img, pub_info


def send_until(ros, pub_img, pub_info, msg, *outputs, info=None, timeout=15.0):
    """Publish ``msg`` (after its camera_info) until every list in ``outputs`` holds a message
    (the first frames may go out before discovery has matched every subscription)."""
    import time

    end = time.monotonic() + timeout
    while not all(outputs) and time.monotonic() < end:
        pub_info.publish(info or info_msg())
        pub_img.publish(msg)
        time.sleep(0.2)
    assert all(outputs), f"received {[len(o) for o in outputs]} messages in {timeout} s"




@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model"), MODEL_H, MODEL_W)


@pytest.fixture(scope="session")
def nan_model_dir(tmp_path_factory) -> Path:
    return make_nan_model_dir(tmp_path_factory.mktemp("nan_model"), MODEL_H, MODEL_W)


class RosHarness:
    """The node under test and a test node in one executor, spinning in a background thread."""

    def __init__(self):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.tester = rclpy.create_node(f"tester_{os.getpid()}", context=self.context)
        self.executor.add_node(self.tester)
        self.nodes = [self.tester]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def collect(self, msg_type, topic: str, qos=10) -> list:
        got: list = []
        self.tester.create_subscription(msg_type, topic, got.append, qos)
        return got

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self):
        self._stop.set()
        self.thread.join(timeout=10.0)
        self.executor.shutdown(timeout_sec=5.0)  # waits for callbacks still running in its pool
        for node in self.nodes:
            node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


@pytest.fixture
def ros():
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="session")
def large_model_dir(tmp_path_factory) -> Path:
    """192x640, the vehicle's size: slow enough on this CPU that 30 Hz input outruns it."""
    return make_model_dir(tmp_path_factory.mktemp("model_large"), 192, 640)


def rss_bytes() -> int:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
