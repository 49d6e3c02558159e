"""``mcdepth-train calibrate`` on the shared dash-cam's chessboards, then the clip undistorted and trained on.

Detection + calibration of the 20 boards took 0.8 s on one core (so no subsampling); the two-step
training from the clip at 64x192 a few seconds more.
"""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from mcdepth_train.cli import main
from mcdepth_train.data.calibration import calibrate_chessboards, find_corners, parse_pattern
from mcdepth_train.data.errors import DataError
from mcdepth_train.data.folder import FolderDataset, load_intrinsics
from tests.train.scenes import register_tiny_encoder


@pytest.fixture(scope="module")
def clip(shared_data):
    return shared_data / "udacity_carnd_clip"


@pytest.fixture(scope="module")
def cam_yaml(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "cam.yaml"
    assert main(["calibrate", "--chessboard", str(clip / "camera_cal"), "--pattern", "9x6", "--square", "0.025", "--out", str(out)]) == 0
    return out


def _bend(corners, pattern=(9, 6)):
    """Largest distance (px) of a board corner from the straight line through its row: 0 for a pinhole."""
    pts = corners.reshape(pattern[1], pattern[0], 2).astype(np.float64)
    worst = 0.0
    for row in pts:
        centred = row - row.mean(0)
        normal = np.linalg.svd(centred)[2][1]
        worst = max(worst, float(np.abs(centred @ normal).max()))
    return worst


def test_calibrate_writes_the_intrinsics_the_folder_source_reads(cam_yaml):
    intr = load_intrinsics(cam_yaml)
    assert intr["fx"] == pytest.approx(1159, abs=3) and intr["fy"] == pytest.approx(1154, abs=3)
    assert intr["cx"] == pytest.approx(669.6, abs=3) and intr["cy"] == pytest.approx(388.1, abs=3)
    assert (intr["width"], intr["height"]) == (1280, 720) and len(intr["distortion"]) == 5
    assert intr["distortion"][0] == pytest.approx(-0.257, abs=0.01)
    text = cam_yaml.read_text()
    assert "images_used: 15" in text and "pattern: 9x6" in text
    import yaml

    assert yaml.safe_load(text)["rms_px"] < 1.0


def test_folder_source_undistorts_with_it(clip, cam_yaml, tmp_path):
    # Three copies of one board image as a "sequence": the loaded frames are undistorted, so the
    # board's rows, bent by the lens, become straight lines.
    for i in range(3):
        shutil.copy(clip / "camera_cal" / "calibration2.jpg", tmp_path / f"{i:03d}.jpg")
    ds = FolderDataset(tmp_path, str(cam_yaml), "all", height=64, width=192, num_scales=1)
    undistorted = cv2.cvtColor(ds.load(0).images[0], cv2.COLOR_RGB2GRAY)
    raw = cv2.imread(str(clip / "camera_cal" / "calibration2.jpg"), cv2.IMREAD_GRAYSCALE)
    corners = find_corners(raw, (9, 6))
    before, after = _bend(corners), _bend(find_corners(undistorted, (9, 6)))
    # The same calibration applied to the corner points (OpenCV's undistortPoints): what the image
    # undistortion must reproduce. Its 2.6 px left over is the board's own unflatness and the model.
    intr = load_intrinsics(cam_yaml)
    K = np.array([[intr["fx"], 0, intr["cx"]], [0, intr["fy"], intr["cy"]], [0, 0, 1]])
    ideal = _bend(cv2.undistortPoints(corners, K, np.array(intr["distortion"]), P=K))
    assert before > 6.0 and after < before / 2.5 and abs(after - ideal) < 0.2, (before, after, ideal)


def test_train_a_few_steps_from_the_clip(clip, cam_yaml, tmp_path):
    tiny = register_tiny_encoder()
    code = main(["stage1", f"run.out_dir={tmp_path}", "run.progress=false", "data.dataset=folder", f"data.root={clip / 'test_video.mp4'}",
                 f"data.intrinsics_file={cam_yaml}", "data.height=64", "data.width=192", f"model.encoder={tiny}", f"model.pose_encoder={tiny}",
                 "stage1.epochs=1", "stage1.batch_size=2", "stage1.max_steps=2", "stage1.val_batches=1",
                 "stage1.depth_pose_epochs=0", "stage1.motion_only_epochs=0"])
    assert code == 0
    summary = json.loads((tmp_path / "stage1" / "summary.json").read_text())
    assert summary["steps"] == 2 and 0 < summary["final_train_scalars"]["photometric"] < 1
    assert (tmp_path / "stage1" / "checkpoints" / "last.pt").is_file()


def test_bad_calibration_input(clip, tmp_path, capsys):
    assert parse_pattern("9x6") == (9, 6)
    with pytest.raises(DataError, match="9by6"):
        parse_pattern("9by6")
    with pytest.raises(DataError, match="not found"):
        calibrate_chessboards(tmp_path / "none", (9, 6))
    # The wrong pattern: no board found, and the message says what --pattern means.
    assert main(["calibrate", "--chessboard", str(clip / "camera_cal"), "--pattern", "7x5", "--max-images", "4", "--out", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "INNER corners" in err and not (tmp_path / "c.yaml").exists()
