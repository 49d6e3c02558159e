"""KITTI raw: split files, calibration, Velodyne -> sparse depth, improved ground truth, the loader.

Layout (as downloaded): ``ROOT/<date>/<date>_drive_<n>_sync/image_02/data/<frame:010d>.png`` (or
.jpg), calibration in ``ROOT/<date>/calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``. The
calibration is looked up in the drive folder first, then its parents, so a flat folder with the
calibration beside ``image_02`` also works.

Split files have one sample per line, ``<folder> <frame> <side>`` with side ``l`` (image_02) or
``r`` (image_03), e.g. ``2011_09_26/2011_09_26_drive_0002_sync 0000000069 l``. Any file of that
format works; ``mcdepth_train/data/splits/<name>/<split>_files.txt`` can be named by ``<name>``.

Ground truth (evaluation): ``gt='auto'`` takes the first that exists of the improved maps
(``proj_depth/groundtruth/image_0X/<frame>.png``, uint16 / 256 metres, the KITTI depth benchmark
format; also read from ``gt_root/<drive>/proj_depth/...``), TRI's ``proj_depth/velodyne/image_0X/
<frame>.npz`` (key ``velodyne_depth``), or the raw scan ``velodyne_points/data/<frame>.bin``
projected with :func:`velodyne_depth`. Depth maps keep the native image size; 0 = no measurement.
The Garg/Eigen evaluation crops are ``eval.metrics.crop_mask``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from ..config import GT_SOURCES
from .base import TripletDataset
from .errors import DataError, MissingData
from .lidar import project_to_depth
from .transforms import RawSample

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
SIDES = {"l": "image_02", "r": "image_03"}
_CAM = {"image_02": 2, "image_03": 3}


# ------------------------------------------------------------------------------------ splits
def resolve_split(split: str, which: str = "test") -> Path:
    """A split file path: an existing file, or ``<name>`` of a shipped split (``splits/<name>/<which>_files.txt``)."""
    path = Path(split)
    if path.is_file():
        return path
    shipped = SPLITS_DIR / split / f"{which}_files.txt"
    if shipped.is_file():
        return shipped
    names = sorted(p.name for p in SPLITS_DIR.iterdir() if p.is_dir()) if SPLITS_DIR.is_dir() else []
    raise MissingData(f"split {split!r}: no such file, and no shipped split {shipped.relative_to(SPLITS_DIR.parent)} (shipped: {', '.join(names) or 'none'})")


def read_split_file(path: Union[str, Path]) -> list[tuple[str, int, str]]:
    """Lines ``<folder> <frame> <side>`` -> [(folder, frame, side)]; malformed lines raise naming the line."""
    path = Path(path)
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2:
            parts.append("l")
        if len(parts) != 3 or parts[2] not in SIDES or not parts[1].isdigit():
            raise DataError(f"{path}:{n}: expected '<folder> <frame> <l|r>', got {line!r}")
        items.append((parts[0], int(parts[1]), parts[2]))
    if not items:
        raise DataError(f"{path}: split file is empty")
    return items


# ------------------------------------------------------------------------------- calibration
def read_calib_file(path: Union[str, Path]) -> dict[str, np.ndarray]:
    """A KITTI calibration text file (``key: v1 v2 ...``) -> {key: float array}; non-numeric values are skipped."""
    data = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        try:
            data[key.strip()] = np.array([float(x) for x in value.split()])
        except ValueError:
            continue  # calib_time: 09-Jan-2012 13:57:47
    return data


@functools.lru_cache(maxsize=64)
def find_calib_dir(drive_dir: Path, root: Path) -> Path:
    """The folder holding calib_cam_to_cam.txt: the drive folder or the nearest parent within root."""
    for d in [drive_dir, *drive_dir.parents]:
        if (d / "calib_cam_to_cam.txt").is_file():
            return d
        if d == root or d == d.parent:
            break
    raise MissingData(f"calib_cam_to_cam.txt not found in {drive_dir} or its parents up to {root}")


@functools.lru_cache(maxsize=64)
def kitti_intrinsics(calib_dir: Path, cam: int = 2) -> np.ndarray:
    """K [3,3] of rectified camera ``cam`` (P_rect_0X), in pixels of the full-size image."""
    path = Path(calib_dir) / "calib_cam_to_cam.txt"
    calib = read_calib_file(path)
    key = f"P_rect_0{cam}"
    if key not in calib or calib[key].size != 12:
        raise DataError(f"{path}: missing or malformed {key}")
    return calib[key].reshape(3, 4)[:, :3].copy()


def velo_to_image_matrix(calib_dir: Union[str, Path], cam: int = 2) -> np.ndarray:
    """[3,4] P_rect_0X @ R_rect_00 @ [R|T]_velo_to_cam: Velodyne points -> homogeneous pixels."""
    calib_dir = Path(calib_dir)
    cam2cam = read_calib_file(calib_dir / "calib_cam_to_cam.txt")
    velo_path = calib_dir / "calib_velo_to_cam.txt"
    if not velo_path.is_file():
        raise MissingData(f"{velo_path} not found (needed to project Velodyne scans)")
    velo2cam = read_calib_file(velo_path)
    Tr = np.eye(4)
    Tr[:3, :3] = velo2cam["R"].reshape(3, 3)
    Tr[:3, 3] = velo2cam["T"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = cam2cam["R_rect_00"].reshape(3, 3)
    P = cam2cam[f"P_rect_0{cam}"].reshape(3, 4)
    return P @ R_rect @ Tr


def velodyne_depth(points: np.ndarray, velo_to_image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sparse depth [H,W] float32 metres from Velodyne points [N,>=3] (0 = no point; nearest wins).

    Follows the Eigen-split evaluation code everyone compares against (monodepth2's
    ``generate_depth_map``): points with x_velo < 0 are dropped, pixels are ``round(u) - 1``,
    ``round(v) - 1``, and the depth is the rectified camera's z.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    return project_to_depth(pts[pts[:, 0] >= 0], velo_to_image, height, width, pixel_offset=-1)


def read_velodyne(path: Union[str, Path]) -> np.ndarray:
    path = Path(path)
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise DataError(f"{path}: size {raw.size * 4} bytes is not a whole number of (x, y, z, r) float32 points")
    return raw.reshape(-1, 4)


def read_png_depth(path: Union[str, Path]) -> np.ndarray:
    """KITTI depth-benchmark PNG (uint16, metres * 256, 0 = none) -> float32 metres."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        raise DataError(f"{path}: not a 16-bit depth PNG")
    return raw.astype(np.float32) / 256.0


