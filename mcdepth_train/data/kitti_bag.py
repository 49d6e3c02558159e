"""Write a KITTI raw drive as a rosbag2: images, CameraInfo, Velodyne PointCloud2 and /tf_static.

What a car with a camera and a LiDAR records, built from the KITTI files, so the bag path (training
and LiDAR evaluation) can be checked against the KITTI folder path on the same frames:

- ``sensor_msgs/Image`` rgb8 of image_02 at 10 Hz on ``image_topic`` (frame ``camera``),
- ``sensor_msgs/CameraInfo``: K = P_rect_02[:3,:3], D = 0 (the images are rectified), R = R_rect_00,
  P = P_rect_02, so ROS's ``P @ [R X_cam; 1]`` is the devkit's ``P_rect_02 @ R_rect_00 @ X_cam0``,
- ``sensor_msgs/PointCloud2`` (x, y, z, intensity float32) of each ``velodyne_points/data/*.bin``
  on ``lidar_topic`` (frame ``velodyne``), stamped ``lidar_offset_s`` after its image,
- one ``tf2_msgs/TFMessage`` on ``/tf_static``: camera <- velodyne from calib_velo_to_cam.txt.

The raw KITTI timestamps are not used (the shared samples have none): frame n is at
``stamp0 + n * 0.1 s``. Written under ``<out>.partial-<pid>`` and renamed when complete.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..io import partial_dir, publish_dir
from .kitti import find_calib_dir, read_calib_file, read_image, read_velodyne
from .lidar import quaternion_from_matrix
from .rosbag import CAMERA_INFO_TYPE, IMAGE_TYPES, POINTCLOUD_TYPE, TF_STATIC, camera_info_message

STAMP0_NS = 1_317_000_000 * 10**9  # 2011-09-26, the drive's date (any fixed start works)


def kitti_camera_model(calib_dir: Path) -> dict:
    """P_rect_02, R_rect_00 and camera(0)_from_velodyne of a KITTI calibration folder."""
    cam = read_calib_file(calib_dir / "calib_cam_to_cam.txt")
    velo = read_calib_file(calib_dir / "calib_velo_to_cam.txt")
    T = np.eye(4)
    T[:3, :3] = velo["R"].reshape(3, 3)
    T[:3, 3] = velo["T"]
    return {"P": cam["P_rect_02"].reshape(3, 4), "R": cam["R_rect_00"].reshape(3, 3), "cam_from_velo": T}


def pointcloud2_message(ts, header, points: np.ndarray):
    """PointCloud2 of [N,4] float32 (x, y, z, intensity)."""
    T = ts.types
    field = T["sensor_msgs/msg/PointField"]
    pts = np.ascontiguousarray(points, dtype=np.float32)
    fields = [field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(("x", "y", "z", "intensity"))]
    return T[POINTCLOUD_TYPE](header=header, height=1, width=len(pts), fields=fields, is_bigendian=False, point_step=16,
                              row_step=16 * len(pts), data=pts.view(np.uint8).reshape(-1), is_dense=True)


def tf_static_message(ts, header, child: str, parent_from_child: np.ndarray):
    T = ts.types
    x, y, z, w = quaternion_from_matrix(parent_from_child[:3, :3])
    tr = parent_from_child[:3, 3]
    transform = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=float(tr[0]), y=float(tr[1]), z=float(tr[2])),
                                                 rotation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
    stamped = T["geometry_msgs/msg/TransformStamped"](header=header, child_frame_id=child, transform=transform)
    return T["tf2_msgs/msg/TFMessage"](transforms=[stamped])


def write_kitti_bag(drive_dir, out, *, root: Optional[Path] = None, frames: Optional[Sequence[int]] = None, storage: str = "sqlite3",
                    image_topic: str = "/camera/image_raw", camera_info_topic: str = "/camera/camera_info",
                    lidar_topic: str = "/velodyne_points", with_scans: bool = True, with_tf: bool = True,
                    lidar_offset_s: float = 0.005, camera_frame: str = "camera", lidar_frame: str = "velodyne") -> dict:
    """Write the drive at ``drive_dir`` (holding image_02/data and velodyne_points/data) as a rosbag2.

    Args:
        root: where the calibration search stops (default: the drive's parent).
        frames: frame numbers to write (default: every image).
    Returns:
        {"images": n, "scans": n}.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    drive_dir, out = Path(drive_dir), Path(out)
    calib = kitti_camera_model(find_calib_dir(drive_dir.resolve(), Path(root or drive_dir.parent).resolve()))
    images = {int(p.stem): p for p in (drive_dir / "image_02" / "data").glob("*.png")}
    frames = sorted(images) if frames is None else list(frames)
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    partial = partial_dir(out)
    partial.rmdir()  # the rosbag2 writer creates the folder itself
    counts = {"images": 0, "scans": 0}

    def header(stamp: int, frame_id: str):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame_id)

    try:
        with Writer(partial, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3) as w:
            img_conn = w.add_connection(image_topic, IMAGE_TYPES[0], typestore=ts)
            info_conn = w.add_connection(camera_info_topic, CAMERA_INFO_TYPE, typestore=ts)
            lidar_conn = w.add_connection(lidar_topic, POINTCLOUD_TYPE, typestore=ts) if with_scans else None
            if with_tf:
                tf_conn = w.add_connection(TF_STATIC, "tf2_msgs/msg/TFMessage", typestore=ts)
                msg = tf_static_message(ts, header(STAMP0_NS, camera_frame), lidar_frame, calib["cam_from_velo"])
                w.write(tf_conn, STAMP0_NS, ts.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))
            for n in frames:
                stamp = STAMP0_NS + n * 100_000_000
                rgb = read_image(images[n])
                h, wd = rgb.shape[:2]
                hdr = header(stamp, camera_frame)
                image = T[IMAGE_TYPES[0]](header=hdr, height=h, width=wd, encoding="rgb8", is_bigendian=0, step=wd * 3, data=rgb.reshape(-1))
                w.write(img_conn, stamp, ts.serialize_cdr(image, IMAGE_TYPES[0]))
                info = camera_info_message(ts, hdr, calib["P"][:, :3], wd, h, R=calib["R"], P=calib["P"])
                w.write(info_conn, stamp, ts.serialize_cdr(info, CAMERA_INFO_TYPE))
                counts["images"] += 1
                scan = drive_dir / "velodyne_points" / "data" / f"{n:010d}.bin"
                if lidar_conn is not None and scan.is_file():
                    t_scan = stamp + int(lidar_offset_s * 1e9)
                    cloud = pointcloud2_message(ts, header(t_scan, lidar_frame), read_velodyne(scan))
                    w.write(lidar_conn, t_scan, ts.serialize_cdr(cloud, POINTCLOUD_TYPE))
                    counts["scans"] += 1
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish_dir(partial, out, replace=False)
    return counts
