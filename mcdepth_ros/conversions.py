"""sensor_msgs Image / CompressedImage <-> numpy, with cv_bridge's semantics, in pure numpy + OpenCV.

Works on any object with the message's fields (an rclpy message, a rosbags message, a namespace):
``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``. Rows are read with
``step`` (padding allowed), multi-byte pixels with the message's endianness, and colour encodings are
turned into RGB for the network: rgb8/bgr8/rgba8/bgra8 (and their 16-bit forms), mono8/mono16,
bayer_{rggb,bggr,gbrg,grbg}{8,16} (OpenCV demosaicing) and yuv422 (UYVY) / yuv422_yuy2 (YUYV).
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

# encoding -> (numpy dtype, channels); the layout of one pixel in the message's data.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "rgb16": (np.dtype(np.uint16), 3), "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4), "bgra16": (np.dtype(np.uint16), 4),
    "mono8": (np.dtype(np.uint8), 1), "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1), "8UC3": (np.dtype(np.uint8), 3),
    "16UC1": (np.dtype(np.uint16), 1), "32FC1": (np.dtype(np.float32), 1),
    "yuv422": (np.dtype(np.uint8), 2), "uyvy": (np.dtype(np.uint8), 2),
    "yuv422_yuy2": (np.dtype(np.uint8), 2), "yuyv": (np.dtype(np.uint8), 2),
}
for _pattern in ("rggb", "bggr", "gbrg", "grbg"):
    ENCODINGS[f"bayer_{_pattern}8"] = (np.dtype(np.uint8), 1)
    ENCODINGS[f"bayer_{_pattern}16"] = (np.dtype(np.uint16), 1)

# ROS names the 2x2 tile from the top-left pixel; OpenCV names it from the second row, second
# column, so ROS "rggb" is OpenCV "BG" (the same table cv_bridge uses).
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB,
}
_YUV_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
# Encodings of depth images (what the node publishes), not of camera images.
DEPTH_ENCODINGS = ("16UC1", "32FC1")
# The one list of encodings a camera image may come in; every "unsupported" error quotes it.
COLOR_INPUT_ENCODINGS = tuple(e for e in ENCODINGS if e not in DEPTH_ENCODINGS)


class ConversionError(ValueError):
    """An image message that cannot be read: unsupported encoding, bad size, short data, bad bytes."""


def unsupported_encoding(encoding: str) -> ConversionError:
    """The one error for an encoding the node cannot take as camera input."""
    hint = " (a depth encoding, not a camera image)" if encoding in DEPTH_ENCODINGS else ""
    return ConversionError(f"image encoding {encoding!r} is not supported as camera input{hint} "
                           f"(supported: {', '.join(COLOR_INPUT_ENCODINGS)}; compressed images come as "
                           "sensor_msgs/CompressedImage with image_transport:=compressed)")


def check_color_encoding(encoding: str) -> None:
    """Raise :func:`unsupported_encoding` unless ``encoding`` is in COLOR_INPUT_ENCODINGS."""
    if encoding not in COLOR_INPUT_ENCODINGS:
        raise unsupported_encoding(encoding)


def _data_bytes(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def image_to_numpy(msg) -> np.ndarray:
    """The message's pixels as an array in its own encoding (cv_bridge "passthrough").

    Returns:
        [H,W] for one channel, else [H,W,C], in the encoding's dtype and native byte order. A view
        of the message data where possible (read-only); copy before writing.

    Raises:
        ConversionError: unsupported encoding, zero size, ``step`` shorter than a row, or too little data.
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise unsupported_encoding(encoding)
    dtype, channels = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f"image has zero size ({width}x{height}, encoding {encoding})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f"image step {step} is shorter than one row ({width} px x {channels} x {dtype.itemsize} B = {row_bytes})")
    raw = _data_bytes(msg.data)
    needed = step * (height - 1) + row_bytes
    if raw.size < needed:
        raise ConversionError(f"image data holds {raw.size} bytes, {width}x{height} {encoding} with step {step} needs {needed}")
    # Rows start every `step` bytes; the tail of each row beyond row_bytes is padding.
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, row_bytes), strides=(step, 1))
    order = ">" if bool(msg.is_bigendian) else "<"
    pixels = rows.view(dtype.newbyteorder(order)) if dtype.itemsize > 1 else rows
    if dtype.itemsize > 1:
        pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Pixels in ``encoding`` -> [H,W,3] RGB of the same bit depth (uint8 or uint16)."""
    if encoding in ("rgb8", "rgb16", "8UC3"):
        return pixels
    if encoding in ("bgr8", "bgr16"):
        return pixels[..., ::-1]
    if encoding in ("rgba8", "rgba16"):
        return pixels[..., :3]
    if encoding in ("bgra8", "bgra16"):
        return pixels[..., 2::-1]
    if encoding in ("mono8", "mono16", "8UC1"):
        return np.repeat(pixels[..., None], 3, axis=2)
    if encoding.startswith("bayer_"):
        return cv2.cvtColor(np.ascontiguousarray(pixels), _BAYER_TO_RGB[encoding[6:10]])
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[encoding])
    raise unsupported_encoding(encoding)


def image_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image -> [H,W,3] RGB, uint8 or uint16 (16-bit encodings keep 16 bits)."""
    check_color_encoding(msg.encoding)
    return to_rgb(image_to_numpy(msg), msg.encoding)


def compressed_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg/png) -> [H,W,3] RGB uint8 (16-bit PNG stays uint16)."""
    raw = _data_bytes(msg.data)
    if raw.size == 0:
        raise ConversionError(f"compressed image ({msg.format!r}) has no data")
    decoded = cv2.imdecode(raw, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if decoded is None:
        raise ConversionError(f"compressed image ({msg.format!r}, {raw.size} bytes) could not be decoded")
    return decoded[..., ::-1]


def numpy_to_image_fields(array: np.ndarray, encoding: str, as_buffer: bool = False) -> dict:
    """The Image fields (height, width, encoding, is_bigendian, step, data) for ``array``.

    ``array`` is [H,W] or [H,W,C] in the dtype ``encoding`` needs; data are bytes in native order
    (with ``as_buffer``, a byte memoryview of the array instead: no copy, valid while it lives).
    """
    if encoding not in ENCODINGS:
        raise ConversionError(f"encoding {encoding!r} is not supported")
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array)
    if array.dtype != dtype or (array.shape[2] if array.ndim == 3 else 1) != channels or array.ndim not in (2, 3):
        raise ConversionError(f"array {array.dtype} {list(array.shape)} does not fit encoding {encoding} ({dtype}, {channels} channels)")
    height, width = array.shape[:2]
    return {
        "height": int(height), "width": int(width), "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big"), "step": int(width * channels * dtype.itemsize),
        "data": memoryview(array).cast("B") if as_buffer else array.tobytes(),
    }
