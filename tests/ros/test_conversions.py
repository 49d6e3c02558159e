"""Image message <-> numpy conversions (pure numpy + OpenCV, cv_bridge semantics)."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mcdepth_ros.conversions import (
    ConversionError, compressed_to_rgb, image_to_numpy, image_to_rgb, numpy_to_image_fields,
)


def msg(array: np.ndarray, encoding: str, step: int | None = None, bigendian: bool = False, pad_byte: int = 0xAB):
    """A message-like object holding ``array`` with rows padded to ``step`` bytes."""
    h, w = array.shape[:2]
    row = array.reshape(h, -1)
    if bigendian:
        row = row.astype(row.dtype.newbyteorder(">"))
    row_bytes = row.view(np.uint8).reshape(h, -1)
    step = step or row_bytes.shape[1]
    data = np.full((h, step), pad_byte, np.uint8)
    data[:, : row_bytes.shape[1]] = row_bytes
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=step, data=data.tobytes())


RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


def test_rgb8_with_step_padding_ignores_the_padding():
    m = msg(RGB, "rgb8", step=5 * 3 + 7)
    np.testing.assert_array_equal(image_to_rgb(m), RGB)


def test_bgr_rgba_bgra_give_the_same_rgb():
    np.testing.assert_array_equal(image_to_rgb(msg(RGB[..., ::-1].copy(), "bgr8")), RGB)
    alpha = np.full(RGB.shape[:2] + (1,), 255, np.uint8)
    np.testing.assert_array_equal(image_to_rgb(msg(np.concatenate([RGB, alpha], 2), "rgba8")), RGB)
    np.testing.assert_array_equal(image_to_rgb(msg(np.concatenate([RGB[..., ::-1], alpha], 2), "bgra8")), RGB)


def test_mono16_big_endian_and_little_endian_read_the_same_values():
    mono = np.array([[0, 1, 256, 65535], [1000, 2, 3, 40000]], dtype=np.uint16)
    big = image_to_numpy(msg(mono, "mono16", bigendian=True, step=4 * 2 + 2))
    little = image_to_numpy(msg(mono, "mono16"))
    np.testing.assert_array_equal(big, mono)
    np.testing.assert_array_equal(little, mono)
    rgb = image_to_rgb(msg(mono, "mono16", bigendian=True))
    assert rgb.dtype == np.uint16 and rgb.shape == (2, 4, 3) and (rgb[..., 2] == mono).all()


def test_mono8_becomes_grey_rgb():
    mono = np.array([[0, 128], [255, 7]], np.uint8)
    rgb = image_to_rgb(msg(mono, "mono8"))
    assert (rgb == mono[..., None]).all() and rgb.shape == (2, 2, 3)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_recovers_a_flat_colour(pattern):
    colour = {"r": 200, "g": 100, "b": 30}
    h, w = 8, 8
    mosaic = np.zeros((h, w), np.uint8)
    for dy in range(2):
        for dx in range(2):
            mosaic[dy::2, dx::2] = colour[pattern[dy * 2 + dx]]
    rgb = image_to_rgb(msg(mosaic, f"bayer_{pattern}8"))
    np.testing.assert_allclose(rgb[2:-2, 2:-2].reshape(-1, 3).mean(0), [200, 100, 30], atol=2)


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_grey_and_colour(encoding, order):
    # Y=128 with neutral chroma is mid grey; Y=81, U=90, V=240 is red in BT.601.
    h, w = 2, 4
    y, u, v = 81, 90, 240
    packed = np.zeros((h, w, 2), np.uint8)
    if order == "uyvy":
        packed[..., 1] = y
        packed[:, 0::2, 0], packed[:, 1::2, 0] = u, v
    else:
        packed[..., 0] = y
        packed[:, 0::2, 1], packed[:, 1::2, 1] = u, v
    rgb = image_to_rgb(msg(packed, encoding))
    assert rgb.shape == (h, w, 3)
    assert rgb[..., 0].min() > 200 and rgb[..., 1].max() < 40 and rgb[..., 2].max() < 40


def test_unsupported_encoding_is_named():
    m = msg(RGB, "rgb8")
    m.encoding = "32FC3"
    with pytest.raises(ConversionError, match=r"'32FC3' is not supported as camera input \(supported: .*rgb8"):
        image_to_numpy(m)


def test_encoding_errors_share_one_list_and_one_wording():
    """jpeg (a compressed format in an Image), an unknown encoding and the two depth encodings: the
    same sentence, the same list, and the list holds no depth encoding."""
    messages = {}
    for encoding, pixels in (("jpeg", RGB), ("32FC3", RGB), ("16UC1", np.zeros((2, 2), np.uint16)),
                             ("32FC1", np.zeros((2, 2), np.float32))):
        m = msg(pixels, "rgb8" if pixels.ndim == 3 else ("16UC1" if pixels.dtype == np.uint16 else "32FC1"))
        m.encoding = encoding
        with pytest.raises(ConversionError) as err:
            image_to_rgb(m)
        messages[encoding] = str(err.value)
    lists = {text.split("(supported: ")[1] for text in messages.values()}
    assert len(lists) == 1, messages
    (listed,) = lists
    assert "16UC1" not in listed and "32FC1" not in listed and "rgb8" in listed and "bayer_rggb16" in listed
    for encoding, text in messages.items():
        assert text.startswith(f"image encoding '{encoding}' is not supported as camera input"), text
    assert "(a depth encoding, not a camera image)" in messages["16UC1"]


def test_zero_size_short_step_and_short_data_are_rejected():
    m = msg(RGB, "rgb8")
    with pytest.raises(ConversionError, match="zero size"):
        image_to_numpy(SimpleNamespace(**{**vars(m), "height": 0}))
    with pytest.raises(ConversionError, match="shorter than one row"):
        image_to_numpy(SimpleNamespace(**{**vars(m), "step": 14}))
    with pytest.raises(ConversionError, match="needs 60"):
        image_to_numpy(SimpleNamespace(**{**vars(m), "data": m.data[:-1]}))


def test_numpy_to_image_fields_round_trip_32fc1():
    depth = np.array([[1.5, np.nan], [0.25, 80.0]], np.float32)
    fields = numpy_to_image_fields(depth, "32FC1")
    assert fields["step"] == 8 and fields["encoding"] == "32FC1"
    back = image_to_numpy(SimpleNamespace(**fields))
    np.testing.assert_array_equal(back, depth)
    with pytest.raises(ConversionError, match="does not fit encoding 32FC1"):
        numpy_to_image_fields(depth.astype(np.float64), "32FC1")


def test_compressed_png_and_jpeg_decode_to_rgb_and_garbage_is_an_error():
    rgb = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    out = compressed_to_rgb(SimpleNamespace(format="png", data=png.tobytes()))
    np.testing.assert_array_equal(out, rgb)
    with pytest.raises(ConversionError, match="could not be decoded"):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"\x00\x01garbage"))
    with pytest.raises(ConversionError, match="no data"):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b""))


def test_rclpy_image_message_converts_like_a_namespace():
    from sensor_msgs.msg import Image

    fields = numpy_to_image_fields(RGB, "rgb8")
    np.testing.assert_array_equal(image_to_rgb(Image(**fields)), RGB)
