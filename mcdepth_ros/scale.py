"""Scale policy: model units -> metres (relative, fixed factor, or from the camera's mounting height).

``camera_height``: a monocular net knows depth only up to scale, but the camera sits at a known
height above the road. Fit the ground plane (RANSAC) to the back-projected lower part of the
predicted depth, and scale so the camera-to-plane distance equals the height; smooth the factor
over time (in log space) so one bad frame cannot make the depth jump.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

SCALE_MODES = ("relative", "fixed", "camera_height")


@dataclass
class PlaneFit:
    normal: np.ndarray  # unit normal in the camera frame (x right, y down, z forward), pointing up (-y)
    distance: float     # camera-to-plane distance, same units as the depth
    inlier_fraction: float


def fit_ground_plane(depth: np.ndarray, k: np.ndarray, region: float = 0.35, iterations: int = 64,
                     threshold: float = 0.02, max_tilt_deg: float = 30.0, max_points: int = 4000,
                     rng: np.random.Generator | None = None) -> PlaneFit | None:
    """RANSAC plane in the lower ``region`` of the image, nearly horizontal (a road seen by a forward camera).

    Args:
        depth: [H,W] depth (any consistent units; NaN invalid).
        k: 3x3 intrinsics of this image size.
        region: fraction of rows, from the bottom, searched for the ground.
        threshold: inlier distance as a fraction of the median depth there (scale-free).
        max_tilt_deg: largest angle between the plane normal and the camera's up axis.

    Returns:
        the refined plane, or None when too few valid points or no plane near horizontal.
    """
    rng = rng or np.random.default_rng(0)
    h, w = depth.shape
    top = int(h * (1.0 - region))
    k = np.asarray(k, np.float64).reshape(3, 3)
    sub = depth[top:h]
    valid = np.flatnonzero(np.isfinite(sub) & (sub > 0))
    if valid.size < 50:
        return None
    if valid.size > max_points:
        # Sample pixels before back-projecting (with replacement: cheap, and harmless for RANSAC/least squares).
        valid = valid[rng.integers(0, valid.size, max_points)]
    vs, us = np.divmod(valid, w)
    z = sub.reshape(-1)[valid].astype(np.float64)
    pts = np.stack([(us - k[0, 2]) / k[0, 0] * z, (vs + top - k[1, 2]) / k[1, 1] * z, z], axis=1)
    tol = threshold * float(np.median(z))
    min_up = math.cos(math.radians(max_tilt_deg))
    # All hypotheses at once: planes through random triples, the near-horizontal ones scored together.
    a, b, c = (pts[i] for i in rng.integers(0, len(pts), (3, iterations)))
    n = np.cross(b - a, c - a)
    norm = np.linalg.norm(n, axis=1)
    keep = norm > 1e-12
    n = n[keep] / norm[keep, None]
    a = a[keep]
    keep = np.abs(n[:, 1]) >= min_up
    n, a = n[keep], a[keep]
    if len(n) == 0:
        return None
    counts = (np.abs(pts @ n.T - np.einsum("ij,ij->i", a, n)) < tol).sum(axis=0)
    best = int(np.argmax(counts))
    best_count = int(counts[best])
    if best_count < 10:
        return None
    best_inliers = np.abs((pts - a[best]) @ n[best]) < tol
    # Least-squares refinement: the normal is the direction of least variance of the inliers.
    sel = pts[best_inliers]
    centroid = sel.mean(axis=0)
    normal = np.linalg.svd(sel - centroid, full_matrices=False)[2][-1]
    if normal[1] > 0:
        normal = -normal  # point up (camera y is down), so the camera is on the positive side
    if abs(normal[1]) < min_up:
        return None
    distance = float(-(centroid @ normal))
    if distance <= 0:
        return None
    return PlaneFit(normal=normal, distance=distance, inlier_fraction=best_count / len(pts))


class DepthScaler:
    """Turns model-unit depth into published depth under one of :data:`SCALE_MODES`.

    Args:
        mode: "relative" (factor 1), "fixed" (``factor``) or "camera_height".
        factor: the fixed factor, and the starting factor for camera_height.
        camera_height: metres from the camera centre to the ground.
        smoothing: weight of the old factor in the exponential average (0 = no smoothing).
        min_inliers: smallest inlier fraction for a ground fit to count.
    """

    def __init__(self, mode: str = "relative", factor: float = 1.0, camera_height: float = 1.5,
                 region: float = 0.35, smoothing: float = 0.9, min_inliers: float = 0.3, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        # configure() runs on the parameter callback's thread, update() on the inference worker's.
        self._lock = threading.Lock()
        self.region = region
        self.min_inliers = min_inliers
        self.configure(mode, factor, camera_height, smoothing)
        self.last_fit: PlaneFit | None = None
        self.last_inlier_fraction: float | None = None  # of the last fit tried, accepted or not
        self.fits_used = 0
        self.fits_rejected = 0

    @property
    def needs_intrinsics(self) -> bool:
        """True when the mode cannot scale without the camera's K (camera_height)."""
        return self.mode == "camera_height"

    def summary(self) -> str:
        """One sentence on the scale: the factor, and for camera_height the ground-fit counts."""
        text = f"scale {self.mode}, factor {self.factor:.6g}"
        if self.mode == "camera_height":
            last = "n/a" if self.last_inlier_fraction is None else f"{self.last_inlier_fraction:.3f}"
            text += (f" (ground fits {self.fits_used} accepted, {self.fits_rejected} rejected, "
                     f"last inlier fraction {last}, minimum {self.min_inliers:.2f})")
            if self.fits_used == 0:
                text += ": no ground fit accepted, so the factor is the start value (scale_factor or model.json's), not metric"
        return text

    def configure(self, mode: str, factor: float, camera_height: float, smoothing: float | None = None) -> None:
        """Change the policy (dynamic reconfiguration); resets the smoothed factor to ``factor``."""
        if mode not in SCALE_MODES:
            raise ValueError(f"scale_mode: expected one of {SCALE_MODES}, got {mode!r}")
        if not factor > 0 or not camera_height > 0:
            raise ValueError(f"scale factor and camera_height must be > 0, got {factor}, {camera_height}")
        if smoothing is not None and not 0.0 <= smoothing < 1.0:
            raise ValueError(f"scale_smoothing: expected 0 <= s < 1, got {smoothing}")
        with self._lock:
            self._configure(mode, factor, camera_height, smoothing)

    def _configure(self, mode: str, factor: float, camera_height: float, smoothing: float | None) -> None:
        self.mode, self.base_factor, self.camera_height = mode, float(factor), float(camera_height)
        if smoothing is not None:
            self.smoothing = float(smoothing)
        self.factor = 1.0 if mode == "relative" else self.base_factor
        # camera_height starts from the given factor (the contract's "starting value") and moves by smoothing.
        self._log_factor = math.log(self.factor)

    def update(self, depth_model: np.ndarray, k: np.ndarray | None) -> float:
        """Refresh the factor from one frame's model-unit depth (camera_height mode only). Returns it."""
        if self.mode != "camera_height" or k is None:
            return self.factor
        fit = fit_ground_plane(depth_model, k, region=self.region, rng=self.rng)
        with self._lock:
            if self.mode != "camera_height":  # reconfigured while fitting
                return self.factor
            self.last_inlier_fraction = None if fit is None else fit.inlier_fraction
            if fit is None or fit.inlier_fraction < self.min_inliers:
                self.fits_rejected += 1
                return self.factor
            self.last_fit = fit
            self.fits_used += 1
            new = math.log(self.camera_height / fit.distance)
            self._log_factor = self.smoothing * self._log_factor + (1 - self.smoothing) * new
            self.factor = math.exp(self._log_factor)
            return self.factor

    def apply(self, depth_model: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
        """[H,W] model units -> [H,W] published units (metres unless mode is relative)."""
        factor = self.update(depth_model, k)
        return depth_model if factor == 1.0 else depth_model * np.float32(factor)

    def status(self) -> dict[str, str]:
        """Key/values for diagnostics."""
        out = {"scale_mode": self.mode, "scale_factor": f"{self.factor:.6g}"}
        if self.mode == "camera_height":
            out.update({
                "camera_height_m": f"{self.camera_height:.3f}",
                "ground_fits_used": str(self.fits_used),
                "ground_fits_rejected": str(self.fits_rejected),
                "ground_inlier_fraction": f"{self.last_fit.inlier_fraction:.3f}" if self.last_fit else "n/a",
                "ground_last_inlier_fraction": "n/a" if self.last_inlier_fraction is None else f"{self.last_inlier_fraction:.3f}",
            })
        return out