def write_png_depth(path: Union[str, Path], depth: np.ndarray) -> None:
    """float32 metres -> KITTI uint16 PNG (metres * 256; depths above 255.99 m are stored as 0 = none)."""
    scaled = np.round(np.asarray(depth, np.float64) * 256.0)
    scaled[(scaled > 65535) | ~np.isfinite(scaled)] = 0
    if not cv2.imwrite(str(path), scaled.astype(np.uint16)):
        raise OSError(f"cannot write {path}")


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return image[..., ::-1].copy()


# ------------------------------------------------------------------------------------ dataset
def find_drives(root: Path) -> list[tuple[str, str]]:
    """(folder relative to root, camera) of every ``image_0X/data`` folder under root (two levels deep at most)."""
    found = []
    for cam in ("image_02",):
        for pattern in (f"{cam}/data", f"*/{cam}/data", f"*/*/{cam}/data"):
            for d in sorted(root.glob(pattern)):
                rel = d.parent.parent.relative_to(root).as_posix()
                found.append((rel, cam))
    return found


def frame_numbers(image_dir: Path) -> list[int]:
    return sorted(int(p.stem) for p in image_dir.iterdir() if p.suffix.lower() in (".png", ".jpg") and p.stem.isdigit())


class KittiDataset(TripletDataset):
    """KITTI raw samples from a split file, or every frame of every drive under ``root``.

    Args:
        root: KITTI raw root.
        split_items: [(folder, frame, side)] from :func:`read_split_file`; None = scan root.
        gt: 'auto', 'groundtruth', 'velodyne' or 'none' (see the module docstring).
        gt_root: optional root of the KITTI depth benchmark (``<drive>/proj_depth/groundtruth/...``).
        Other arguments: see TripletDataset.
    Samples whose neighbouring frames are missing are skipped (``self.skipped`` counts them).
    """

    def __init__(self, root, split_items: Optional[Sequence[tuple[str, int, str]]] = None, gt: str = "none", gt_root: str = "", **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingData(f"KITTI root {self.root} is not a folder")
        if gt not in GT_SOURCES:
            raise DataError(f"gt: expected one of {GT_SOURCES}, got {gt!r}")
        self.gt = gt
        self.gt_root = Path(gt_root) if gt_root else None
        self.skipped = 0
        self._frames: dict[tuple[str, str], dict[int, Path]] = {}
        if split_items is None:
            drives = find_drives(self.root)
            if not drives:
                raise MissingData(f"no image_02/data folders with frames under {self.root}")
            split_items = []
            for folder, cam in drives:
                frames = sorted(self._frame_files(folder, cam))
                split_items += [(folder, f, "l") for f in frames]
        for folder, frame, side in split_items:
            cam = SIDES[side]
            files = self._frame_files(folder, cam)
            if all(frame + f in files for f in self.frame_ids):
                self.items.append((folder, frame, cam))
            else:
                self.skipped += 1
        if not self.items:
            raise MissingData(f"no usable KITTI samples under {self.root}: {self.skipped} listed frames lack an image or a neighbour {self.frame_ids}")

    def _frame_files(self, folder: str, cam: str) -> dict[int, Path]:
        key = (folder, cam)
        if key not in self._frames:
            image_dir = self.root / folder / cam / "data"
            files = {}
            if image_dir.is_dir():
                for p in image_dir.iterdir():
                    if p.suffix.lower() in (".png", ".jpg") and p.stem.isdigit():
                        files[int(p.stem)] = p
            self._frames[key] = files
        return self._frames[key]

    def intrinsics(self, folder: str, cam: str) -> np.ndarray:
        calib_dir = find_calib_dir((self.root / folder).resolve(), self.root.resolve())
        return kitti_intrinsics(calib_dir, _CAM[cam])

    def depth(self, folder: str, frame: int, cam: str, shape: tuple[int, int]) -> Optional[np.ndarray]:
        """Ground-truth depth of one frame at its native size, or None when there is none."""
        if self.gt == "none":
            return None
        name = f"{frame:010d}"
        drive = self.root / folder
        if self.gt in ("auto", "groundtruth"):
            candidates = [drive / "proj_depth" / "groundtruth" / cam / f"{name}.png"]
            if self.gt_root is not None:
                candidates += [self.gt_root / split / Path(folder).name / "proj_depth" / "groundtruth" / cam / f"{name}.png" for split in ("train", "val", "")]
            for path in candidates:
                if path.is_file():
                    return read_png_depth(path)
            if self.gt == "groundtruth":
                raise MissingData(f"improved ground truth for {folder} {name} {cam} not found (looked at {candidates[0]})")
        npz = drive / "proj_depth" / "velodyne" / cam / f"{name}.npz"
        if npz.is_file():
            with np.load(npz) as data:
                return data["velodyne_depth"].astype(np.float32)
        scan = drive / "velodyne_points" / "data" / f"{name}.bin"
        if scan.is_file():
            calib_dir = find_calib_dir(drive.resolve(), self.root.resolve())
            return velodyne_depth(read_velodyne(scan), velo_to_image_matrix(calib_dir, _CAM[cam]), *shape)
        if self.gt == "velodyne":
            raise MissingData(f"no Velodyne scan or projected depth for {folder} {name} (looked at {scan})")
        return None

    def load(self, index: int) -> RawSample:
        folder, frame, cam = self.items[index]
        files = self._frame_files(folder, cam)
        images = {f: read_image(files[frame + f]) for f in self.frame_ids}
        shape = images[0].shape[:2]
        maps = {}
        depth = self.depth(folder, frame, cam, shape)
        if depth is not None:
            maps["depth_gt"] = depth
        return RawSample(images, self.intrinsics(folder, cam), f"{folder}/{cam}", frame, maps)
