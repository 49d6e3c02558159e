"""Image folders and video files (dash-cams) with an intrinsics YAML.

A folder holds frames (``*.png``/``*.jpg``, ordered by name) directly, or one sub-folder of frames
per sequence. The intrinsics come from a YAML file, either plain::

    fx: 1158.8
    fy: 1154.1
    cx: 669.6
    cy: 388.1
    width: 1280          # size the intrinsics belong to (scaled if the frames differ); optional
    height: 720
    distortion: [-0.257, 0.043, -0.0007, 0.0001, -0.115]   # OpenCV k1 k2 p1 p2 k3; optional

or a ROS ``camera_info`` YAML (``camera_matrix``/``distortion_coefficients``/``image_width``).
A folder written by the rosbag or video extraction carries its own ``intrinsics.yaml``.
A video is first extracted (every ``frame_stride``-th frame, standstill dropped) into a cache folder.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import yaml

from ..io import partial_dir, publish_dir
from .base import TripletDataset, split_tail, triplet_positions
from .errors import DataError, MissingData
from .kitti import read_image
from .transforms import RawSample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def load_intrinsics(path: Union[str, Path]) -> dict:
    """An intrinsics YAML (plain or ROS camera_info) -> {fx, fy, cx, cy, width, height, distortion}."""
    path = Path(path)
    if not path.is_file():
        raise MissingData(f"intrinsics file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from exc
    if "camera_matrix" in data:
        K = np.asarray(data["camera_matrix"]["data"], dtype=float).reshape(3, 3)
        data = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "width": data.get("image_width"),
                "height": data.get("image_height"), "distortion": (data.get("distortion_coefficients") or {}).get("data", [])}
    missing = [k for k in ("fx", "fy", "cx", "cy") if k not in data]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (expected fx, fy, cx, cy[, width, height, distortion])")
    out = {k: float(data[k]) for k in ("fx", "fy", "cx", "cy")}
    out["width"] = int(data["width"]) if data.get("width") else None
    out["height"] = int(data["height"]) if data.get("height") else None
    out["distortion"] = [float(x) for x in (data.get("distortion") or [])]
    return out


def intrinsics_matrix(intr: dict, width: int, height: int) -> np.ndarray:
    """K [3,3] for frames of width x height (scaled when the YAML names another size)."""
    K = np.array([[intr["fx"], 0.0, intr["cx"]], [0.0, intr["fy"], intr["cy"]], [0.0, 0.0, 1.0]])
    if intr.get("width") and intr.get("height") and (intr["width"], intr["height"]) != (width, height):
        sx, sy = width / intr["width"], height / intr["height"]
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def list_frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_sequences(root: Path) -> list[Path]:
    """root itself if it holds frames, else every sub-folder that does (sorted)."""
    if not root.is_dir():
        raise MissingData(f"image folder {root} not found")
    if list_frames(root):
        return [root]
    subs = [d for d in sorted(root.iterdir()) if d.is_dir() and list_frames(d)]
    if not subs:
        raise MissingData(f"{root}: no frames ({', '.join(IMAGE_SUFFIXES)}) in the folder or its sub-folders")
    return subs


class FolderDataset(TripletDataset):
    """Frames of one or more image folders with intrinsics YAMLs.

    Args:
        root: folder of frames or of sequence folders.
        intrinsics_file: YAML for every sequence (see module doc); '' = each sequence folder's own
            ``intrinsics.yaml``, else the one in root (extracted bags carry their own).
        split: 'train' / 'val' (held-out last 10% of each sequence) or 'test'/'all' (every sample).
        frame_stride: use every n-th frame. undistort: apply the YAML's distortion on load.
        require_gt: keep only samples whose frame 0 has ground truth, ``<sequence>/depth_gt/<frame>.npz``
            (key ``depth``, metres at the frame's native size, 0 = none: what a bag's LiDAR gives).
    """

    def __init__(self, root, intrinsics_file: str = "", split: str = "train", frame_stride: int = 1, undistort: bool = True,
                 require_gt: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        sequences = find_sequences(self.root)
        if frame_stride < 1:
            raise DataError(f"frame_stride must be >= 1, got {frame_stride}")
        self.undistort = undistort
        self.sequences: list[tuple[str, list[Path]]] = []
        self.intrinsics: list[dict] = []
        for seq in sequences:
            path = Path(intrinsics_file) if intrinsics_file else next(
                (p for p in (seq / "intrinsics.yaml", self.root / "intrinsics.yaml") if p.is_file()), self.root / "intrinsics.yaml")
            if not path.is_file():
                raise MissingData(f"{seq}: no intrinsics (give data.intrinsics_file=FILE.yaml; looked for {path})")
            frames = list_frames(seq)[::frame_stride]
            name = seq.relative_to(self.root).as_posix() if seq != self.root else self.root.name
            s = len(self.sequences)
            self.sequences.append((name, frames))
            self.intrinsics.append(load_intrinsics(path))
            positions = split_tail(triplet_positions(len(frames), self.frame_ids), split)
            if require_gt:
                positions = [p for p in positions if _gt_path(frames[p]).is_file()]
            self.items += [(s, p) for p in positions]
        if not self.items and require_gt:
            raise DataError(f"{self.root}: no {split} sample has ground truth (depth_gt/*.npz beside frames with both neighbours {self.frame_ids})")
        if not self.items:
            raise DataError(f"{self.root}: no {split} samples (each needs frames {self.frame_ids} around it; sequences have "
                             f"{[len(f) for _, f in self.sequences]} frames)")
        self._maps: dict = {}

    def _undistort(self, image: np.ndarray, K: np.ndarray, D: list) -> np.ndarray:
        key = (image.shape[:2], K.tobytes(), tuple(D))
        if key not in self._maps:
            self._maps[key] = cv2.initUndistortRectifyMap(K, np.asarray(D, np.float64), None, K, (image.shape[1], image.shape[0]), cv2.CV_32FC1)
        maps = self._maps[key]
        return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR)

    def load(self, index: int) -> RawSample:
        s, p = self.items[index]
        name, frames = self.sequences[s]
        intr = self.intrinsics[s]
        images = {f: read_image(frames[p + f]) for f in self.frame_ids}
        h, w = images[0].shape[:2]
        K = intrinsics_matrix(intr, w, h)
        if self.undistort and any(abs(x) > 0 for x in intr["distortion"]):
            images = {f: self._undistort(im, K, intr["distortion"]) for f, im in images.items()}
        maps = {}
        gt = _gt_path(frames[p])
        if gt.is_file():
            with np.load(gt) as data:
                maps["depth_gt"] = data["depth"].astype(np.float32)
        return RawSample(images, K, name, p, maps)


def _gt_path(frame: Path) -> Path:
    return frame.parent / "depth_gt" / f"{frame.stem}.npz"


def extract_video(video, out_dir, frame_stride: int = 1, min_image_change: float = 0.0, progress: bool = True) -> dict:
    """Decode a video into ``out_dir`` (PNG frames + frames.json), every n-th frame, standstill dropped.

    Reuses an existing extraction of the same file and settings. Written under ``<out_dir>.partial-<pid>``
    and renamed when complete. Returns {frames, decoded, dropped_stride, dropped_standstill, fps}.
    """
    video, out_dir = Path(video), Path(out_dir)
    if not video.is_file():
        raise MissingData(f"video {video} not found")
    st = video.stat()
    fingerprint = hashlib.sha1(f"{video.resolve()}:{st.st_size}:{st.st_mtime_ns}:{frame_stride}:{min_image_change}".encode()).hexdigest()[:16]
    manifest = out_dir / "frames.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("fingerprint") == fingerprint:
        return json.loads(manifest.read_text())["summary"]
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"{video}: OpenCV cannot open this video")
    partial = partial_dir(out_dir)
    summary = {"frames": 0, "decoded": 0, "dropped_stride": 0, "dropped_standstill": 0, "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0)}
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"extract {video.name}", unit="frame")
    last = None
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            n = summary["decoded"]
            summary["decoded"] += 1
            if bar is not None:
                bar.update(1)
            if n % frame_stride:
                summary["dropped_stride"] += 1
                continue
            if min_image_change > 0:
                small = cv2.resize(bgr, (64, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
                if last is not None and float(np.abs(small - last).mean()) < min_image_change:
                    summary["dropped_standstill"] += 1
                    continue
                last = small
            cv2.imwrite(str(partial / f"{summary['frames']:06d}.png"), bgr)
            summary["frames"] += 1
        if summary["frames"] == 0:
            raise DataError(f"{video}: no frame could be decoded")
        (partial / "frames.json").write_text(json.dumps({"fingerprint": fingerprint, "summary": summary}))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        cap.release()
        if bar is not None:
            bar.close()
    publish_dir(partial, out_dir, replace=True)
    return summary
