"""Evaluation against LiDAR: a rosbag2 written from the shared KITTI frames (Image, CameraInfo,
PointCloud2 from the .bin scans, /tf_static from the calibration) gives the KITTI folder's numbers.

Also the pieces: PointCloud2 decoding, TF chains, the road regions, and the bad inputs (no LiDAR
topic, no way from LiDAR to camera, no scan close enough in time), each an error naming what is
missing, with nothing written.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.cli import main
from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.kitti import KittiDataset
from mcdepth_train.data.kitti_bag import kitti_camera_model, pointcloud2_message, write_kitti_bag
from mcdepth_train.data.lidar import TransformTree, pointcloud2_xyz, quaternion_from_matrix, transform_matrix
from mcdepth_train.data.rosbag import BagError
from mcdepth_train.eval.evaluate import evaluate_predictor
from mcdepth_train.eval.road_regions import road_regions

H, W = 96, 320
EVAL = ["eval.lidar_regions=true", "eval.unscaled_row=true", "eval.crop=garg"]


@pytest.fixture(scope="module")
def drive(shared_data):
    return shared_data / "kitti_sfnd_2011_09_26" / "images" / "KITTI" / "2011_09_26"


@pytest.fixture(scope="module")
def bag(drive, tmp_path_factory):
    out = tmp_path_factory.mktemp("kitti_bag") / "drive"
    assert write_kitti_bag(drive, out, frames=range(8)) == {"images": 8, "scans": 4}
    return out


def _cfg(tmp_path, *overrides):
    return load_config([], [f"run.out_dir={tmp_path / 'run'}", "run.progress=false", f"data.height={H}", f"data.width={W}",
                            "data.num_scales=1", "data.motion_topic=", *EVAL, *overrides])


def _bag_cfg(tmp_path, bag, *overrides):
    return _cfg(tmp_path, "data.dataset=rosbag", f"data.root={bag}", "eval.lidar_topic=/velodyne_points", *overrides)


def _predict(batch):
    """A fixed, image-dependent 'depth' (brighter = nearer): the same frames give the same prediction."""
    gray = batch[keys.color(0, 0)].mean(1, keepdim=True)
    return 4.0 + 40.0 * (1.0 - gray) ** 2


def test_bag_lidar_evaluation_reproduces_the_kitti_folder(drive, bag, tmp_path):
    folder = KittiDataset(drive.parent, [(drive.name, n, "l") for n in (2, 4, 6)], gt="velodyne", height=H, width=W, num_scales=1)
    cfg = _bag_cfg(tmp_path, bag, "eval.lidar_pixel_offset=-1")  # the KITTI devkit's pixel convention, as the folder loader
    from_bag = build_dataset(cfg, "test")
    assert len(from_bag) == 3  # frames 2, 4, 6: scans 0..6, and frame 0 has no previous frame
    assert from_bag.extraction[0].lidar_matched == 4 and "4 of 8 kept frames matched a scan" in from_bag.extraction[0].text()
    gt_bag, gt_kitti = from_bag[0][keys.DEPTH_GT][0].numpy(), folder[0][keys.DEPTH_GT][0].numpy()
    assert gt_bag.shape == (375, 1242) and (gt_kitti > 0).sum() > 15_000
    np.testing.assert_allclose(gt_bag, gt_kitti, atol=1e-4)  # float32 points, composed in another order
    torch.testing.assert_close(from_bag[0][keys.color(0)], folder[0][keys.color(0)])  # lossless rgb8
    torch.testing.assert_close(from_bag[0][keys.intrinsics(0)], folder[0][keys.intrinsics(0)])
    m_bag, _ = evaluate_predictor(_predict, from_bag, cfg.eval, progress=False, dataset_name="rosbag")
    m_kitti, _ = evaluate_predictor(_predict, folder, cfg.eval, progress=False, dataset_name="kitti")
    for a, b in ((m_bag.mean(), m_kitti.mean()), (m_bag.unscaled.mean(), m_kitti.unscaled.mean())):
        for region in ("all", "ground", "objects"):
            assert a[region]["images"] == b[region]["images"] == 3
            for name in ("abs_rel", "sq_rel", "rmse", "a1"):
                assert a[region][name] == pytest.approx(b[region][name], rel=1e-4), (region, name)
    # Median scaling is not a no-op here.
    assert abs(m_bag.mean()["all"]["abs_rel"] - m_bag.unscaled.mean()["all"]["abs_rel"]) > 0.01
    # ROS's own pixel convention (the default) puts the same points one pixel right and down.
    ros = build_dataset(_bag_cfg(tmp_path, bag), "test")
    gt_ros = ros[0][keys.DEPTH_GT][0].numpy()
    np.testing.assert_allclose(gt_ros[1:, 1:], gt_kitti[:-1, :-1], atol=1e-4)
    m_ros, _ = evaluate_predictor(_predict, ros, cfg.eval, progress=False, dataset_name="rosbag")
    assert m_ros.mean()["all"]["abs_rel"] == pytest.approx(m_kitti.mean()["all"]["abs_rel"], rel=0.01)
    # The regions are real: most points are road, some are objects.
    regions = road_regions(gt_bag, from_bag.load(0).K)
    valid = (gt_bag > 0) & (gt_bag < 80)
    assert 0.2 < regions["ground"].sum() / valid.sum() < 0.8 and regions["objects"].sum() > 300


def test_lidar_to_camera_from_config_when_the_bag_has_no_tf(drive, tmp_path):
    bag = tmp_path / "no_tf"
    write_kitti_bag(drive, bag, frames=range(4), with_tf=False)
    with pytest.raises(BagError, match=r"no /tf_static in the bag and no eval.lidar_to_camera.*topics in the bag: /camera/camera_info"):
        build_dataset(_bag_cfg(tmp_path, bag), "test")
    assert not list((tmp_path / "run" / "cache").rglob("*.png"))
    matrix = kitti_camera_model(drive)["cam_from_velo"].tolist()
    ds = build_dataset(_bag_cfg(tmp_path, bag, f"eval.lidar_to_camera={matrix}"), "test")
    assert len(ds) == 1 and (ds[0][keys.DEPTH_GT] > 0).sum() > 10_000


def test_bad_lidar_input_is_named_and_nothing_is_written(bag, tmp_path, capsys):
    with pytest.raises(BagError, match=r"LiDAR topic '/lidar' \(eval.lidar_topic\) not found; topics in the bag: .*/velodyne_points \(sensor_msgs/msg/PointCloud2\)"):
        build_dataset(_bag_cfg(tmp_path, bag, "eval.lidar_topic=/lidar"), "test")
    with pytest.raises(BagError, match=r"no LiDAR scan on '/velodyne_points' within 0.001 s of any of the 8 kept frames"):
        build_dataset(_bag_cfg(tmp_path, bag, "eval.lidar_stamp_tolerance_s=0.001"), "test")  # scans are 5 ms after images
    cache = tmp_path / "run" / "cache"
    assert not list(cache.rglob("*.png")) and not list(cache.rglob("*.partial*"))
    # Through the command line: one line, exit 2, no report folder.
    code = main(["eval", "--run", str(tmp_path / "run"), "--checkpoint", f"x={tmp_path / 'none.pt'}", "data.dataset=rosbag",
                 f"data.root={bag}", "eval.lidar_topic=/lidar", "run.progress=false"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "/lidar" in err and not (tmp_path / "run" / "eval").exists()


def test_road_regions_on_a_plane_with_a_box():
    K = np.array([[100.0, 0, 80], [0, 100.0, 30], [0, 0, 1]])
    h, w = 60, 160
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    ray_y = (v - K[1, 2]) / K[1, 1]
    depth = np.where(ray_y > 0.02, 1.6 / np.maximum(ray_y, 1e-9), 0.0)  # road 1.6 m below the camera
    depth[depth > 60] = 0
    box = (u >= 70) & (u < 90) & (v >= 22) & (v < 36)  # a 'car' front at 10 m, 0.3 m ... 1.4 m above the road
    depth[box] = 10.0
    regions = road_regions(depth, K)
    assert regions is not None
    road = (depth > 0) & ~box
    assert regions["ground"][road].mean() > 0.99 and not regions["ground"][box].any()
    above = box & ((1.6 - (v - K[1, 2]) / K[1, 1] * 10.0) >= 0.3)  # the box pixels at least 0.3 m above the road
    assert regions["objects"][above].all() and not regions["objects"][road].any()
    assert road_regions(np.zeros((h, w)), K) is None


def test_pointcloud2_and_tf_chain():
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    header = ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="lidar")
    pts = np.array([[1, 2, 3, 0.5], [np.nan, 0, 0, 0], [-4, 5, 6, 1]], np.float32)
    msg = ts.deserialize_cdr(ts.serialize_cdr(pointcloud2_message(ts, header, pts), "sensor_msgs/msg/PointCloud2"), "sensor_msgs/msg/PointCloud2")
    np.testing.assert_array_equal(pointcloud2_xyz(msg), [[1, 2, 3], [-4, 5, 6]])  # the NaN point dropped
    a = transform_matrix((1, 0, 0), (0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)))  # base <- lidar: 90 deg about z, 1 m ahead
    b = transform_matrix((0, 0, 2), quaternion_from_matrix(a[:3, :3]))
    np.testing.assert_allclose(b[:3, :3], a[:3, :3], atol=1e-12)
    tree = TransformTree()
    tree.add("base", "lidar", a)
    tree.add("base", "camera", b)
    cam_from_lidar = tree.lookup("camera", "lidar")
    np.testing.assert_allclose(cam_from_lidar, np.linalg.inv(b) @ a, atol=1e-12)
    np.testing.assert_allclose(cam_from_lidar @ [0, 1, 0, 1], np.linalg.inv(b) @ a @ [0, 1, 0, 1])
    assert tree.lookup("camera", "nowhere") is None
