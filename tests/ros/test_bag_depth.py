"""mcdepth-bag-depth over real rosbag2 files written with rosbags into tmp_path."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mcdepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from mcdepth_ros.bag_depth import main
from mcdepth_ros.contract import load_contract
from mcdepth_ros.pipeline import DepthPipeline

from .conftest import IMG_H, IMG_W, MODEL_H, MODEL_W, make_constant_model_dir


N_FRAMES = 4


def frames():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8) for _ in range(N_FRAMES)]


def write_bag(path, compressed: bool = False, with_info: bool = True, info_after: bool = False):
    """A rosbag2 with /cam/image_raw (Image rgb8, or CompressedImage png) and /cam/camera_info
    (same header stamp as its image; recorded 1 us before it, or after it with ``info_after``)."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types

    def header(i):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=100 + i, nanosec=5), frame_id="cam")

    k = np.array([100.0, 0, IMG_W / 2, 0, 100.0, IMG_H / 2, 0, 0, 1])
    with Writer(path, version=8) as w:
        img_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
        c_img = w.add_connection(topic, img_type, typestore=ts)
        c_info = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts) if with_info else None
        for i, rgb in enumerate(frames()):
            t = (100 + i) * 10**9 + 5
            if c_info is not None:
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=header(i), height=IMG_H, width=IMG_W, distortion_model="plumb_bob", d=np.zeros(5), k=k,
                    r=np.eye(3).ravel(), p=np.concatenate([k.reshape(3, 3), np.zeros((3, 1))], 1).ravel(),
                    binning_x=0, binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                if not info_after:
                    w.write(c_info, t - 1000, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            if compressed:
                png = cv2.imencode(".png", rgb[..., ::-1])[1].ravel()
                msg = T[img_type](header=header(i), format="png", data=png.astype(np.uint8))
            else:
                msg = T[img_type](header=header(i), height=IMG_H, width=IMG_W, encoding="rgb8", is_bigendian=0,
                                  step=IMG_W * 3, data=rgb.reshape(-1))
            w.write(c_img, t, ts.serialize_cdr(msg, img_type))
            if c_info is not None and info_after:
                w.write(c_info, t + 1000, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    return path


def write_ros1_bag(path):
    """The same frames as a ROS 1 bag (upper-case CameraInfo fields, headers with seq)."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    T = ts.types
    k = np.array([100.0, 0, IMG_W / 2, 0, 100.0, IMG_H / 2, 0, 0, 1])
    with Writer(path) as w:
        c_img = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        c_info = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i, rgb in enumerate(frames()):
            header = T["std_msgs/msg/Header"](seq=i, stamp=T["builtin_interfaces/msg/Time"](sec=100 + i, nanosec=5), frame_id="cam")
            info = T["sensor_msgs/msg/CameraInfo"](
                header=header, height=IMG_H, width=IMG_W, distortion_model="plumb_bob", D=np.zeros(5), K=k,
                R=np.eye(3).ravel(), P=np.concatenate([k.reshape(3, 3), np.zeros((3, 1))], 1).ravel(), binning_x=0,
                binning_y=0, roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            t = (100 + i) * 10**9 + 5
            w.write(c_info, t - 1000, ts.serialize_ros1(info, "sensor_msgs/msg/CameraInfo"))
            img = T["sensor_msgs/msg/Image"](header=header, height=IMG_H, width=IMG_W, encoding="rgb8", is_bigendian=0,
                                             step=IMG_W * 3, data=rgb.reshape(-1))
            w.write(c_img, t, ts.serialize_ros1(img, "sensor_msgs/msg/Image"))
    return path


def read_bag(path):
    from rosbags.highlevel import AnyReader

    out = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


@pytest.mark.parametrize("ros_version", [2, 1])
def test_bag_tool_writes_depth_matching_the_backend(tmp_path, model_dir, capsys, ros_version):
    in_bag = write_bag(tmp_path / "in") if ros_version == 2 else write_ros1_bag(tmp_path / "in.bag")
    out_bag = tmp_path / "out"
    rc = main([str(in_bag), str(out_bag), "--model", str(model_dir), "--backend", "onnxruntime", "--colored", "--no-progress"])
    assert rc == 0
    topics = read_bag(out_bag)
    assert set(topics) == {"/cam/depth/image", "/cam/depth/camera_info", "/cam/depth/colored"}
    depth = topics["/cam/depth/image"]
    assert len(depth) == N_FRAMES and len(topics["/cam/depth/camera_info"]) == N_FRAMES
    contract = load_contract(model_dir)
    pipeline = DepthPipeline(contract, OnnxRuntimeBackend(contract, device="cpu"))
    for i, ((t, msg), rgb) in enumerate(zip(depth, frames())):
        assert t == (100 + i) * 10**9 + 5 and msg.header.stamp.sec == 100 + i and msg.header.stamp.nanosec == 5
        assert msg.header.frame_id == "cam" and msg.encoding == "32FC1" and (msg.height, msg.width) == (IMG_H, IMG_W)
        got = np.frombuffer(msg.data.tobytes(), np.float32).reshape(IMG_H, IMG_W)
        np.testing.assert_allclose(got, pipeline.run(rgb).depth, rtol=1e-5, atol=1e-5)
    info = topics["/cam/depth/camera_info"][0][1]
    assert (info.height, info.width) == (IMG_H, IMG_W) and info.k[0] == 100.0
    assert topics["/cam/depth/colored"][0][1].encoding == "bgr8"
    out = capsys.readouterr().out
    assert f"{N_FRAMES}/{N_FRAMES} images" in out and "backend: onnxruntime" in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # the temporary folder is gone


def test_bag_tool_compressed_input_model_resolution_and_limits(tmp_path, model_dir):
    in_bag = write_bag(tmp_path / "in", compressed=True, with_info=False)
    out_bag = tmp_path / "out"
    rc = main([str(in_bag), str(out_bag), "--model", str(model_dir), "--backend", "onnxruntime",
               "--output-resolution", "model", "--max-frames", "2", "--prefix", "/depth_test", "--no-progress"])
    assert rc == 0
    topics = read_bag(out_bag)
    assert set(topics) == {"/depth_test/image"}  # no camera_info in, none out
    assert len(topics["/depth_test/image"]) == 2
    assert (topics["/depth_test/image"][0][1].height, topics["/depth_test/image"][0][1].width) == (64, 192)
    # The output exists: refuse to overwrite it silently.
    assert main([str(in_bag), str(out_bag), "--model", str(model_dir), "--no-progress"]) == 2


def test_bag_tool_clear_errors(tmp_path, model_dir, capsys):
    in_bag = write_bag(tmp_path / "in")
    assert main([str(in_bag), str(tmp_path / "o1"), "--model", str(model_dir), "--image-topic", "/nope", "--no-progress"]) == 2
    assert "--image-topic /nope is not a Image/CompressedImage topic of the bag (it has: /cam/image_raw)" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(tmp_path / "o2"), "--model", str(model_dir)]) == 2
    assert "IN_BAG: no such bag" in capsys.readouterr().err
    assert main([str(in_bag), str(tmp_path / "o3"), "--model", str(tmp_path)]) == 2
    assert "lacks model.json, model.onnx" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 8, storage_identifier: sqlite3, relative_file_paths: [x.db3]}\n")
    assert main([str(broken), str(tmp_path / "o4"), "--model", str(model_dir), "--no-progress"]) == 2
    assert "cannot read IN_BAG" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o4").exists()


def test_bag_tool_pairs_camera_info_by_stamp_when_the_image_comes_first(tmp_path, model_dir):
    in_bag = write_bag(tmp_path / "in", info_after=True)
    out_bag = tmp_path / "out"
    assert main([str(in_bag), str(out_bag), "--model", str(model_dir), "--backend", "onnxruntime", "--no-progress"]) == 0
    infos = read_bag(out_bag)["/cam/depth/camera_info"]
    assert [info.header.stamp.sec for _, info in infos] == [100 + i for i in range(N_FRAMES)]  # the first one too


def test_bag_tool_camera_height_says_when_no_ground_fit_is_accepted(tmp_path, capsys):
    # A model that sees a wall 10 units away everywhere: no near-horizontal plane, every fit rejected.
    wall = make_constant_model_dir(tmp_path / "wall", np.full((MODEL_H, MODEL_W), 10.0, np.float32))
    in_bag = write_bag(tmp_path / "in")
    assert main([str(in_bag), str(tmp_path / "out"), "--model", str(wall), "--backend", "onnxruntime",
                 "--scale-mode", "camera_height", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"scale camera_height, factor 1 (ground fits 0 accepted, {N_FRAMES} rejected, last inlier fraction n/a" in out
    assert "WARNING: " in out and "no ground fit accepted" in out
    # Relative mode prints its factor too.
    assert main([str(in_bag), str(tmp_path / "out2"), "--model", str(wall), "--backend", "onnxruntime",
                 "--no-progress"]) == 0
    assert "scale relative, factor 1" in capsys.readouterr().out


def test_bag_tool_camera_height_without_camera_info_writes_nothing_and_says_why(tmp_path, model_dir, capsys):
    in_bag = write_bag(tmp_path / "in", with_info=False)
    rc = main([str(in_bag), str(tmp_path / "out"), "--model", str(model_dir), "--backend", "onnxruntime",
               "--scale-mode", "camera_height", "--no-progress"])
    assert rc == 1  # nothing written
    out = capsys.readouterr().out
    assert f"WARNING: {N_FRAMES} images not written: scale_mode camera_height needs intrinsics and the bag has no camera_info topic" in out
    assert f"{N_FRAMES} of {N_FRAMES} images without a matching camera_info" in out


def test_bag_tool_run_takes_options_not_an_argparse_namespace(tmp_path, model_dir):
    from mcdepth_ros.bag_depth import BagDepthOptions, run

    summary = run(BagDepthOptions(in_bag=str(write_bag(tmp_path / "in")), out_bag=str(tmp_path / "out"),
                                  model=str(model_dir), backend="onnxruntime", no_progress=True), log=lambda m: None)
    assert summary["depth_written"] == N_FRAMES and summary["camera_info_written"] == N_FRAMES
    assert summary["scale_mode"] == "relative" and summary["ground_fits_used"] == 0 and summary["warnings"] == []
