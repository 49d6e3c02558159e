"""Camera intrinsics and distortion from chessboard images (OpenCV), as the YAML the folder source reads.

``mcdepth-train calibrate --chessboard DIR --pattern 9x6 [--square M] --out cam.yaml`` finds the
inner corners of each board (``cv2.findChessboardCorners`` on a half-size copy, refined with
``cornerSubPix`` at full size), fits ``cv2.calibrateCamera`` (pinhole + plumb_bob k1 k2 p1 p2 k3) and
writes ``fx, fy, cx, cy, width, height, distortion`` plus the RMS reprojection error. The folder and
video sources (``data.intrinsics_file``) undistort frames with it (``data.undistort``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import yaml

from .errors import DataError, MissingData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MIN_BOARDS = 3


@dataclass
class Calibration:
    K: np.ndarray  # [3,3] pixels
    distortion: list  # k1 k2 p1 p2 k3
    width: int
    height: int
    rms_px: float
    used: list = field(default_factory=list)  # image names whose board was found
    not_found: list = field(default_factory=list)
    other_size: list = field(default_factory=list)  # images of another size than the majority (left out)

    def as_yaml_dict(self, pattern: tuple[int, int], square_m: float) -> dict:
        return {"fx": float(self.K[0, 0]), "fy": float(self.K[1, 1]), "cx": float(self.K[0, 2]), "cy": float(self.K[1, 2]),
                "width": self.width, "height": self.height, "distortion": [float(x) for x in self.distortion],
                "rms_px": round(float(self.rms_px), 4), "pattern": f"{pattern[0]}x{pattern[1]}", "square_m": float(square_m),
                "images_used": len(self.used)}


def parse_pattern(text: str) -> tuple[int, int]:
    """'9x6' -> (9, 6): inner corners per row and per column."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 2 for p in parts):
        raise DataError(f"--pattern: expected inner corners as COLSxROWS such as 9x6, got {text!r}")
    return int(parts[0]), int(parts[1])


def find_corners(gray: np.ndarray, pattern: tuple[int, int]):
    """Sub-pixel inner corners [N,1,2] of a chessboard in a grey image, or None when not found."""
    # Detect on a half-size copy (several times faster on 1280x720), refine at full size.
    scale = 0.5 if max(gray.shape) > 1000 else 1.0
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else gray
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH + cv2.CALIB_CB_NORMALIZE_IMAGE + cv2.CALIB_CB_FAST_CHECK
    ok, corners = cv2.findChessboardCorners(small, pattern, flags)
    if not ok:
        return None
    corners = ((corners + 0.5) / scale - 0.5).astype(np.float32)  # pixel centres, half size -> full size
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria)


def calibrate_chessboards(folder: Union[str, Path], pattern: tuple[int, int], square_m: float = 1.0, max_images: int = 0) -> Calibration:
    """Calibrate from every chessboard image in ``folder`` (sorted; ``max_images`` > 0: evenly spaced subset).

    Images of another size than most are left out (a calibration belongs to one size).
    Raises:
        MissingData: the folder does not exist or holds no images.
        DataError: fewer than 3 boards were found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingData(f"chessboard folder {folder} not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MissingData(f"{folder}: no chessboard images ({', '.join(IMAGE_SUFFIXES)})")
    if max_images and len(files) > max_images:
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_images).round().astype(int)]
    grays = {}
    for p in files:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise DataError(f"cannot read image {p}")
        grays[p] = gray
    (h, w), _ = Counter(g.shape for g in grays.values()).most_common(1)[0]
    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0 : pattern[0], 0 : pattern[1]].T.reshape(-1, 2) * square_m
    object_points, image_points = [], []
    cal = Calibration(np.eye(3), [], w, h, float("nan"))
    for p, gray in grays.items():
        if gray.shape != (h, w):
            cal.other_size.append(p.name)
            continue
        corners = find_corners(gray, pattern)
        if corners is None:
            cal.not_found.append(p.name)
            continue
        object_points.append(board)
        image_points.append(corners)
        cal.used.append(p.name)
    if len(cal.used) < MIN_BOARDS:
        raise DataError(f"{folder}: a {pattern[0]}x{pattern[1]} board was found in {len(cal.used)} of {len(grays)} images "
                        f"(need at least {MIN_BOARDS}; is --pattern the number of INNER corners per row x column?)")
    rms, K, D, _, _ = cv2.calibrateCamera(object_points, image_points, (w, h), None, None)
    cal.K, cal.distortion, cal.rms_px = K, [float(x) for x in D.ravel()[:5]], float(rms)
    return cal


def write_intrinsics_yaml(path: Union[str, Path], cal: Calibration, pattern: tuple[int, int], square_m: float) -> Path:
    """The plain intrinsics YAML of :mod:`.folder` (written to a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# mcdepth-train calibrate: {len(cal.used)} chessboards ({pattern[0]}x{pattern[1]} inner corners), "
              f"RMS reprojection error {cal.rms_px:.3f} px\n# Use with data.intrinsics_file=THIS_FILE (data.undistort=true undistorts the frames).\n")
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(header + yaml.safe_dump(cal.as_yaml_dict(pattern, square_m), sort_keys=False, default_flow_style=None))
    tmp.replace(path)
    return path
