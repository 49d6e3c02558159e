"""KITTI raw loader on the real samples in ../shared/data (calibration, Velodyne GT, splits)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.kitti import (KittiDataset, kitti_intrinsics, read_calib_file, read_png_depth, read_split_file, read_velodyne,
                                      resolve_split, velo_to_image_matrix, velodyne_depth, write_png_depth)
from mcdepth_train.eval.metrics import crop_mask

SMALL = dict(height=64, width=192, num_scales=2)


@pytest.fixture(scope="module")
def sfnd(shared_data):
    return shared_data / "kitti_sfnd_2011_09_26" / "images" / "KITTI"


@pytest.fixture(scope="module")
def tiny(shared_data):
    return shared_data / "kitti_tiny_drive_0023"


def test_calibration_matches_the_published_intrinsics(sfnd):
    K = kitti_intrinsics(sfnd / "2011_09_26", 2)
    np.testing.assert_allclose(K, [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])
    calib = read_calib_file(sfnd / "2011_09_26" / "calib_cam_to_cam.txt")
    assert calib["P_rect_02"][3] == pytest.approx(44.85728)  # stereo offset column of P_rect_02
    assert "calib_time" not in calib  # non-numeric lines are skipped


def test_scan_finds_every_frame_with_neighbours(sfnd):
    ds = KittiDataset(sfnd, None, **SMALL)
    assert len(ds) == 76  # 78 frames, the first and last lack a neighbour
    s = ds[0]
    assert s[keys.color(0)].shape == (3, 64, 192)
    assert int(s[keys.FRAME]) == 1
    # K scaled from 1242x375 to 192x64 (pixel-centre convention)
    assert float(s[keys.intrinsics(0)][0, 0]) == pytest.approx(721.5377 * 192 / 1242, rel=1e-5)
    assert float(s[keys.intrinsics(0)][1, 2]) == pytest.approx((172.854 + 0.5) * 64 / 375 - 0.5, rel=1e-5)


def test_velodyne_projection_gives_plausible_sparse_depth(sfnd):
    drive = sfnd / "2011_09_26"
    points = read_velodyne(drive / "velodyne_points" / "data" / "0000000002.bin")
    assert points.shape[1] == 4 and len(points) > 100_000
    depth = velodyne_depth(points, velo_to_image_matrix(drive, 2), 375, 1242)
    valid = depth > 0
    assert 10_000 < valid.sum() < 30_000  # one HDL-64E scan covers ~20k pixels of the left camera
    assert depth[valid].min() > 1.0 and depth[valid].max() < 120.0
    assert valid[:100].sum() < valid[200:].sum()  # the laser sees the lower image, not the sky
    garg = crop_mask(375, 1242, "garg")
    assert (valid & garg).sum() > 0.8 * valid.sum()
    # The dataset serves the same map as depth_gt of frame 2 (sample index 1), at native size.
    ds = KittiDataset(sfnd, [("2011_09_26", 2, "l")], gt="auto", **SMALL)
    gt = ds[0][keys.DEPTH_GT]
    assert gt.shape == (1, 375, 1242)
    assert torch.equal(gt[0], torch.from_numpy(depth))


def test_velodyne_nearest_point_wins():
    P = np.array([[100.0, 0, 5, 0], [0, 100.0, 5, 0], [0, 0, 1, 0]])
    # Velodyne x forward would need the axis swap; here the matrix maps points straight to pixels.
    points = np.array([[1.0, 0, 10, 0], [1.0, 0, 10, 0], [2.0, 0, 20, 0]])  # all project to u = round(10+5)-1
    depth = velodyne_depth(points, P, 12, 20)
    assert depth[4, 14] == pytest.approx(10.0)
    assert (depth > 0).sum() == 1


def test_tiny_drive_with_tri_depth_and_the_right_camera(tiny, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0023_sync 0000000003 l\n2011_09_26/2011_09_26_drive_0023_sync 0000000003 r\n"
                     "2011_09_26/2011_09_26_drive_0023_sync 0000000006 l\n")
    items = read_split_file(split)
    ds = KittiDataset(tiny, items, gt="auto", **SMALL)
    assert len(ds) == 2 and ds.skipped == 1  # frame 6 has no frame 7 here
    left, right = ds[0], ds[1]
    npz = np.load(tiny / "2011_09_26/2011_09_26_drive_0023_sync/proj_depth/velodyne/image_02/0000000003.npz")["velodyne_depth"]
    assert torch.equal(left[keys.DEPTH_GT][0], torch.from_numpy(npz))
    assert not torch.equal(left[keys.color(0)], right[keys.color(0)])
    assert left[keys.SEQUENCE].endswith("image_02") and right[keys.SEQUENCE].endswith("image_03")
    # image_03's P_rect_03 has the same focal length and its own principal point
    assert float(right[keys.intrinsics(0)][0, 0]) == pytest.approx(float(left[keys.intrinsics(0)][0, 0]))


def test_improved_ground_truth_is_preferred(tiny, tmp_path):
    # A tree of links to the real frames plus an improved-GT PNG.
    src = tiny / "2011_09_26"
    root = tmp_path / "kitti"
    drive = root / "2011_09_26" / "2011_09_26_drive_0023_sync"
    (drive / "image_02").mkdir(parents=True)
    (drive / "image_02" / "data").symlink_to(src / "2011_09_26_drive_0023_sync" / "image_02" / "data")
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        (root / "2011_09_26" / name).symlink_to(src / name)
    gt_dir = drive / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    dense = np.full((375, 1242), 12.5, np.float32)
    write_png_depth(gt_dir / "0000000002.png", dense)
    assert read_png_depth(gt_dir / "0000000002.png")[0, 0] == 12.5
    ds = KittiDataset(root, [("2011_09_26/2011_09_26_drive_0023_sync", 2, "l")], gt="auto", **SMALL)
    assert float(ds[0][keys.DEPTH_GT].mean()) == pytest.approx(12.5)
    with pytest.raises(FileNotFoundError, match="Velodyne"):
        KittiDataset(root, [("2011_09_26/2011_09_26_drive_0023_sync", 3, "l")], gt="velodyne", **SMALL)[0]
    # The depth benchmark's own tree (data.gt_root): <gt_root>/val/<drive>/proj_depth/groundtruth/image_02
    bench = tmp_path / "depth_annotated" / "val" / "2011_09_26_drive_0023_sync" / "proj_depth" / "groundtruth" / "image_02"
    bench.mkdir(parents=True)
    write_png_depth(bench / "0000000003.png", dense * 2)
    cfg = load_config([], ["data.dataset=kitti", f"data.root={root}", f"data.gt_root={tmp_path / 'depth_annotated'}", "data.height=64",
                           "data.width=192", "data.num_scales=2"])
    val = build_dataset(cfg, "val")
    assert [it[1] for it in val.items] == [5]  # the tail of frames 1..5
    ds = KittiDataset(root, [("2011_09_26/2011_09_26_drive_0023_sync", 3, "l")], gt="groundtruth", gt_root=str(tmp_path / "depth_annotated"), **SMALL)
    assert float(ds[0][keys.DEPTH_GT].mean()) == pytest.approx(25.0)


def test_build_dataset_kitti_splits(sfnd, tmp_path):
    cfg = load_config([], [f"data.dataset=kitti", f"data.root={sfnd}", "data.height=64", "data.width=192", "data.num_scales=2"])
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert len(train) + len(val) == 76 and len(val) == 8
    assert DEPTH_FREE(train[0]) and train.augment and not val.augment
    split = tmp_path / "mine.txt"
    split.write_text("".join(f"2011_09_26 {i:010d} l\n" for i in range(1, 11)))
    cfg = load_config([], [f"data.dataset=kitti", f"data.root={sfnd}", f"data.split={split}", "data.height=64", "data.width=192", "data.num_scales=2"])
    assert (len(build_dataset(cfg, "train")), len(build_dataset(cfg, "val"))) == (9, 1)


def DEPTH_FREE(sample) -> bool:
    return keys.DEPTH_GT not in sample  # training samples skip the ground truth


def test_shipped_eigen_test_split_format():
    path = resolve_split("eigen", "test")
    items = read_split_file(path)
    assert len(items) == 697
    assert all(side in ("l", "r") and folder.count("/") == 1 and folder.endswith("_sync") for folder, _, side in items)


def test_bad_split_lines_and_names(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2011_09_26/x_sync 0000000001 l\nnot a line at all\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_split_file(bad)
    with pytest.raises(FileNotFoundError, match="no shipped split"):
        resolve_split("nonexistent_split")


def test_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image_02/data"):
        KittiDataset(tmp_path, None, **SMALL)


def test_kitti_test_split_defaults_to_eigen(sfnd, tmp_path):
    # The Eigen test drives are not in the shared sample: the error says what is missing.
    split = tmp_path / "train.txt"
    split.write_text("2011_09_26 0000000001 l\n")
    cfg = load_config([], ["data.dataset=kitti", f"data.root={sfnd}", f"data.split={split}", "data.height=64", "data.width=192", "data.num_scales=2"])
    with pytest.raises(FileNotFoundError, match="697 listed frames lack an image"):
        build_dataset(cfg, "test")
