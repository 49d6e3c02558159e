"""Image folders and video files with an intrinsics YAML (the real dash-cam clip in ../shared/data)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.folder import FolderDataset, extract_video, intrinsics_matrix, load_intrinsics
from mcdepth_train.data.synthetic import SceneParams, render_sequence

SMALL = dict(height=64, width=192, num_scales=2)
# Derived from the clip's chessboards (SOURCE.md): not from the source, good enough to undistort.
UDACITY_YAML = """fx: 1158.8
fy: 1154.1
cx: 669.6
cy: 388.1
width: 1280
height: 720
distortion: [-0.257, 0.043, -0.0007, 0.0001, -0.115]
"""


def test_dashcam_video_trains_through_build_dataset(shared_data, tmp_path):
    video = shared_data / "udacity_carnd_clip" / "test_video.mp4"
    intr = tmp_path / "udacity.yaml"
    intr.write_text(UDACITY_YAML)
    cfg = load_config([], ["data.dataset=folder", f"data.root={video}", f"data.intrinsics_file={intr}", f"run.out_dir={tmp_path / 'run'}",
                           "data.height=64", "data.width=192", "data.num_scales=2", "run.progress=false"])
    test = build_dataset(cfg, "test")
    assert len(test) == 36  # 38 decoded frames, first and last lack a neighbour
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert len(train) + len(val) == 36 and len(val) == 4
    s = test[0]
    assert s[keys.color(0)].shape == (3, 64, 192)
    assert float(s[keys.intrinsics(0)][0, 0]) == pytest.approx(1158.8 * 192 / 1280, rel=1e-5)
    # Undistortion changes the frame (the clip is not rectified).
    raw = test.load(0)
    plain = cv2.imread(str(test.sequences[0][1][1]))[..., ::-1]
    assert raw.images[0].shape == plain.shape and not np.array_equal(raw.images[0], plain)


def test_video_stride_and_reuse(shared_data, tmp_path):
    video = shared_data / "udacity_carnd_clip" / "test_video.mp4"
    summary = extract_video(video, tmp_path / "v", frame_stride=3, progress=False)
    assert summary["decoded"] == 38 and summary["frames"] == 13 and summary["dropped_stride"] == 25
    assert len(list((tmp_path / "v").glob("*.png"))) == 13
    assert extract_video(video, tmp_path / "v", frame_stride=3, progress=False) == summary  # reused
    with pytest.raises(FileNotFoundError, match="not found"):
        extract_video(tmp_path / "missing.mp4", tmp_path / "w", progress=False)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="junk.mp4"):
        extract_video(tmp_path / "junk.mp4", tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists() and not list(tmp_path.glob("w.partial*"))


def test_folder_of_sequences_with_scaled_intrinsics(tmp_path):
    seq = render_sequence(SceneParams(height=64, width=192, num_frames=5), seed=4)
    for name in ("a", "b"):
        (tmp_path / "frames" / name).mkdir(parents=True)
        for i, f in enumerate(seq.frames):
            cv2.imwrite(str(tmp_path / "frames" / name / f"{i:04d}.png"), f.image[..., ::-1])
    K = seq.K
    # Intrinsics given for twice the frame size: the loader scales them.
    (tmp_path / "cam.yaml").write_text(f"fx: {2 * K[0, 0]}\nfy: {2 * K[1, 1]}\ncx: {2 * K[0, 2] + 0.5}\ncy: {2 * K[1, 2] + 0.5}\nwidth: 384\nheight: 128\n")
    ds = FolderDataset(tmp_path / "frames", str(tmp_path / "cam.yaml"), "all", **SMALL)
    assert len(ds) == 6 and [n for n, _ in ds.sequences] == ["a", "b"]
    s = ds[4]
    assert s[keys.SEQUENCE] == "b" and int(s[keys.FRAME]) == 2
    np.testing.assert_allclose(s[keys.intrinsics(0)].numpy(), K, rtol=1e-5)
    np.testing.assert_allclose(s[keys.color(1)].permute(1, 2, 0).numpy(), seq.frames[3].image / 255.0, atol=1e-6)
    assert len(FolderDataset(tmp_path / "frames", str(tmp_path / "cam.yaml"), "all", frame_stride=2, **SMALL)) == 2


def test_ros_camera_info_yaml(tmp_path):
    (tmp_path / "ci.yaml").write_text("image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [500, 0, 320, 0, 510, 240, 0, 0, 1]\n"
                                      "distortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, 0, 0, 0, 0]\n")
    intr = load_intrinsics(tmp_path / "ci.yaml")
    assert (intr["fx"], intr["fy"], intr["cx"], intr["cy"], intr["width"]) == (500, 510, 320, 240, 640)
    assert intr["distortion"] == [0.1, 0, 0, 0, 0]
    np.testing.assert_allclose(intrinsics_matrix(intr, 320, 240)[0], [250, 0, 159.75])


def test_bad_folder_input_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no frames"):
        FolderDataset(tmp_path / "empty", "", **SMALL)
    (tmp_path / "one").mkdir()
    cv2.imwrite(str(tmp_path / "one" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="intrinsics_file"):
        FolderDataset(tmp_path / "one", "", **SMALL)
    (tmp_path / "bad.yaml").write_text("fx: 1\n")
    with pytest.raises(ValueError, match="missing fy, cx, cy"):
        load_intrinsics(tmp_path / "bad.yaml")
    (tmp_path / "ok.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\n")
    with pytest.raises(ValueError, match="no all samples"):
        FolderDataset(tmp_path / "one", str(tmp_path / "ok.yaml"), "all", **SMALL)
