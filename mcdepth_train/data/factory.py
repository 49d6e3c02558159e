"""``build_dataset(cfg, split)``: the one place that turns ``cfg.data`` into a dataset.

Splits per source ('train' is augmented; 'val' and 'test' are not):

| data.dataset | train / val                                                      | test                                   |
|--------------|------------------------------------------------------------------|----------------------------------------|
| synthetic    | the folder's train / val split (val = last 10% of each sequence) | held-out sequences of another seed     |
| kitti        | data.split (name or file; empty = every frame), val = data.val_split or the last 10% | data.split's test file, else the shipped Eigen test split |
| cityscapes   | leftImg8bit_sequence/train, val = leftImg8bit_sequence/val        | leftImg8bit_sequence/test frames with disparity |
| folder       | every folder / video frame but the last 10% of each sequence; val = that tail | every sample                |
| rosbag       | as folder, after extracting each bag (one sequence each) into RUN/cache/rosbag-* | every sample              |

For ``synthetic`` with an empty ``data.root`` the scenes are generated once, deterministically from
``data.synth_*``, into ``RUN/cache/synthetic-<hash>`` (RUN = run.out_dir).
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ..config import DATASETS, Config
from .errors import DataError
from .folder import VIDEO_SUFFIXES, FolderDataset, extract_video, load_intrinsics

SPLITS = ("train", "val", "test")


def _common(cfg: Config, split: str) -> dict:
    d = cfg.data
    return dict(height=d.height, width=d.width, frame_ids=d.frame_ids, num_scales=d.num_scales,
                augment=split == "train", flip_prob=d.flip_prob, color_jitter_prob=d.color_jitter_prob)


def _cache_dir(cfg: Config, kind: str, source: Path) -> Path:
    tag = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    return Path(cfg.run.out_dir) / "cache" / f"{kind}-{source.stem or source.name}-{tag}"


def build_dataset(cfg: Config, split: str) -> torch.utils.data.Dataset:
    """The dataset of ``cfg.data.dataset`` for ``split`` ('train' | 'val' | 'test'); see the module table."""
    if split not in SPLITS:
        raise DataError(f"split: expected one of {SPLITS}, got {split!r}")
    d = cfg.data
    common = _common(cfg, split)
    if d.dataset == "synthetic":
        from .synthetic_folder import SyntheticFolderDataset, ensure_synthetic, params_from_config

        root = Path(d.root) if d.root else ensure_synthetic(Path(cfg.run.out_dir) / "cache", params_from_config(d), d.synth_seed,
                                                            d.synth_sequences, d.synth_test_sequences, progress=cfg.run.progress)
        return SyntheticFolderDataset(root, split, **common)
    if not d.root:
        raise DataError(f"data.root is empty: data.dataset={d.dataset!r} needs a dataset folder, bag or video")
    root = Path(d.root)
    if d.dataset == "kitti":
        return _kitti(cfg, split, root, common)
    if d.dataset == "cityscapes":
        from .cityscapes import CityscapesDataset

        return CityscapesDataset(root, split, gt=split == "test", **common)
    if d.dataset == "folder":
        folder_split = "all" if split == "test" else split
        if root.is_file() and root.suffix.lower() in VIDEO_SUFFIXES:
            cache = _cache_dir(cfg, "video", root)
            extract_video(root, cache, d.frame_stride, d.min_image_change, progress=cfg.run.progress)
            return FolderDataset(cache, d.intrinsics_file, folder_split, undistort=d.undistort, **common)
        return FolderDataset(root, d.intrinsics_file, folder_split, frame_stride=d.frame_stride, undistort=d.undistort, **common)
    if d.dataset == "rosbag":
        from .rosbag import ExtractSettings, extract_bag, find_bags

        settings = ExtractSettings(
            image_topic=d.image_topic, camera_info_topic=d.camera_info_topic, stamp_tolerance_s=d.stamp_tolerance_s,
            frame_stride=d.frame_stride, min_image_change=d.min_image_change, undistort=d.undistort,
            motion_topic=d.motion_topic, min_speed=d.min_speed, recover=d.bag_recover,
            intrinsics=load_intrinsics(d.intrinsics_file) if d.intrinsics_file else None,
        )
        e = cfg.eval
        lidar = split == "test" and bool(e.lidar_topic)  # the bag's LiDAR is the test ground truth
        if lidar:
            from ..config import lidar_to_camera_matrix

            settings = replace(settings, lidar_topic=e.lidar_topic, lidar_stamp_tolerance_s=e.lidar_stamp_tolerance_s,
                               lidar_pixel_offset=e.lidar_pixel_offset,
                               lidar_to_camera=lidar_to_camera_matrix(e.lidar_to_camera) if e.lidar_to_camera else None)
        cache = _cache_dir(cfg, "rosbag-lidar" if lidar else "rosbag", root)
        bags = find_bags(root)
        names = [bag.stem if bag.is_file() else bag.name for bag in bags]
        if len(set(names)) != len(names):
            raise DataError(f"{root}: bags with the same name cannot be told apart: {names}")
        for old in cache.glob("*"):  # sequences of bags that are no longer there
            if old.is_dir() and old.name not in names:
                shutil.rmtree(old, ignore_errors=True)
        summaries = []
        for bag, name in zip(bags, names):
            summary = extract_bag(bag, cache / name, settings, progress=cfg.run.progress)
            summaries.append(summary)
            if cfg.run.progress and not summary.reused:
                print(summary.text())
        dataset = FolderDataset(cache, "", "all" if split == "test" else split, require_gt=lidar, **common)
        dataset.extraction = summaries
        return dataset
    raise DataError(f"data.dataset: expected one of {DATASETS}, got {d.dataset!r}")


def _kitti(cfg: Config, split: str, root: Path, common: dict):
    from .base import split_tail
    from .kitti import SPLITS_DIR, KittiDataset, read_split_file, resolve_split

    d = cfg.data
    gt = "none" if split == "train" else d.gt_depth
    common = {**common, "gt_root": d.gt_root}
    if split == "test":
        # A named split's own test file (splits/<name>/test_files.txt), else the Eigen test split.
        named_test = SPLITS_DIR / d.split / "test_files.txt" if d.split and not Path(d.split).is_file() else None
        path = named_test if named_test is not None and named_test.is_file() else resolve_split("eigen", "test")
        return KittiDataset(root, read_split_file(path), gt=gt, **common)
    if split == "val" and d.val_split:
        return KittiDataset(root, read_split_file(resolve_split(d.val_split, "val")), gt=gt, **common)
    if d.split:
        train_path = resolve_split(d.split, "train")
        named_val = None if Path(d.split).is_file() else SPLITS_DIR / d.split / "val_files.txt"
        has_val = bool(d.val_split) or (named_val is not None and named_val.is_file())
        if split == "val":
            if has_val:
                return KittiDataset(root, read_split_file(named_val), gt=gt, **common)
            return KittiDataset(root, split_tail(read_split_file(train_path), "val"), gt=gt, **common)
        items = read_split_file(train_path)
        return KittiDataset(root, items if has_val else split_tail(items, "train"), gt=gt, **common)
    full = KittiDataset(root, None, gt=gt, **{**common, "augment": False})
    by_drive: dict = {}
    for folder, frame, cam in full.items:
        by_drive.setdefault(folder, []).append((folder, frame, "l"))
    items = [it for frames in by_drive.values() for it in split_tail(frames, split)]
    return KittiDataset(root, items, gt=gt, **common)
