"""Cityscapes sequence loader on a tiny tree in the real Cityscapes layout (no real sample is shipped)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.cityscapes import CityscapesDataset, disparity_to_depth

H, W = 64, 128  # stand-in for 1024x2048, same aspect
CAMERA = {"extrinsic": {"baseline": 0.2, "pitch": 0.03, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
          "intrinsic": {"fx": 100.0, "fy": 101.0, "u0": 63.5, "v0": 31.5}}


@pytest.fixture
def cityscapes(tmp_path):
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        img_dir = root / "leftImg8bit_sequence" / split / "ulm"
        img_dir.mkdir(parents=True)
        for seq in ("000001", "000002"):
            for frame in range(17, 22):  # a snippet around the annotated frame 19
                image = rng.integers(0, 200, (H, W, 3), dtype=np.uint8)
                image[int(0.75 * H):] = (255, 0, 255)  # the bonnet: must be cropped away
                cv2.imwrite(str(img_dir / f"ulm_{seq}_{frame:06d}_leftImg8bit.png"), image)
            cam_dir = root / "camera" / split / "ulm"
            cam_dir.mkdir(parents=True, exist_ok=True)
            (cam_dir / f"ulm_{seq}_000019_camera.json").write_text(json.dumps(CAMERA))
        disp_dir = root / "disparity" / split / "ulm"
        disp_dir.mkdir(parents=True)
        disp = np.zeros((H, W), np.uint16)
        disp[10:20, 10:20] = 4 * 256 + 1  # disparity 4 px -> depth 0.2 * 100 / 4 = 5 m
        cv2.imwrite(str(disp_dir / "ulm_000001_000019_disparity.png"), disp)
    return root


def test_training_triplets_crop_the_bonnet(cityscapes):
    ds = CityscapesDataset(cityscapes, "train", height=32, width=64, num_scales=2)
    assert len(ds) == 2 * 3  # frames 18, 19, 20 of each snippet
    s = ds[0]
    assert s[keys.color(0)].shape == (3, 32, 64)
    img = s[keys.color(0)]
    magenta = (img[0] > 0.95) & (img[1] < 0.05) & (img[2] > 0.95)
    assert not magenta.any()
    K = s[keys.intrinsics(0)]
    # 128x48 (after the crop) -> 64x32
    assert float(K[0, 0]) == pytest.approx(50.0)
    assert float(K[1, 1]) == pytest.approx(101.0 * 32 / 48)
    assert float(K[1, 2]) == pytest.approx((31.5 + 0.5) * 32 / 48 - 0.5)
    assert keys.DEPTH_GT not in s


def test_test_split_has_depth_from_disparity(cityscapes, tmp_path):
    cfg = load_config([], ["data.dataset=cityscapes", f"data.root={cityscapes}", "data.height=64", "data.width=128", "data.num_scales=2"])
    test = build_dataset(cfg, "test")
    assert len(test) == 1  # only ulm_000001_000019 has a disparity map
    gt = test[0][keys.DEPTH_GT][0]
    assert gt.shape == (48, 128)  # native size, top 75%
    assert float(gt[15, 15]) == pytest.approx(5.0)
    assert float(gt[30, 30]) == 0.0


def test_disparity_conversion():
    raw = np.array([[0, 1, 257, 513]], np.uint16)
    np.testing.assert_allclose(disparity_to_depth(raw, 2000.0, 0.2), [[0, 0, 400.0, 200.0]])


def test_missing_parts_are_named(cityscapes, tmp_path):
    with pytest.raises(FileNotFoundError, match="leftImg8bit_sequence/val"):
        CityscapesDataset(cityscapes, "val", height=32, width=64, num_scales=2)
    for p in (cityscapes / "camera" / "train" / "ulm").iterdir():
        p.unlink()
    ds = CityscapesDataset(cityscapes, "train", height=32, width=64, num_scales=2)
    with pytest.raises(FileNotFoundError, match="no camera file"):
        ds[0]
