"""Rosbag input on real bag files written with rosbags into tmp_path (rosbag2 sqlite3/mcap, rosbag1)."""
from __future__ import annotations

import numpy as np
import pytest

from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.rosbag import (BagError, ExtractSettings, UnsupportedEncoding, decode_image, extract_bag, list_topics,
                                       write_image_bag)
from mcdepth_train.data.synthetic import SceneParams, render_sequence

H, W = 64, 192
STAMP0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def seq():
    return render_sequence(SceneParams(height=H, width=W, num_frames=6), seed=7)


def _frames(seq, dt_ns=100_000_000):
    return [(STAMP0 + i * dt_ns, f.image) for i, f in enumerate(seq.frames)]


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", True)])
def test_bag_round_trip_through_build_dataset(tmp_path, seq, storage, compressed):
    bag = tmp_path / "bag"
    assert write_image_bag(bag, _frames(seq), seq.K, storage=storage, compressed=compressed) == 6
    assert list_topics(bag) == {"/camera/image_raw": "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image",
                                "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    cfg = load_config([], [f"data.dataset=rosbag", f"data.root={bag}", f"run.out_dir={tmp_path / 'run'}", f"data.height={H}",
                           f"data.width={W}", "data.num_scales=2", "run.progress=false"])
    train, val, test = (build_dataset(cfg, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (3, 1, 4)
    sample = test[1]
    # Lossless both ways (raw rgb8, PNG): the frames come back bit for bit, with the bag's K.
    np.testing.assert_allclose(sample[keys.color(0)].permute(1, 2, 0).numpy(), seq.frames[2].image / 255.0, atol=1e-6)
    np.testing.assert_allclose(sample[keys.intrinsics(0)].numpy(), seq.K, atol=1e-4)


def test_stride_tolerance_and_standstill(tmp_path, seq):
    bag = tmp_path / "bag"
    speeds = [5.0, 5.0, 0.0, 0.0, 5.0, 5.0]
    write_image_bag(bag, _frames(seq), seq.K, ego_speeds=speeds)
    s = extract_bag(bag, tmp_path / "a", ExtractSettings(frame_stride=2, motion_topic=""), progress=False)
    assert (s.kept, s.stride_dropped) == (3, 3)
    s = extract_bag(bag, tmp_path / "b", ExtractSettings(motion_topic="/odom", min_speed=1.0), progress=False)
    assert (s.kept, s.standstill_dropped) == (4, 2)
    # 'auto' finds the only Odometry topic by itself
    s = extract_bag(bag, tmp_path / "auto", ExtractSettings(min_speed=1.0), progress=False)
    assert (s.kept, s.standstill_dropped, s.motion_topic) == (4, 2, "/odom")
    assert "speed on /odom" in s.text()
    # Identical frames are dropped by the image-difference test.
    still = [(STAMP0 + i * 10**8, seq.frames[min(i, 2)].image) for i in range(6)]
    write_image_bag(tmp_path / "still", still, seq.K)
    s = extract_bag(tmp_path / "still", tmp_path / "c", ExtractSettings(min_image_change=0.5), progress=False)
    assert (s.kept, s.standstill_dropped) == (3, 3)
    # A second extraction with the same settings reuses the folder.
    assert extract_bag(tmp_path / "still", tmp_path / "c", ExtractSettings(min_image_change=0.5), progress=False).reused


def _write_raw_bag(path, messages, with_info=True, K=None):
    """rosbag2 with hand-made Image messages: [(stamp, encoding, h, w, step, bigendian, bytes)]."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from mcdepth_train.data.rosbag import camera_info_message

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    with Writer(path, version=9) as w:
        img = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        info = w.add_connection("/cam/info", "sensor_msgs/msg/CameraInfo", typestore=ts) if with_info else None
        for stamp, enc, h, wd, step, big, data in messages:
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="c")
            msg = T["sensor_msgs/msg/Image"](header=header, height=h, width=wd, encoding=enc, is_bigendian=big, step=step,
                                             data=np.frombuffer(bytes(data), np.uint8))
            w.write(img, stamp, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            if info is not None:
                # camera_info 5 ms later: inside the default 20 ms tolerance
                K = np.array([[50.0, 0, wd / 2], [0, 50.0, h / 2], [0, 0, 1]]) if K is None else K
                late = stamp + 5_000_000
                info_header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=late // 10**9, nanosec=late % 10**9), frame_id="c")
                w.write(info, late, ts.serialize_cdr(camera_info_message(ts, info_header, K, wd, h), "sensor_msgs/msg/CameraInfo"))


def test_unsupported_encodings_are_skipped_and_counted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    depth = np.ones((8, 8), np.uint16)
    msgs = [(STAMP0 + i * 10**8, "rgb8", 8, 8, 24, 0, rgb.tobytes()) for i in range(3)]
    msgs.insert(1, (STAMP0 + 5 * 10**7, "16UC1", 8, 8, 16, 0, depth.tobytes()))
    _write_raw_bag(tmp_path / "bag", msgs)
    s = extract_bag(tmp_path / "bag", tmp_path / "out", ExtractSettings("/cam/image", "/cam/info"), progress=False)
    assert s.kept == 3 and sum(s.unsupported.values()) == 1 and "16UC1" in s.text()


def test_missing_topic_lists_the_topics_that_exist(tmp_path, seq):
    write_image_bag(tmp_path / "bag", _frames(seq)[:2], seq.K)
    with pytest.raises(BagError, match=r"'/nope' not found; topics in the bag: /camera/camera_info .*/camera/image_raw"):
        extract_bag(tmp_path / "bag", tmp_path / "out", ExtractSettings(image_topic="/nope"), progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial*"))


def test_missing_camera_info_needs_intrinsics(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    _write_raw_bag(tmp_path / "bag", [(STAMP0 + i * 10**8, "rgb8", 8, 8, 24, 0, rgb.tobytes()) for i in range(3)], with_info=False)
    with pytest.raises(BagError, match="camera_info topic '/cam/info' not found and no intrinsics"):
        extract_bag(tmp_path / "bag", tmp_path / "out", ExtractSettings("/cam/image", "/cam/info"), progress=False)
    intr = {"fx": 10.0, "fy": 11.0, "cx": 4.0, "cy": 3.5}
    s = extract_bag(tmp_path / "bag", tmp_path / "out", ExtractSettings("/cam/image", "/cam/info", intrinsics=intr), progress=False)
    assert s.kept == 3
    assert "fx: 10.0" in (tmp_path / "out" / "intrinsics.yaml").read_text()


def test_unmatched_camera_info_beyond_tolerance(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    _write_raw_bag(tmp_path / "bag", [(STAMP0 + i * 10**8, "rgb8", 8, 8, 24, 0, rgb.tobytes()) for i in range(3)])
    with pytest.raises(BagError, match="no usable frame"):
        extract_bag(tmp_path / "bag", tmp_path / "out", ExtractSettings("/cam/image", "/cam/info", stamp_tolerance_s=0.001), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_a_clear_error(tmp_path, seq, storage):
    bag = tmp_path / "bag"
    write_image_bag(bag, _frames(seq), seq.K, storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(BagError, match=str(bag.name)):
        extract_bag(bag, tmp_path / "out", ExtractSettings(), progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial*"))


def test_missing_bag(tmp_path):
    with pytest.raises(BagError, match="not found"):
        extract_bag(tmp_path / "nothing", tmp_path / "out", ExtractSettings(), progress=False)


def test_rosbag1_is_read_too(tmp_path, seq):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    T = ts.types
    path = tmp_path / "drive.bag"
    with Writer(path) as w:
        img = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        info = w.add_connection("/cam/info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i, f in enumerate(seq.frames):
            stamp = STAMP0 + i * 10**8
            header = T["std_msgs/msg/Header"](seq=i, stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="c")
            bgr = np.ascontiguousarray(f.image[..., ::-1])
            msg = T["sensor_msgs/msg/Image"](header=header, height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3, data=bgr.reshape(-1))
            w.write(img, stamp, ts.serialize_ros1(msg, "sensor_msgs/msg/Image"))
            K = seq.K
            cinfo = T["sensor_msgs/msg/CameraInfo"](header=header, height=H, width=W, distortion_model="plumb_bob", D=np.zeros(5), K=K.reshape(-1),
                                                   R=np.eye(3).reshape(-1), P=np.concatenate([K, np.zeros((3, 1))], 1).reshape(-1), binning_x=0, binning_y=0,
                                                   roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            w.write(info, stamp, ts.serialize_ros1(cinfo, "sensor_msgs/msg/CameraInfo"))
    s = extract_bag(path, tmp_path / "out", ExtractSettings("/cam/image", "/cam/info"), progress=False)
    assert s.kept == 6
    import cv2

    back = cv2.imread(str(tmp_path / "out" / "000003.png"))[..., ::-1]
    assert np.array_equal(back, seq.frames[3].image)


def test_undistortion_from_camera_info(tmp_path, seq):
    D = [-0.2, 0.05, 0.0, 0.0, 0.0]
    write_image_bag(tmp_path / "bag", _frames(seq)[:3], seq.K, D=D)
    s = extract_bag(tmp_path / "bag", tmp_path / "u", ExtractSettings(), progress=False)
    import cv2

    out = cv2.imread(str(tmp_path / "u" / "000000.png"))[..., ::-1]
    assert not np.array_equal(out, seq.frames[0].image)  # remapped
    expected = cv2.undistort(seq.frames[0].image, seq.K, np.array(D))
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 2.0
    assert "distortion: []" in (tmp_path / "u" / "intrinsics.yaml").read_text()
    s = extract_bag(tmp_path / "bag", tmp_path / "d", ExtractSettings(undistort=False), progress=False)
    assert np.array_equal(cv2.imread(str(tmp_path / "d" / "000000.png"))[..., ::-1], seq.frames[0].image)


# ----------------------------------------------------------------------------- decoding
def test_decode_honours_step_padding_and_channel_order():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    assert np.array_equal(decode_image("rgb8", 2, 3, 12, 0, padded.tobytes()), rgb)
    bgr = np.zeros((2, 12), np.uint8)
    bgr[:, :9] = rgb[..., ::-1].reshape(2, 9)
    assert np.array_equal(decode_image("bgr8", 2, 3, 12, 0, bgr.tobytes()), rgb)
    mono = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    assert np.array_equal(decode_image("mono8", 2, 3, 3, 0, mono.tobytes())[..., 1], mono)


def test_decode_mono16_endianness():
    values = np.array([[0x1234, 0xFF00]], np.uint16)
    little = decode_image("mono16", 1, 2, 4, 0, values.astype("<u2").tobytes())
    big = decode_image("mono16", 1, 2, 4, 1, values.astype(">u2").tobytes())
    assert little[..., 0].tolist() == big[..., 0].tolist() == [[0x12, 0xFF]]


def test_decode_bayer_and_yuv422():
    rgb = np.full((4, 4, 3), (200, 100, 50), np.uint8)
    bayer = np.zeros((4, 4), np.uint8)  # RGGB mosaic of a flat colour
    bayer[0::2, 0::2], bayer[0::2, 1::2], bayer[1::2, 0::2], bayer[1::2, 1::2] = 200, 100, 100, 50
    out = decode_image("bayer_rggb8", 4, 4, 4, 0, bayer.tobytes())
    assert np.abs(out[1:3, 1:3].astype(int) - rgb[1:3, 1:3]).max() <= 2
    # BT.601 video range, as cameras send it (and OpenCV/cv_bridge decode it)
    r, g, b = (c / 255.0 for c in (200, 100, 50))
    y = round(16 + 65.481 * r + 128.553 * g + 24.966 * b)
    u = round(128 - 37.797 * r - 74.203 * g + 112.0 * b)
    v = round(128 + 112.0 * r - 93.786 * g - 18.214 * b)
    uyvy = np.tile(np.array([u, y, v, y], np.uint8), (4, 2))
    assert np.abs(decode_image("yuv422", 4, 4, 8, 0, uyvy.tobytes()).astype(int) - rgb).max() <= 3


def test_decode_rejects_depth_and_unknown_and_short_data():
    with pytest.raises(UnsupportedEncoding, match="16UC1"):
        decode_image("16UC1", 2, 2, 4, 0, bytes(8))
    with pytest.raises(UnsupportedEncoding, match="nv12"):
        decode_image("nv12", 2, 2, 2, 0, bytes(6))
    with pytest.raises(ValueError, match="expected height\\*step"):
        decode_image("rgb8", 2, 2, 6, 0, bytes(6))


def test_a_folder_of_bags_gives_one_sequence_per_bag(tmp_path, seq):
    bags = tmp_path / "bags"
    bags.mkdir()
    write_image_bag(bags / "morning", _frames(seq), seq.K)
    K2 = seq.K.copy()
    K2[0, 0] *= 1.1
    write_image_bag(bags / "evening", _frames(seq)[:4], K2, storage="mcap")
    cfg = load_config([], ["data.dataset=rosbag", f"data.root={bags}", f"run.out_dir={tmp_path / 'run'}", f"data.height={H}",
                           f"data.width={W}", "data.num_scales=2", "run.progress=false"])
    test = build_dataset(cfg, "test")
    assert [name for name, _ in test.sequences] == ["evening", "morning"]
    assert len(test) == 2 + 4
    # each bag keeps its own camera_info
    assert float(test[0][keys.intrinsics(0)][0, 0]) == pytest.approx(K2[0, 0], rel=1e-5)
    assert float(test[2][keys.intrinsics(0)][0, 0]) == pytest.approx(seq.K[0, 0], rel=1e-5)
    with pytest.raises(BagError, match="no bags inside"):
        build_dataset(load_config([], ["data.dataset=rosbag", f"data.root={tmp_path / 'run'}", f"run.out_dir={tmp_path / 'run2'}"]), "test")
