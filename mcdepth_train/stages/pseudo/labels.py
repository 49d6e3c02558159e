"""Pseudo depth labels (paper Eq. 5): composition, compact storage with a manifest, inspection strips.

    D̄ = (1 - M_dyn) · D_stage1 + Σ_k M_k · ŝ_k · ô_k,  the nearer object winning where moving objects overlap.

Storage (``pseudo.storage``), one label per reference frame, beside a dynamic mask:

* ``png16``: a 16-bit PNG of log depth. Code 0 = no label; code q >= 1 decodes to
  ``exp(log_min + (q - 1) * log_step)`` with ``log_min``/``log_step`` per frame in the manifest.
  The relative error is at most ``exp(log_step / 2) - 1`` (5e-5 for a 1000:1 depth range), the
  same for near and far pixels. About 0.1 MB per 192x640 frame instead of 0.5 MB of float32.
* ``float16``: a ``.npy`` of float16 depth (relative error <= 2**-11), 0 = no label.

The moving-object mask goes into ``<stem>_dyn.png`` (8-bit, 0/255). ``manifest.json`` lists the
expected frames, each written frame's files and SHA-256, the per-frame decoding constants, what
made the labels, and ``complete``. Files are written to a temporary name and renamed, and a frame
enters the manifest only after its files are in place, so an interrupted run resumes where it
stopped and a missing or damaged file is found (and can be re-created from the stage-2 nets).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...config import STORAGES, check_max_ratio
from ...io import atomic_write, file_sha256
from ..masks.rules import as_mask_map, as_instance_stack

FORMAT = "mcdepth-pseudo-v1"
MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------------- composition
def compose_pseudo_label(
    depth: np.ndarray, object_depths: np.ndarray, masks: np.ndarray, scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 5: background from stage 1, each moving object from ŝ_k·ô_k; the nearer wins on overlap.

    Args:
        depth: HxW stage-1 depth D_stage1.
        object_depths: [N,H,W] object-net depth ô_k of each moving object.
        masks: [N,H,W] bool masks M_k of the moving objects.
        scales: [N] DSA scales ŝ_k (positive).
    Returns:
        label: HxW float32 D̄. dynamic: HxW bool M_dyn (union of the masks).
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected an HxW map, got shape {list(depth.shape)}")
    masks = as_instance_stack("masks", masks)
    object_depths = np.asarray(object_depths, dtype=np.float32)
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    if object_depths.shape != masks.shape or masks.shape[1:] != depth.shape:
        raise ValueError(f"object_depths {list(object_depths.shape)}, masks {list(masks.shape)} and depth "
                         f"{list(depth.shape)}: need [N,H,W], [N,H,W] and HxW of one size")
    if scales.shape[0] != masks.shape[0]:
        raise ValueError(f"scales: expected {masks.shape[0]} values (one per object), got {scales.shape[0]}")
    if (scales <= 0).any() or not np.isfinite(scales).all():
        raise ValueError(f"scales: must be positive and finite, got {scales.tolist()}")
    objects = np.where(masks, scales[:, None, None] * object_depths, np.inf)
    nearest = objects.min(0) if len(masks) else np.full(depth.shape, np.inf, dtype=np.float32)
    dynamic = masks.any(0) if len(masks) else np.zeros(depth.shape, dtype=bool)
    return np.where(dynamic, nearest, depth).astype(np.float32), dynamic


def agrees_with_ground(object_depths: np.ndarray, contact_depths: np.ndarray, max_ratio: float) -> np.ndarray:
    """Which moving objects' labels are within ``max_ratio`` of the ground they stand on (either way).

    DSA learned its scale on static objects, and the object net its depth on few pixels; nothing
    stops either from running away on a moving object (one run gave labels 5x too far). The ground
    under the object cannot run away, so it vets each object before its label is written. The
    ground-contact depth is crude (at 64x192 it is ~15% near on cars, 10th-90th percentile -40%..+11%),
    which is why it only vets, with a loose factor, and does not replace DSA.

    Args:
        object_depths: [N] the label's depth of each object (median of ŝ·ô over its mask).
        contact_depths: [N] the ground's depth under each object (NaN = unknown: the object is kept).
        max_ratio: > 1; 0 turns the check off (every object kept).
    Returns:
        [N] bool, True = write the object's label.
    """
    object_depths = np.asarray(object_depths, dtype=np.float64).reshape(-1)
    contact_depths = np.asarray(contact_depths, dtype=np.float64).reshape(-1)
    if object_depths.shape != contact_depths.shape:
        raise ValueError(f"contact_depths: expected {object_depths.shape[0]} values (one per object), got {contact_depths.shape[0]}")
    if check_max_ratio(max_ratio) == 0:
        return np.ones(object_depths.shape, dtype=bool)
    known = np.isfinite(contact_depths) & (contact_depths > 0)
    ratio = np.where(known, object_depths / np.where(known, contact_depths, 1.0), 1.0)
    return ~known | ((ratio <= max_ratio) & (ratio >= 1.0 / max_ratio))


# ------------------------------------------------------------------------------------- encoding
def encode_png16(label: np.ndarray) -> tuple[np.ndarray, float, float]:
    """HxW depth (<= 0 or non-finite = no label) -> (uint16 codes, log_min, log_step)."""
    label = np.asarray(label, dtype=np.float64)
    valid = np.isfinite(label) & (label > 0)
    codes = np.zeros(label.shape, dtype=np.uint16)
    if not valid.any():
        return codes, 0.0, 0.0
    logs = np.log(label[valid])
    log_min, log_max = float(logs.min()), float(logs.max())
    log_step = (log_max - log_min) / 65534.0
    q = np.zeros_like(logs) if log_step == 0 else np.round((logs - log_min) / log_step)
    codes[valid] = (q + 1).clip(1, 65535).astype(np.uint16)
    return codes, log_min, log_step


def decode_png16(codes: np.ndarray, log_min: float, log_step: float) -> np.ndarray:
    """Inverse of :func:`encode_png16`: float32 depth, 0 where the code is 0."""
    codes = np.asarray(codes)
    depth = np.exp(log_min + (codes.astype(np.float64) - 1) * log_step)
    return np.where(codes > 0, depth, 0.0).astype(np.float32)


# -------------------------------------------------------------------------------------- writing
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError(f"could not encode a {array.dtype} {list(array.shape)} array as PNG")
    return buf.tobytes()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def frame_key(sequence: str, frame: int) -> str:
    """The manifest key of a reference frame: ``"<sequence>/<frame:06d>"``."""
    return f"{sequence}/{int(frame):06d}"


def _stem(key: str) -> str:
    # Keys become relative paths; anything outside a safe set is replaced so a key cannot escape the folder.
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in key.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"key: {key!r} gives an empty file name")
    return "/".join(parts)


class PseudoLabelStore:
    """A folder of pseudo labels with its manifest.

    Args:
        folder: where labels and ``manifest.json`` live.
        storage: 'png16' or 'float16' (ignored when an existing manifest says otherwise: error).
        expected: keys of every frame the stage should write; None keeps the manifest's.
        source: free-form provenance stored in the manifest (checkpoints, config hash).
    """

    def __init__(self, folder: str | Path, storage: str = "png16", expected: list[str] | None = None, source: dict | None = None):
        if storage not in STORAGES:
            raise ValueError(f"storage: expected one of {STORAGES}, got {storage!r}")
        self.folder = Path(folder)
        self.storage = storage
        self.frames: dict[str, dict] = {}
        self.expected: list[str] = []
        self.source: dict = dict(source or {})
        path = self.folder / MANIFEST
        if path.is_file():
            data = self._read_manifest(path)
            if data["storage"] != storage:
                raise ValueError(f"storage: {path} holds '{data['storage']}' labels, asked for '{storage}' "
                                 "(delete the folder or use the same storage)")
            self.frames = data["frames"]
            self.expected = data["expected"]
            self.source = data.get("source", {}) | self.source
        if expected is not None:
            self.expected = list(expected)

    @classmethod
    def open(cls, folder: str | Path) -> "PseudoLabelStore":
        """An existing store, with the storage its manifest names."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"folder: no {MANIFEST} in {folder} (run `mcdepth-train pseudo` first)")
        return cls(folder, cls._read_manifest(path)["storage"])

    @staticmethod
    def _read_manifest(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable pseudo-label manifest: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} manifest")
        return data

    # -------------------------------------------------------------------------------- writing
    def write(self, key: str, label: np.ndarray, dynamic: np.ndarray) -> dict:
        """Store one frame's label (HxW depth, 0 = none) and moving-object mask; returns its manifest entry."""
        label = np.asarray(label, dtype=np.float32)
        if label.ndim != 2:
            raise ValueError(f"label: expected an HxW map, got shape {list(label.shape)}")
        dynamic = as_mask_map("dynamic", dynamic, label.shape)
        stem = _stem(key)
        entry: dict = {"height": label.shape[0], "width": label.shape[1]}
        if self.storage == "png16":
            codes, log_min, log_step = encode_png16(label)
            entry |= {"label": stem + ".png", "log_min": log_min, "log_step": log_step}
            data = _png_bytes(codes)
        else:
            clean = np.where(np.isfinite(label) & (label > 0), label, 0).clip(0, np.finfo(np.float16).max)
            entry["label"] = stem + ".npy"
            data = _npy_bytes(clean.astype(np.float16))
        entry["dynamic"] = stem + "_dyn.png"
        _atomic_write_bytes(self.folder / entry["label"], data)
        _atomic_write_bytes(self.folder / entry["dynamic"], _png_bytes(dynamic.astype(np.uint8) * 255))
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        self.frames[key] = entry
        return entry

    def save_manifest(self) -> Path:
        """Write manifest.json (atomically), with ``complete`` true only if every expected frame is in place."""
        missing = self.missing(verify=False)
        data = {
            "format": FORMAT, "storage": self.storage, "expected": self.expected, "source": self.source,
            "frames": self.frames, "complete": bool(self.expected) and not missing, "missing": len(missing),
        }
        path = self.folder / MANIFEST
        _atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
        return path

    # -------------------------------------------------------------------------------- reading
    def missing(self, verify: bool = True) -> list[str]:
        """Expected keys whose files are absent (or, with ``verify``, whose label hash does not match)."""
        out = []
        for key in self.expected:
            entry = self.frames.get(key)
            if entry is None:
                out.append(key)
                continue
            label, dyn = self.folder / entry["label"], self.folder / entry["dynamic"]
            if not label.is_file() or not dyn.is_file() or (verify and file_sha256(label) != entry["sha256"]):
                out.append(key)
        return out

    def is_complete(self, verify: bool = True) -> bool:
        return bool(self.expected) and not self.missing(verify)

    def read(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(label HxW float32 depth, 0 = none; dynamic HxW bool) of one frame."""
        entry = self.frames.get(key)
        if entry is None:
            raise KeyError(f"key: no pseudo label for {key!r} in {self.folder}")
        path = self.folder / entry["label"]
        if self.storage == "png16":
            codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if codes is None or codes.dtype != np.uint16:
                raise ValueError(f"{path}: missing or not a 16-bit PNG")
            label = decode_png16(codes, entry["log_min"], entry["log_step"])
        else:
            try:
                label = np.load(path).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: missing or not a .npy label: {exc}") from exc
        dyn = cv2.imread(str(self.folder / entry["dynamic"]), cv2.IMREAD_UNCHANGED)
        if dyn is None or dyn.shape != label.shape:
            raise ValueError(f"{self.folder / entry['dynamic']}: missing or not an HxW mask of the label's size")
        return label, dyn > 0

    def get_or_create(self, key: str, make: Callable[[str], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Read a frame, or re-create it with ``make(key) -> (label, dynamic)`` when missing or damaged."""
        entry = self.frames.get(key)
        if entry is not None and (self.folder / entry["label"]).is_file() and (self.folder / entry["dynamic"]).is_file():
            if file_sha256(self.folder / entry["label"]) == entry["sha256"]:
                return self.read(key)
        label, dynamic = make(key)
        self.write(key, label, dynamic)
        return self.read(key)


# ----------------------------------------------------------------------------------- inspection
INSTANCE_STATIC = (60, 200, 60)  # RGB
INSTANCE_MOVING = (230, 50, 50)


def colorize_depth(depth: np.ndarray, vmax_disp: float | None = None) -> np.ndarray:
    """HxW depth -> HxWx3 uint8 RGB (magma on inverse depth; 0 / invalid -> black)."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    if vmax_disp is None:
        vmax_disp = float(np.percentile(disp[valid], 95)) if valid.any() else 1.0
    norm = np.clip(disp / max(vmax_disp, 1e-12), 0, 1)
    bgr = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)
    return np.where(valid[..., None], bgr[..., ::-1], 0).astype(np.uint8)


def inspection_strip(
    image: np.ndarray, dynamic: np.ndarray, masks: np.ndarray, moving: np.ndarray, depth: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """image | dynamic evidence | instances (static green, moving red) | stage-1 depth | pseudo label.

    Args:
        image: HxWx3 RGB (uint8, or float in [0, 1]). dynamic: HxW bool. masks: [N,H,W] bool.
        moving: [N] bool. depth, label: HxW depth (one colour scale for both, so they compare).
    Returns:
        H x 5W x 3 uint8 RGB.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected HxWx3 RGB, got shape {list(image.shape)}")
    rgb = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).astype(np.uint8)
    hw = rgb.shape[:2]
    dynamic = as_mask_map("dynamic", dynamic, hw)
    masks = as_instance_stack("masks", masks)
    moving = np.asarray(moving, dtype=bool).reshape(-1)
    if len(moving) != len(masks):
        raise ValueError(f"moving: expected {len(masks)} flags, got {len(moving)}")
    evidence = np.repeat(dynamic[..., None].astype(np.uint8) * 255, 3, axis=2)
    inst = (rgb // 3).copy()
    for m, mv in zip(masks, moving):
        inst[m] = INSTANCE_MOVING if mv else INSTANCE_STATIC
    both = np.concatenate([np.ravel(depth), np.ravel(label)]).astype(np.float32)
    disp = 1.0 / both[np.isfinite(both) & (both > 0)]
    vmax = float(np.percentile(disp, 95)) if disp.size else None
    return np.concatenate([rgb, evidence, inst, colorize_depth(depth, vmax), colorize_depth(label, vmax)], axis=1)


def write_inspection_strip(path: str | Path, strip: np.ndarray) -> Path:
    """Write an RGB strip as PNG (atomically)."""
    path = Path(path)
    _atomic_write_bytes(path, _png_bytes(np.ascontiguousarray(strip[..., ::-1])))
    return path
