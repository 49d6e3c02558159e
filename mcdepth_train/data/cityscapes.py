"""Cityscapes ``leftImg8bit_sequence`` triplets with ``camera/*.json`` intrinsics (ManyDepth protocol).

Layout (as downloaded)::

    ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json      (one per snippet)
    ROOT/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png (annotated frames; test GT)

Every frame is cropped to its top 75% (the bottom quarter shows the ego car's bonnet) before
resizing; the intrinsics are unchanged by that crop. Training uses every frame whose neighbours
exist in the same snippet. The test split (``gt=True``) uses the frames that have a disparity map,
with depth = baseline * fx / disparity, disparity = (png - 1) / 256 for png > 0 (0 = none), cropped
the same way; ManyDepth's further evaluation crop belongs to the evaluation code.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np

from .base import TripletDataset
from .errors import DataError, MissingData
from .kitti import read_image
from .transforms import RawSample

KEEP_FRACTION = 0.75  # top part of the frame kept (drops the ego car's bonnet)
_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$")


def crop_bonnet(image: np.ndarray) -> np.ndarray:
    """The top 75% of the rows of an image or map."""
    return image[: int(round(image.shape[0] * KEEP_FRACTION))]


def read_camera(path: Path) -> tuple[np.ndarray, float]:
    """K [3,3] and the stereo baseline (metres) from a Cityscapes camera JSON."""
    try:
        data = json.loads(path.read_text())
        intr = data["intrinsic"]
        K = np.array([[intr["fx"], 0.0, intr["u0"]], [0.0, intr["fy"], intr["v0"]], [0.0, 0.0, 1.0]], dtype=np.float64)
        return K, float(data["extrinsic"]["baseline"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a Cityscapes camera file ({exc})") from exc


def disparity_to_depth(raw: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Cityscapes disparity PNG values (uint16) -> depth in metres (0 where there is no disparity)."""
    disp = (raw.astype(np.float64) - 1.0) / 256.0
    valid = (raw > 0) & (disp > 0)
    depth = np.zeros(raw.shape, np.float32)
    depth[valid] = (baseline * fx / disp[valid]).astype(np.float32)
    return depth


class CityscapesDataset(TripletDataset):
    """Cityscapes sequence triplets for ``split`` ('train', 'val' or 'test'); see the module docstring."""

    def __init__(self, root, split: str = "train", gt: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.split = split
        self.gt = gt
        image_root = self.root / "leftImg8bit_sequence" / split
        if not image_root.is_dir():
            raise MissingData(f"Cityscapes: {image_root} not found (expected ROOT/leftImg8bit_sequence/{split}/<city>/...)")
        files: dict[tuple[str, str], dict[int, Path]] = {}
        for path in image_root.glob("*/*_leftImg8bit.png"):
            m = _NAME.match(path.name)
            if m:
                files.setdefault((m["city"], m["seq"]), {})[int(m["frame"])] = path
        if not files:
            raise MissingData(f"Cityscapes: no *_leftImg8bit.png frames under {image_root}")
        self._files = files
        self._cameras: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
        for (city, seq), frames in sorted(files.items()):
            for frame in sorted(frames):
                if not all(frame + f in frames for f in self.frame_ids):
                    continue
                if gt and not self._disparity_path(city, seq, frame).is_file():
                    continue
                self.items.append((city, seq, frame))
        if not self.items:
            what = "frames with a disparity map and both neighbours" if gt else "frames with both neighbours"
            raise MissingData(f"Cityscapes: no {what} under {image_root}")

    def _disparity_path(self, city: str, seq: str, frame: int) -> Path:
        return self.root / "disparity" / self.split / city / f"{city}_{seq}_{frame:06d}_disparity.png"

    def camera(self, city: str, seq: str) -> tuple[np.ndarray, float]:
        """Intrinsics and baseline of a snippet (from any camera JSON of that snippet)."""
        key = (city, seq)
        if key not in self._cameras:
            folder = self.root / "camera" / self.split / city
            found = sorted(folder.glob(f"{city}_{seq}_*_camera.json")) if folder.is_dir() else []
            if not found:
                raise MissingData(f"Cityscapes: no camera file {folder}/{city}_{seq}_*_camera.json for this snippet")
            self._cameras[key] = read_camera(found[0])
        return self._cameras[key]

    def load(self, index: int) -> RawSample:
        city, seq, frame = self.items[index]
        frames = self._files[(city, seq)]
        images = {f: crop_bonnet(read_image(frames[frame + f])) for f in self.frame_ids}
        K, baseline = self.camera(city, seq)
        maps = {}
        if self.gt:
            path = self._disparity_path(city, seq, frame)
            raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise DataError(f"cannot read disparity {path}")
            maps["depth_gt"] = crop_bonnet(disparity_to_depth(raw, K[0, 0], baseline))
        return RawSample(images, K, f"{city}_{seq}", frame, maps)
