"""Images for export-time checks: parity, INT8 calibration and the benchmark.

Every function here returns the exported graph's input: float32 ``[1,3,H,W]`` RGB in [0, 1]
(the graph normalises with ImageNet mean/std itself, see docs/contract.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_network_input(image, height: int, width: int) -> np.ndarray:
    """One image -> float32 [1,3,height,width] RGB in [0,1].

    Args:
        image: numpy HxWx3 uint8 (0-255) or float (0-1) RGB, or a torch/numpy float [3,h,w] or
            [1,3,h,w] RGB in [0,1] (the data loaders' ``("color", 0, 0)``).
        height, width: the graph's static input size; the image is resized with area averaging.
    """
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = np.transpose(array, (1, 2, 0))  # CHW -> HWC
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image: expected HxWx3 or 3xHxW RGB, got shape {list(np.shape(image))}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32)
        if array.size and (array.min() < -1e-3 or array.max() > 1.0 + 1e-3):
            raise ValueError(f"image: float images must be RGB in [0,1], got range [{array.min():.3g}, {array.max():.3g}]")
    if array.shape[:2] != (height, width):
        array = cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(array, 0.0, 1.0).transpose(2, 0, 1)[None], dtype=np.float32)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; a clear error for a missing or unreadable file."""
    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"image: cannot read {path} (missing, or not a PNG/JPEG)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """PNG/JPEG files under ``folder`` (recursively), sorted, at most ``limit`` evenly spread."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"image folder {folder} holds no PNG/JPEG files")
    if limit is not None and len(files) > limit:
        # Spread the picks over the whole folder: consecutive video frames are near duplicates.
        picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in picks]
    return files


def folder_images(folder: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """HxWx3 uint8 RGB images from a folder, read lazily (see :func:`list_images`)."""
    for path in list_images(folder, limit):
        yield read_rgb(path)


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured HxWx3 uint8 RGB test image: sky gradient, a ground plane with stripes, noise, boxes."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height)[:, None]
    cols = np.linspace(0.0, 1.0, width)[None, :]
    horizon = 0.45 + 0.1 * rng.random()
    sky = np.stack([0.5 + 0.3 * (1 - rows), 0.6 + 0.3 * (1 - rows), 0.9 + 0 * rows], -1) * np.ones((1, width, 1))
    depth_like = np.clip((rows - horizon) / (1 - horizon), 1e-3, 1)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (cols - 0.5) / depth_like * 0.5)
    ground = np.stack([0.35 + 0.2 * stripes, 0.33 + 0.2 * stripes, 0.3 + 0.15 * stripes], -1)
    image = np.where((rows > horizon)[..., None], ground, sky)
    for _ in range(4):  # a few boxes ("cars", "buildings")
        h0, w0 = int(height * rng.uniform(0.2, 0.6)), int(width * rng.uniform(0.0, 0.85))
        bh, bw = int(height * rng.uniform(0.1, 0.35)), int(width * rng.uniform(0.05, 0.2))
        image[h0 : h0 + bh, w0 : w0 + bw] = rng.uniform(0.1, 0.9, 3)
    image = image + rng.normal(0.0, 0.03, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def synthetic_images(height: int, width: int, count: int, seed: int = 0) -> list[np.ndarray]:
    return [synthetic_image(height, width, seed + i) for i in range(count)]


def batched_inputs(images: Iterable, height: int, width: int, limit: int | None = None) -> Iterator[np.ndarray]:
    """Network inputs ([1,3,H,W] float32) from images or data-loader sample dicts, at most ``limit``."""
    from ..data import keys

    for i, item in enumerate(images):
        if limit is not None and i >= limit:
            return
        if isinstance(item, dict):
            item = item[keys.color(0, 0)]
        yield to_network_input(item, height, width)


def dataset_samples(cfg, split: str, limit: int) -> Iterator[dict]:
    """Up to ``limit`` samples of ``build_dataset(cfg, split)``, evenly spread over the dataset.

    The dataset is built here, eagerly, so a missing loader or empty split fails before any
    export work; the samples themselves are read lazily. The data loaders are imported only
    here, so export works without them when images come from a folder.
    """
    try:
        from ..data import build_dataset
    except ImportError as exc:
        raise FileNotFoundError(
            f"the data loaders (mcdepth_train.data.build_dataset) are not available ({exc}); "
            "pass --calib-dir with a folder of PNG/JPEG frames instead") from exc
    dataset = build_dataset(cfg, split)
    if len(dataset) == 0:
        raise FileNotFoundError(f"dataset '{cfg.data.dataset}' split '{split}' has no samples")
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(limit, len(dataset))).round().astype(int))
    return (dataset[int(i)] for i in picks)
