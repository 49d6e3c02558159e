"""The shipped configs load, pass every value check, and say what they promise."""
from __future__ import annotations

from pathlib import Path

import pytest

from mcdepth_train.config import check_values, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "mcdepth_train" / "configs"


@pytest.mark.parametrize("files", [["kitti.yaml"], ["kitti.yaml", "kitti_cpu.yaml"], ["rosbag.yaml"], ["demo.yaml"]])
def test_shipped_configs_load_and_pass_check_values(files):
    cfg = load_config([CONFIGS / f for f in files])
    assert check_values(cfg) == []


def test_kitti_is_the_authors_schedule_and_the_cpu_layer_shrinks_it():
    gpu = load_config([CONFIGS / "kitti.yaml"])
    assert (gpu.data.dataset, gpu.data.height, gpu.data.width) == ("kitti", 192, 640)
    assert (gpu.stage1.epochs, gpu.stage1.batch_size, gpu.stage1.lr, gpu.stage1.lr_milestones) == (15, 12, 2e-4, [10])
    assert (gpu.dsa.epochs, gpu.dsa.batch_size, gpu.dsa.lr_milestones, gpu.stage3.lr) == (20, 32, [3, 10], 2e-5)
    assert gpu.eval.protocol == "kitti_eigen" and gpu.run.device == "cuda"
    cpu = load_config([CONFIGS / "kitti.yaml", CONFIGS / "kitti_cpu.yaml"])
    assert (cpu.run.device, cpu.data.height, cpu.data.width, cpu.model.motion_net) == ("cpu", 96, 320, "raft_small")
    assert (cpu.export.height, cpu.export.width) == (96, 320) and cpu.data.dataset == "kitti"


def test_every_rosbag_template_key_is_commented():
    # A fleet engineer copies this file: every data key it sets says what it does.
    lines = [line for line in (CONFIGS / "rosbag.yaml").read_text().splitlines() if line.startswith("  ") and ":" in line]
    data_keys = [line for line in lines if line.split(":")[0].strip() in
                 ("root", "image_topic", "camera_info_topic", "frame_stride", "motion_topic", "min_speed", "undistort", "height", "device")]
    assert len(data_keys) >= 9 and all("#" in line for line in data_keys)
    cfg = load_config([CONFIGS / "rosbag.yaml"])
    assert cfg.data.dataset == "rosbag" and cfg.data.undistort and cfg.data.min_speed > 0


def test_kitti_cpu_config_reads_the_shared_sequence(shared_data, tmp_path):
    from mcdepth_train.data import build_dataset, keys

    root = shared_data / "kitti_sfnd_2011_09_26" / "images" / "KITTI"
    cfg = load_config([CONFIGS / "kitti.yaml", CONFIGS / "kitti_cpu.yaml"], [f"data.root={root}", f"run.out_dir={tmp_path}"])
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert (len(train), len(val)) == (68, 8)  # 76 frames with both neighbours, the last 10% held out
    assert train[0][keys.color(0)].shape == (3, 96, 320)


def test_rosbag_template_runs_on_a_real_bag_with_only_paths_and_topics_changed(shared_data, tmp_path):
    # The KITTI drive written as a bag: train from it, and evaluate against its LiDAR, with the template.
    from mcdepth_train.data import build_dataset, keys
    from mcdepth_train.data.kitti_bag import write_kitti_bag

    bag = tmp_path / "bag"
    write_kitti_bag(shared_data / "kitti_sfnd_2011_09_26" / "images" / "KITTI" / "2011_09_26", bag, frames=range(12))
    cfg = load_config([CONFIGS / "rosbag.yaml"], [f"data.root={bag}", f"eval.root={bag}", "eval.lidar_topic=/velodyne_points",
                                                  f"run.out_dir={tmp_path / 'run'}", "run.progress=false", "run.device=cpu"])
    train = build_dataset(cfg, "train")
    assert len(train) >= 8 and train[0][keys.color(0)].shape == (3, 192, 320)
    from mcdepth_train.eval.run import evaluation_config

    test = build_dataset(evaluation_config(cfg), "test")
    assert len(test) == 3 and test.extraction[0].lidar_matched == 4  # scans of frames 0, 2, 4, 6; frame 0 has no neighbour
