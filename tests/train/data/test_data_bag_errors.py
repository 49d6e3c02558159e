"""Broken bags as a user meets them, through ``mcdepth-train``: one ``error:`` line and exit 2, no traceback.

Real bag files written with rosbags into tmp_path, then cut off the way a killed recorder leaves them.
"""
from __future__ import annotations

import numpy as np
import pytest

from mcdepth_train.cli import main
from mcdepth_train.data.rosbag import BagError, CutOffBag, ExtractSettings, extract_bag, write_image_bag

STAMP0 = 1_700_000_000 * 10**9
K = np.array([[200.0, 0, 192], [0, 200.0, 64], [0, 0, 1]])
FRAMES = 20  # 128x384 rgb8 = 147 kB each: rosbags closes an MCAP chunk past 1 MiB, so about 3 chunks


def _bag(path, storage="mcap"):
    rng = np.random.default_rng(0)
    frames = [(STAMP0 + i * 10**8, rng.integers(0, 255, (128, 384, 3), dtype=np.uint8)) for i in range(FRAMES)]
    write_image_bag(path, frames, K, storage=storage)
    return path


def _cli(capsys, tmp_path, *overrides):
    code = main(["stage1", f"run.out_dir={tmp_path / 'run'}", "data.dataset=rosbag", "run.progress=false", *overrides])
    err = capsys.readouterr().err
    return code, err


def _cut(bag, fraction):
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    raw = data.read_bytes()
    data.write_bytes(raw[: int(len(raw) * fraction)])


def test_cut_off_mcap_is_one_error_line_saying_how_to_recover(tmp_path, capsys):
    bag = _bag(tmp_path / "drive")
    _cut(bag, 0.6)
    code, err = _cli(capsys, tmp_path, f"data.root={bag}")
    assert code == 2
    assert err.startswith("error: cut-off recording: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "mcap recover" in err and "data.bag_recover=true" in err and "No frames from it were used" in err
    assert "File end magic is invalid" in err  # the library's own words stay, for a search
    assert not (tmp_path / "run" / "cache").exists() or not any((tmp_path / "run" / "cache").rglob("*.png"))


def test_cut_off_mcap_readable_part_with_bag_recover(tmp_path):
    bag = _bag(tmp_path / "drive")
    _cut(bag, 0.6)
    s = extract_bag(bag, tmp_path / "out", ExtractSettings(recover=True), progress=False)
    # Complete chunks before the cut are read, the rest is lost: some frames, not all.
    assert 0 < s.kept < FRAMES and s.kept + s.unmatched == s.images  # (an image whose camera_info was cut off is unmatched)
    assert "cut-off recording" in s.recovered and "cut at byte" in s.recovered and "the rest is lost" in s.text()
    assert len(list((tmp_path / "out").glob("*.png"))) == s.kept


def test_bag_without_metadata_yaml_is_a_cut_off_sqlite_recording(tmp_path, capsys):
    bag = _bag(tmp_path / "drive", storage="sqlite3")
    (bag / "metadata.yaml").unlink()  # ros2 bag record writes it only when it stops cleanly
    code, err = _cli(capsys, tmp_path, f"data.root={bag}")
    assert code == 2 and err.startswith("error: cut-off recording: ") and "ros2 bag reindex" in err and "sqlite3" in err
    s = extract_bag(bag, tmp_path / "out", ExtractSettings(recover=True), progress=False)
    assert s.kept == FRAMES  # the database itself is whole: every frame comes back


def test_truncated_sqlite_file_says_cut_off(tmp_path):
    bag = _bag(tmp_path / "drive", storage="sqlite3")
    _cut(bag, 0.5)
    with pytest.raises(CutOffBag, match=r"cut-off recording: .*sqlite3 IN.db3 .recover"):
        extract_bag(bag, tmp_path / "out", ExtractSettings(), progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial*"))


def test_missing_image_and_camera_info_topics_list_the_bag_topics(tmp_path, capsys):
    bag = _bag(tmp_path / "drive")
    code, err = _cli(capsys, tmp_path, f"data.root={bag}", "data.image_topic=/nope")
    assert code == 2 and err.count("\n") == 1
    assert "error: " in err and "image topic '/nope' not found; topics in the bag: /camera/camera_info (sensor_msgs/msg/CameraInfo)" in err
    code, err = _cli(capsys, tmp_path, f"data.root={bag}", "data.camera_info_topic=/cam/info")
    assert code == 2 and "camera_info topic '/cam/info' not found" in err and "/camera/image_raw (sensor_msgs/msg/Image)" in err


def test_bag_path_that_does_not_exist(tmp_path, capsys):
    code, err = _cli(capsys, tmp_path, f"data.root={tmp_path / 'no_such_bag'}")
    assert code == 2 and err == f"error: bag not found: {tmp_path / 'no_such_bag'} (no such file or folder)\n"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(BagError, match="bag not found"):
        main(["stage1", "--debug", f"run.out_dir={tmp_path / 'run'}", "data.dataset=rosbag", f"data.root={tmp_path / 'x'}"])
