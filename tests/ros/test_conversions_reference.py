"""Our image decoder against an outside reference: rosbags-image (by the author of rosbags).

Real sensor_msgs messages built with rosbags' typestore. Where the two may differ by design:
rosbags-image turns 16-bit images into rgb8 (x 255/65535, truncated) while ours keeps 16 bits, so
those compare after the same scaling; it ignores ``step`` (row padding) and refuses ``8UC1``, which
is why the node keeps its own decoder (docs/ros.md, "Image encodings").
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from mcdepth_ros.conversions import ENCODINGS, compressed_to_rgb, image_to_rgb

rosbags_image = pytest.importorskip("rosbags.image", reason="rosbags-image is a test dependency (pip install rosbags-image)")

H, W = 6, 8
ENCODINGS_COMPARED = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", "mono8", "mono16", "8UC3",
                      "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "yuv422", "yuv422_yuy2")


def _types():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY).types


def image(encoding: str, bigendian: bool, pad: int = 0, seed: int = 0):
    """A rosbags sensor_msgs/Image of random pixels in ``encoding``, rows padded by ``pad`` bytes."""
    T = _types()
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, np.iinfo(dtype).max, (H, W * channels), dtype=np.uint64).astype(dtype)
    rows = pixels.astype(dtype.newbyteorder(">" if bigendian else "<")).view(np.uint8).reshape(H, -1)
    data = np.concatenate([rows, np.full((H, pad), 0xEE, np.uint8)], axis=1).reshape(-1)
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
    return T["sensor_msgs/msg/Image"](header=header, height=H, width=W, encoding=encoding, is_bigendian=int(bigendian),
                                      step=rows.shape[1] + pad, data=data)


def as_rgb8(rgb: np.ndarray) -> np.ndarray:
    """Ours at the reference's output type: 16-bit scaled like rosbags-image does it (x 255/65535, truncated)."""
    return np.multiply(rgb, 255.0 / 65535.0).astype(np.uint8) if rgb.dtype == np.uint16 else rgb


@pytest.mark.parametrize("bigendian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("encoding", ENCODINGS_COMPARED)
def test_unpadded_rows_agree_with_rosbags_image(encoding, bigendian):
    msg = image(encoding, bigendian)
    ours = image_to_rgb(msg)
    ref = rosbags_image.image_to_cvimage(msg, "rgb8")
    assert ours.shape == ref.shape == (H, W, 3)
    # 16-bit: the reference rounds its 16 -> 8 bit step differently in its float multiply, so within one 8-bit step.
    np.testing.assert_allclose(as_rgb8(ours).astype(int), ref.astype(int), atol=1 if ours.dtype == np.uint16 else 0)


@pytest.mark.parametrize("bigendian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("encoding", ("rgb8", "bgr16", "mono16", "bayer_grbg8", "yuv422"))
def test_padded_rows_are_read_by_step_where_the_reference_is_not(encoding, bigendian):
    padded, unpadded = image(encoding, bigendian, pad=6), image(encoding, bigendian)
    ours = image_to_rgb(padded)
    np.testing.assert_array_equal(ours, image_to_rgb(unpadded))  # padding skipped, same pixels
    # The reference reads the data as if rows were contiguous, so after the first row it is off.
    ref_unpadded = rosbags_image.image_to_cvimage(unpadded, "rgb8")
    ref_padded = rosbags_image.image_to_cvimage(padded, "rgb8")
    np.testing.assert_allclose(as_rgb8(ours).astype(int), ref_unpadded.astype(int), atol=1)
    assert not np.array_equal(ref_padded, ref_unpadded)


def test_8uc1_is_read_by_ours_and_refused_by_the_reference():
    msg = image("8UC1", sys.byteorder == "big")
    ours = image_to_rgb(msg)
    assert ours.shape == (H, W, 3) and (ours[..., 0] == ours[..., 2]).all()
    with pytest.raises(rosbags_image.ImageConversionError):
        rosbags_image.image_to_cvimage(msg, "rgb8")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_png_and_jpeg_agree_with_rosbags_image(fmt):
    T = _types()
    rgb = np.random.default_rng(2).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png" if fmt == "png" else ".jpg", rgb[..., ::-1])
    assert ok
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
    msg = T["sensor_msgs/msg/CompressedImage"](header=header, format=fmt, data=encoded.reshape(-1))
    ours = compressed_to_rgb(msg)
    np.testing.assert_array_equal(ours, rosbags_image.compressed_image_to_cvimage(msg, "rgb8"))
    if fmt == "png":
        np.testing.assert_array_equal(ours, rgb)  # lossless
