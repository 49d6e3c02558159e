"""From raw frames to the sample dict of keys.py: resize, pyramid, intrinsics, flip, colour jitter.

Every loader returns a :class:`RawSample` (uint8 frames at their native size, their K, optional
ground-truth maps); :func:`make_sample` turns it into the documented sample dict. Geometric
augmentation (the horizontal flip) is applied to the three frames, every per-pixel map of frame 0
and the intrinsics together, always along the width axis (the authors' code flips masks
top-to-bottom; tests/train/data/test_transforms.py catches that). Colour jitter uses one draw for
all frames of a sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from ..geometry.camera import scale_intrinsics
from . import keys


@dataclass
class RawSample:
    """What a loader reads for one sample, before resizing and augmentation.

    Attributes:
        images: frame offset -> [h,w,3] uint8 RGB, all the same size.
        K: [3,3] intrinsics of those images (pixels).
        sequence: sequence name; frame: frame number of frame 0.
        maps: per-pixel maps of frame 0 (keys from keys.PIXEL_MAPS): depth_gt and dynamic_mask at
            their native size (kept), instance_map / pseudo_* resized (nearest) to the network size.
        instance_dynamic: ids of moving instances (synthetic ground truth), or None.
        cam_poses: frame offset -> [4,4] world_from_cam (synthetic ground truth), or None.
    """

    images: dict
    K: np.ndarray
    sequence: str
    frame: int
    maps: dict = field(default_factory=dict)
    instance_dynamic: Optional[np.ndarray] = None
    cam_poses: Optional[dict] = None


@dataclass
class ColorJitter:
    """One colour jitter draw (monodepth2's ranges), applied identically to every frame of a sample."""

    brightness: float
    contrast: float
    saturation: float
    hue: float

    @classmethod
    def sample(cls, generator: Optional[torch.Generator] = None) -> "ColorJitter":
        r = torch.rand(4, generator=generator).tolist()
        return cls(0.8 + 0.4 * r[0], 0.8 + 0.4 * r[1], 0.8 + 0.4 * r[2], -0.1 + 0.2 * r[3])

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        import torchvision.transforms.functional as TF  # imported here: torchvision is slow to import

        image = TF.adjust_brightness(image, self.brightness)
        image = TF.adjust_contrast(image, self.contrast)
        image = TF.adjust_saturation(image, self.saturation)
        return TF.adjust_hue(image, self.hue).clamp(0.0, 1.0)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average resize of an [h,w,C] image (pixel-centre convention, as scale_intrinsics)."""
    if image.shape[:2] == (height, width):
        return image
    interp = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def resize_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (instance ids stay ids)."""
    if label.shape[:2] == (height, width):
        return label
    rows = np.minimum(((np.arange(height) + 0.5) * label.shape[0] / height).astype(np.int64), label.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * label.shape[1] / width).astype(np.int64), label.shape[1] - 1)
    return label[rows[:, None], cols[None, :]]


def flip_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """K of the left-right mirrored image of width ``width``: cx -> width - 1 - cx (pixel centres at integers)."""
    K = K.clone()
    K[..., 0, 2] = (width - 1) - K[..., 0, 2]
    return K


def flip_pose(world_from_cam: torch.Tensor) -> torch.Tensor:
    """Pose in the mirrored world (x -> -x) that the flipped image sees: S @ T @ S, S = diag(-1,1,1,1)."""
    S = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=world_from_cam.dtype))
    return S @ world_from_cam @ S


def check_sizes(height: int, width: int, num_scales: int) -> None:
    step = 2 ** (num_scales - 1)
    if height % step or width % step or height <= 0 or width <= 0:
        raise ValueError(f"data.height/data.width ({height}x{width}) must be positive multiples of 2**(num_scales-1) = {step}")


def make_sample(
    raw: RawSample,
    height: int,
    width: int,
    num_scales: int,
    flip: bool = False,
    jitter: Optional[ColorJitter] = None,
    index: int = 0,
) -> dict:
    """The sample dict of keys.py from a raw sample (see the module docstring)."""
    check_sizes(height, width, num_scales)
    sample: dict = {}
    h0, w0 = next(iter(raw.images.values())).shape[:2]
    for f, image in raw.images.items():
        if image.shape[:2] != (h0, w0) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{raw.sequence} frame {raw.frame}{f:+d}: expected [h,w,3] uint8 like the other frames, got {image.shape} {image.dtype}")
        for s in range(num_scales):
            hs, ws = height // 2**s, width // 2**s
            img = resize_image(image, hs, ws)
            if flip:
                img = img[:, ::-1]
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
            sample[keys.color(f, s)] = t
            sample[keys.color(f, s, augmented=True)] = jitter(t) if jitter is not None else t.clone()
    K_full = scale_intrinsics(torch.as_tensor(raw.K, dtype=torch.float32), width / w0, height / h0)
    for s in range(num_scales):
        K_s = scale_intrinsics(K_full, 0.5**s, 0.5**s)
        if flip:
            K_s = flip_intrinsics(K_s, width // 2**s)
        sample[keys.intrinsics(s)] = K_s
        sample[keys.intrinsics(s, inverse=True)] = torch.linalg.inv(K_s)
    for name, value in raw.maps.items():
        if name not in keys.PIXEL_MAPS:
            raise KeyError(f"{raw.sequence}: unknown per-pixel map {name!r} (known: {keys.PIXEL_MAPS})")
        if value is None:
            continue
        value = np.asarray(value)
        if name in (keys.INSTANCE_MAP, keys.PSEUDO_LABEL, keys.PSEUDO_DYNAMIC):
            value = resize_nearest(value, height, width)
        if flip:
            value = value[:, ::-1]  # width axis: the maps mirror with the images, never top-to-bottom
        tensor = torch.from_numpy(np.ascontiguousarray(value))[None]
        sample[name] = tensor.long() if name == keys.INSTANCE_MAP else tensor.float()
    if raw.instance_dynamic is not None:
        ids = np.asarray(raw.instance_dynamic, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= keys.MAX_INSTANCES):
            raise ValueError(f"{raw.sequence}: instance ids must be in [0, {keys.MAX_INSTANCES}), got {ids.min()}..{ids.max()}")
        moving = torch.zeros(keys.MAX_INSTANCES, dtype=torch.bool)
        moving[torch.from_numpy(ids)] = True
        sample[keys.INSTANCE_DYNAMIC] = moving
    if raw.cam_poses is not None:
        for f, pose in raw.cam_poses.items():
            pose_t = torch.as_tensor(pose, dtype=torch.float32)
            sample[(keys.CAM_POSE, f)] = flip_pose(pose_t) if flip else pose_t
    sample[keys.FLIPPED] = torch.tensor(bool(flip))
    sample[keys.INDEX] = torch.tensor(int(index), dtype=torch.int64)
    sample[keys.SEQUENCE] = str(raw.sequence)
    sample[keys.FRAME] = torch.tensor(int(raw.frame), dtype=torch.int64)
    return sample
