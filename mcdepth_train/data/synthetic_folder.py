"""The synthetic dataset on disk: writing it (``mcdepth-train synth``) and reading it back.

Layout of ``OUT`` (a KITTI-raw-like tree, so the KITTI loader reads it too)::

    synthetic.json                       manifest, written last: params, seeds, sequences, statistics
    splits/{train,val,test}_files.txt    KITTI split format: '<folder> <frame> l'
    synth/calib_cam_to_cam.txt           P_rect_02 / R_rect_00 / S_rect_02 of the synthetic camera
    synth/synth_drive_0000_sync/         training sequence 0 (seed = seed + 0), 1, ...
        image_02/data/0000000000.png     RGB frames
        image_02/{cam.txt,poses.txt,timestamps.txt}   K; world_from_cam 3x4 per row; seconds
        proj_depth/groundtruth/image_02/0000000000.png  depth, uint16 metres*256 (KITTI benchmark format)
        instances/image_02/0000000000.png               instance ids, uint16 (0 = background)
        objects.json                     instances (id, kind, dynamic, size) and world_from_object per frame
        scene.json                       SceneParams + seed: regenerates the sequence exactly
    synth/synth_test_0000_sync/          held-out test sequence (seed = seed + 1000 + k)
    rosbag2/<sequence>/                  rosbag2 of each sequence (with --format rosbag2|both)

Splits: train = every sample of the training sequences but the last 10% of each; val = that tail;
test = every sample of the test sequences (a different seed). Everything is written under
``OUT.partial-<pid>`` and renamed to ``OUT`` when complete.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from ..io import partial_dir, publish_dir
from .base import split_tail, triplet_positions
from .kitti import KittiDataset, read_split_file, write_png_depth
from .rosbag import write_image_bag
from .synthetic import SceneParams, SyntheticScene, dynamic_mask
from .transforms import RawSample

MANIFEST = "synthetic.json"
DATE = "synth"
TEST_SEED_OFFSET = 1000
STAMP0_NS = 1_700_000_000 * 1_000_000_000


def sequence_names(num_sequences: int, num_test_sequences: int) -> list[tuple[str, str, int]]:
    """(folder, role, seed offset) of every sequence: training ones, then test ones."""
    names = [(f"{DATE}/synth_drive_{k:04d}_sync", "train", k) for k in range(num_sequences)]
    names += [(f"{DATE}/synth_test_{k:04d}_sync", "test", TEST_SEED_OFFSET + k) for k in range(num_test_sequences)]
    return names


def _write_calib(path: Path, K: np.ndarray, width: int, height: int) -> None:
    P = np.zeros((3, 4))
    P[:, :3] = K
    fmt = lambda a: " ".join(f"{x:.12e}" for x in np.asarray(a).reshape(-1))  # noqa: E731
    path.write_text(
        "calib_time: synthetic\n"
        f"S_rect_02: {float(width):e} {float(height):e}\n"
        f"R_rect_00: {fmt(np.eye(3))}\n"
        f"P_rect_02: {fmt(P)}\n"
        f"P_rect_03: {fmt(P)}\n"
    )


def write_synthetic(
    out,
    params: SceneParams,
    seed: int = 0,
    num_sequences: int = 4,
    num_test_sequences: int = 1,
    formats: Sequence[str] = ("kitti",),
    storage: str = "sqlite3",
    compressed: bool = False,
    image_topic: str = "/camera/image_raw",
    camera_info_topic: str = "/camera/camera_info",
    val_fraction: float = 0.1,
    progress: bool = True,
) -> dict:
    """Render and write the synthetic dataset (see the module docstring); returns the manifest.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    out = Path(out)
    formats = tuple(formats)
    if not set(formats) <= {"kitti", "rosbag2"} or not formats:
        raise ValueError(f"formats: expected a subset of ('kitti', 'rosbag2'), got {formats}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output {out} exists and is not an empty folder")
    if num_sequences < 1:
        raise ValueError(f"num_sequences must be >= 1, got {num_sequences}")
    params.validate()
    partial = partial_dir(out)
    sequences = sequence_names(num_sequences, num_test_sequences)
    total = len(sequences) * params.num_frames
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="synth", unit="frame")
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    stats = []
    try:
        K = None
        for folder, role, offset in sequences:
            scene = SyntheticScene(params, seed + offset)
            K = scene.K
            drive = partial / folder
            dyn_ids = [i.id for i in scene.instances if i.dynamic]
            fractions: list[float] = []
            cam_poses, object_poses = [], []

            def frames():
                for i in range(params.num_frames):
                    frame = scene.render(i)
                    fractions.append(float(dynamic_mask(frame.instance_map, dyn_ids).mean()))
                    cam_poses.append(frame.cam_pose[:3].reshape(-1))
                    object_poses.append({str(k): v[:3].reshape(-1).tolist() for k, v in frame.object_poses.items()})
                    if "kitti" in formats:
                        name = f"{i:010d}.png"
                        cv2.imwrite(str(drive / "image_02" / "data" / name), frame.image[..., ::-1])
                        write_png_depth(drive / "proj_depth" / "groundtruth" / "image_02" / name, frame.depth)
                        cv2.imwrite(str(drive / "instances" / "image_02" / name), frame.instance_map.astype(np.uint16))
                    if bar is not None:
                        bar.update(1)
                    yield STAMP0_NS + int(round(frame.timestamp * 1e9)), frame.image

            for sub in ("image_02/data", "proj_depth/groundtruth/image_02", "instances/image_02"):
                (drive / sub).mkdir(parents=True, exist_ok=True)
            if "rosbag2" in formats:
                bag = partial / "rosbag2" / Path(folder).name.removesuffix("_sync")
                bag.parent.mkdir(parents=True, exist_ok=True)
                write_image_bag(bag, frames(), K, storage=storage, compressed=compressed, image_topic=image_topic,
                                camera_info_topic=camera_info_topic, ego_speeds=[params.ego_speed] * params.num_frames)
            else:
                for _ in frames():
                    pass
            cam_dir = drive / "image_02"
            np.savetxt(cam_dir / "cam.txt", K, fmt="%.10f")
            np.savetxt(cam_dir / "poses.txt", np.array(cam_poses), fmt="%.10e")
            (cam_dir / "timestamps.txt").write_text("".join(f"{i / params.fps:.6f}\n" for i in range(params.num_frames)))
            (drive / "objects.json").write_text(json.dumps({
                "instances": [asdict(i) for i in scene.instances],
                "object_poses": object_poses,
                "note": "object_poses[frame][id] = world_from_object, 3x4 row-major",
            }))
            (drive / "scene.json").write_text(json.dumps({"seed": seed + offset, "params": params.to_dict()}, indent=1))
            positions = triplet_positions(params.num_frames, (-1, 0, 1))
            if role == "train":
                for split in ("train", "val"):
                    splits[split] += [f"{folder} {p:010d} l" for p in split_tail(positions, split, val_fraction)]
            else:
                splits["test"] += [f"{folder} {p:010d} l" for p in positions]
            stats.append({"folder": folder, "role": role, "seed": seed + offset, "dynamic_fraction": float(np.mean(fractions)),
                          "instances": len(scene.instances), "moving": len(dyn_ids)})
        _write_calib(partial / DATE / "calib_cam_to_cam.txt", K, params.width, params.height)
        (partial / "splits").mkdir()
        for split, lines in splits.items():
            (partial / "splits" / f"{split}_files.txt").write_text("".join(line + "\n" for line in lines))
        manifest = {
            "generator": "mcdepth_train.data.synthetic",
            "seed": seed,
            "params": params.to_dict(),
            "formats": list(formats),
            "storage": storage if "rosbag2" in formats else None,
            "compressed": compressed,
            "image_topic": image_topic,
            "camera_info_topic": camera_info_topic,
            "K": K.tolist(),
            "sequences": stats,
            "frames": total,
            "samples": {k: len(v) for k, v in splits.items()},
            "dynamic_fraction": float(np.mean([s["dynamic_fraction"] for s in stats])),
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    if not publish_dir(partial, out, replace=False):
        return read_manifest(out)  # another process wrote the same dataset first
    return manifest


def read_manifest(root) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a complete synthetic dataset ({MANIFEST} missing); write one with `mcdepth-train synth --out {root}`")
    return json.loads(path.read_text())


class SyntheticFolderDataset(KittiDataset):
    """A folder written by :func:`write_synthetic`: KITTI samples plus exact depth, instances and poses.

    Samples carry ``depth_gt``, ``dynamic_mask``, ``instance_map``, ``instance_dynamic`` and
    ``("cam_pose", f)`` (keys.py).
    """

    def __init__(self, root, split: str = "train", **kwargs):
        root = Path(root)
        self.manifest = read_manifest(root)
        if "kitti" not in self.manifest.get("formats", []):
            raise ValueError(f"{root}: written with --format rosbag2 only; read its bags with data.dataset=rosbag")
        split_file = root / "splits" / f"{split}_files.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file} not found (split must be 'train', 'val' or 'test')")
        items = read_split_file(split_file) if split_file.stat().st_size else []
        if not items:
            raise ValueError(f"{split_file} lists no samples (too few frames per sequence for a {split} split?)")
        super().__init__(root, items, gt="groundtruth", **kwargs)
        self._objects: dict[str, dict] = {}
        self._poses: dict[str, np.ndarray] = {}

    def _sequence_info(self, folder: str) -> tuple[np.ndarray, np.ndarray]:
        if folder not in self._objects:
            drive = self.root / folder
            self._objects[folder] = json.loads((drive / "objects.json").read_text())
            poses = np.loadtxt(drive / "image_02" / "poses.txt", ndmin=2).reshape(-1, 3, 4)
            full = np.tile(np.eye(4), (len(poses), 1, 1))
            full[:, :3] = poses
            self._poses[folder] = full
        moving = np.array([i["id"] for i in self._objects[folder]["instances"] if i["dynamic"]], dtype=np.int64)
        return moving, self._poses[folder]

    def scene_truth(self, index: int) -> dict:
        """The generator's motion of sample ``index`` (unaugmented): for analysis, never for training.

        Returns:
            "kinds": {instance id: 'lead' | 'oncoming' | 'crossing' | 'parked' | ...},
            "dynamic": {instance id: bool}, "cam_poses": {frame id: world_from_cam [4,4]},
            "object_poses": {frame id: {instance id: world_from_object [4,4]}}.
        """
        folder, frame, _ = self.items[index]
        _, poses = self._sequence_info(folder)
        objects = self._objects[folder]

        def full(rows) -> np.ndarray:
            return np.vstack([np.asarray(rows, dtype=np.float64).reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])

        return {
            "kinds": {int(i["id"]): i["kind"] for i in objects["instances"]},
            "dynamic": {int(i["id"]): bool(i["dynamic"]) for i in objects["instances"]},
            "cam_poses": {f: poses[frame + f] for f in self.frame_ids},
            "object_poses": {f: {int(k): full(v) for k, v in objects["object_poses"][frame + f].items()} for f in self.frame_ids},
        }

    def load(self, index: int) -> RawSample:
        raw = super().load(index)
        folder, frame, cam = self.items[index]
        moving, poses = self._sequence_info(folder)
        path = self.root / folder / "instances" / cam / f"{frame:010d}.png"
        instance_map = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if instance_map is None:
            raise OSError(f"cannot read instance map {path}")
        instance_map = instance_map.astype(np.int64)
        raw.maps["instance_map"] = instance_map
        raw.maps["dynamic_mask"] = dynamic_mask(instance_map, moving).astype(np.float32)
        raw.instance_dynamic = moving
        raw.cam_poses = {f: poses[frame + f] for f in self.frame_ids}
        return raw


def ensure_synthetic(cache_dir, params: SceneParams, seed: int, num_sequences: int, num_test_sequences: int = 1, progress: bool = True) -> Path:
    """A synthetic folder for these settings under ``cache_dir``, generated once (deterministic)."""
    key = json.dumps({"params": params.to_dict(), "seed": seed, "n": num_sequences, "t": num_test_sequences}, sort_keys=True)
    folder = Path(cache_dir) / f"synthetic-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if not (folder / MANIFEST).is_file():
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder from an older version
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(folder, params, seed, num_sequences, num_test_sequences, formats=("kitti",), progress=progress)
    return folder


def params_from_config(data_cfg, height: Optional[int] = None, width: Optional[int] = None) -> SceneParams:
    """SceneParams from DataConfig (render at the network size unless told otherwise)."""
    return SceneParams(height=height or data_cfg.height, width=width or data_cfg.width, num_frames=data_cfg.synth_frames,
                       noise_std=data_cfg.synth_noise, lighting_change=data_cfg.synth_lighting)
