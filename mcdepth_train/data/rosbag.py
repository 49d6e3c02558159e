"""Rosbag1/rosbag2 image input (through the ``rosbags`` library, no ROS install) and a rosbag2 writer.

Training from a bag happens in two steps. :func:`extract_bag` reads an image topic
(``sensor_msgs/Image`` or ``CompressedImage``) and a ``sensor_msgs/CameraInfo`` topic, matches each
image with the nearest camera_info in time (within a tolerance), keeps every n-th frame, drops
frames where the vehicle stands still (mean image change, or a ``nav_msgs/Odometry`` /
``geometry_msgs/TwistStamped`` topic when given), undistorts with the CameraInfo's D/K, and writes
an image folder (PNG frames + ``intrinsics.yaml`` + ``frames.json``) that :mod:`.folder` reads.
The folder is written under a temporary name and renamed when complete, and ``frames.json`` holds a
fingerprint of the bag and the settings, so a changed bag or setting extracts again.

Decoding honours ``step`` (row padding), ``is_bigendian`` and the encodings rgb8, bgr8, rgba8,
bgra8, mono8, mono16, bayer_{rggb,bggr,gbrg,grbg}8 and yuv422 (uyvy) / yuv422_yuy2; 16UC1 and
32FC1 (depth images) are rejected for colour. Frames that cannot be decoded are skipped and counted
in the summary.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np
import yaml

from ..io import partial_dir, publish_dir
from .bag_recovery import RecoveredReader, cut_off_message, looks_cut_off, storage_files
from .errors import DataError
from .lidar import TransformTree


class BagError(DataError):
    """A bag that cannot be used: missing, corrupt, wrong topic, no intrinsics."""


class CutOffBag(BagError):
    """A recording that ends early (recorder stopped before it finished writing); see bag_recovery."""


class UnsupportedEncoding(ValueError):
    """An image encoding that cannot be turned into RGB."""


IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
MOTION_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/TwistStamped")
_ROS1 = {"sensor_msgs/Image": IMAGE_TYPES[0], "sensor_msgs/CompressedImage": IMAGE_TYPES[1], "sensor_msgs/CameraInfo": CAMERA_INFO_TYPE,
         "nav_msgs/Odometry": MOTION_TYPES[0], "geometry_msgs/TwistStamped": MOTION_TYPES[1]}

_BAYER = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,  # OpenCV names Bayer patterns by the second row's start
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1, "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2}
_DEPTH_ENCODINGS = ("16UC1", "32FC1", "16SC1", "32SC1", "64FC1")


def _norm_type(msgtype: str) -> str:
    return _ROS1.get(msgtype, msgtype)


# ------------------------------------------------------------------------------------ decoding
def decode_image(encoding: str, height: int, width: int, step: int, is_bigendian: int, data) -> np.ndarray:
    """A ``sensor_msgs/Image`` payload as [H,W,3] uint8 RGB.

    Args:
        encoding, height, width, step, is_bigendian, data: the message fields; ``step`` is the row
            length in bytes, which may exceed width * bytes per pixel (row padding).
    Raises:
        UnsupportedEncoding: depth encodings (16UC1, 32FC1, ...) or unknown ones.
        ValueError: a payload shorter than height * step.
    """
    enc = encoding.strip()
    low = enc.lower()
    if enc.upper() in _DEPTH_ENCODINGS:
        raise UnsupportedEncoding(f"encoding {enc!r} is a depth/scalar image, not colour")
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if height <= 0 or width <= 0:
        raise ValueError(f"image of size {width}x{height}")
    if buf.size < height * step:
        raise ValueError(f"image data has {buf.size} bytes, expected height*step = {height}*{step}")
    if low in _BAYER:
        rows = buf[: height * step].reshape(height, step)[:, :width]
        return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER[low])
    if low not in _CHANNELS:
        raise UnsupportedEncoding(f"encoding {enc!r} is not supported (supported: {', '.join(sorted(_CHANNELS) + sorted(_BAYER))})")
    channels = _CHANNELS[low]
    if low == "mono16":
        rows = buf[: height * step].reshape(height, step)[:, : width * 2]
        mono = rows.copy().view(">u2" if is_bigendian else "<u2").reshape(height, width)
        gray = (mono >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    rows = buf[: height * step].reshape(height, step)[:, : width * channels]
    pixels = np.ascontiguousarray(rows).reshape(height, width, channels)
    if low == "rgb8":
        return pixels
    if low == "bgr8":
        return pixels[..., ::-1].copy()
    if low == "rgba8":
        return pixels[..., :3].copy()
    if low == "bgra8":
        return pixels[..., 2::-1].copy()
    if low == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if low in ("yuv422", "uyvy"):
        return cv2.cvtColor(pixels, cv2.COLOR_YUV2RGB_UYVY)
    return cv2.cvtColor(pixels, cv2.COLOR_YUV2RGB_YUY2)


def decode_compressed(data) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` payload (JPEG/PNG) as [H,W,3] uint8 RGB."""
    image = cv2.imdecode(np.frombuffer(memoryview(data), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnsupportedEncoding("compressed image could not be decoded")
    return image[..., ::-1].copy()


def decode_message(msgtype: str, msg) -> np.ndarray:
    if _norm_type(msgtype) == IMAGE_TYPES[1]:
        return decode_compressed(msg.data)
    return decode_image(msg.encoding, int(msg.height), int(msg.width), int(msg.step), int(msg.is_bigendian), msg.data)


def _stamp_ns(msg, fallback: int) -> int:
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return fallback
    sec = getattr(stamp, "sec", getattr(stamp, "secs", 0))
    nsec = getattr(stamp, "nanosec", getattr(stamp, "nsecs", 0))
    ns = int(sec) * 1_000_000_000 + int(nsec)
    return ns if ns > 0 else fallback


# ------------------------------------------------------------------------------------ writing
def write_image_bag(
    path,
    frames: Iterable[tuple[int, np.ndarray]],
    K: np.ndarray,
    *,
    storage: str = "sqlite3",
    compressed: bool = False,
    image_topic: str = "/camera/image_raw",
    camera_info_topic: str = "/camera/camera_info",
    encoding: str = "rgb8",
    D: Sequence[float] = (),
    frame_id: str = "camera",
    ego_speeds: Optional[Sequence[float]] = None,
    odom_topic: str = "/odom",
) -> int:
    """Write a rosbag2 with one image (and one CameraInfo) per frame; return the number of frames.

    Args:
        path: bag folder to create (must not exist).
        frames: (stamp in ns, [H,W,3] uint8 RGB) pairs.
        K: [3,3] intrinsics; D: plumb_bob distortion (k1, k2, p1, p2, k3) or empty.
        storage: 'sqlite3' or 'mcap'. compressed: write CompressedImage (PNG) instead of Image.
        encoding: Image encoding for raw images: 'rgb8', 'bgr8' or 'mono8'.
        ego_speeds: optional forward speed per frame (m/s), written as nav_msgs/Odometry on odom_topic.
    The bag is written to ``<path>.partial-<pid>`` and renamed when complete.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    if storage not in ("sqlite3", "mcap"):
        raise ValueError(f"storage: expected 'sqlite3' or 'mcap', got {storage!r}")
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise ValueError(f"encoding: expected 'rgb8', 'bgr8' or 'mono8', got {encoding!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} exists already")
    partial = partial_dir(path)
    partial.rmdir()  # the rosbag2 writer creates the folder itself
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    count = 0
    try:
        with Writer(partial, version=9, storage_plugin=plugin) as writer:
            img_type = IMAGE_TYPES[1] if compressed else IMAGE_TYPES[0]
            img_conn = writer.add_connection(image_topic, img_type, typestore=ts)
            info_conn = writer.add_connection(camera_info_topic, CAMERA_INFO_TYPE, typestore=ts)
            odom_conn = writer.add_connection(odom_topic, MOTION_TYPES[0], typestore=ts) if ego_speeds is not None else None
            for i, (stamp, rgb) in enumerate(frames):
                header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=int(stamp // 1_000_000_000), nanosec=int(stamp % 1_000_000_000)), frame_id=frame_id)
                h, w = rgb.shape[:2]
                if compressed:
                    ok, png = cv2.imencode(".png", rgb[..., ::-1])
                    msg = T[img_type](header=header, format="rgb8; png compressed bgr8", data=np.frombuffer(png.tobytes(), np.uint8))
                else:
                    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]}[encoding]
                    pixels = np.ascontiguousarray(pixels)
                    msg = T[img_type](header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * pixels.shape[2], data=pixels.reshape(-1))
                writer.write(img_conn, stamp, ts.serialize_cdr(msg, img_type))
                writer.write(info_conn, stamp, ts.serialize_cdr(camera_info_message(ts, header, K, w, h, D), CAMERA_INFO_TYPE))
                if odom_conn is not None:
                    odom = _odometry_message(ts, header, float(ego_speeds[i]))
                    writer.write(odom_conn, stamp, ts.serialize_cdr(odom, MOTION_TYPES[0]))
                count += 1
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # never leave a half-written bag
        raise
    publish_dir(partial, path, replace=False)
    return count


def camera_info_message(ts, header, K: np.ndarray, width: int, height: int, D: Sequence[float] = (),
                        R: Optional[np.ndarray] = None, P: Optional[np.ndarray] = None):
    """A CameraInfo; R (rectification, default I) and P (projection, default [K|0]) as ROS defines them."""
    T = ts.types
    K = np.asarray(K, dtype=np.float64)
    if P is None:
        P = np.zeros((3, 4))
        P[:, :3] = K
    R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
    return T[CAMERA_INFO_TYPE](
        header=header, height=height, width=width, distortion_model="plumb_bob",
        d=np.asarray(D if len(D) else [0.0] * 5, dtype=np.float64), k=K.reshape(-1), r=R.reshape(-1),
        p=np.asarray(P, dtype=np.float64).reshape(-1),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _odometry_message(ts, header, speed: float):
    T = ts.types
    vec = T["geometry_msgs/msg/Vector3"]
    twist = T["geometry_msgs/msg/Twist"](linear=vec(x=speed, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0))
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0), orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    return T[MOTION_TYPES[0]](
        header=header, child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


# ------------------------------------------------------------------------------------ reading
@dataclass
class ExtractSettings:
    """How frames are taken from a bag (the matching DataConfig fields have the same names)."""

    image_topic: str = "/camera/image_raw"
    camera_info_topic: str = "/camera/camera_info"
    stamp_tolerance_s: float = 0.02
    frame_stride: int = 1
    min_image_change: float = 0.0
    undistort: bool = True
    motion_topic: str = "auto"  # Odometry/TwistStamped topic; 'auto' = the bag's only one, if exactly one; '' = none
    recover: bool = False  # a cut-off recording: read the part that was written instead of refusing it
    # LiDAR ground truth (evaluation): scans on lidar_topic projected into each kept frame
    lidar_topic: str = ""  # sensor_msgs/PointCloud2; '' = none
    lidar_to_camera: Optional[list] = None  # camera_from_lidar 4x4 rows; None = from /tf_static
    lidar_stamp_tolerance_s: float = 0.05
    lidar_pixel_offset: int = 0  # -1: the KITTI devkit's round(u) - 1
    min_speed: float = 0.0  # m/s; frames slower than this are dropped when motion_topic is set
    intrinsics: Optional[dict] = None  # fx, fy, cx, cy[, distortion]: used when camera_info is missing


@dataclass
class ExtractSummary:
    bag: str
    out_dir: str
    images: int = 0
    kept: int = 0
    unmatched: int = 0
    stride_dropped: int = 0
    standstill_dropped: int = 0
    unsupported: dict = field(default_factory=dict)  # reason -> count
    width: int = 0
    height: int = 0
    reused: bool = False
    motion_topic: str = ""
    recovered: str = ""  # set when a cut-off recording was read up to its cut (data.bag_recover)
    lidar_topic: str = ""
    lidar_scans: int = 0
    lidar_matched: int = 0  # kept frames with a scan within the tolerance (their depth_gt/*.npz)
    lidar_tolerance_s: float = 0.0

    def text(self) -> str:
        bad = ", ".join(f"{n} x {r}" for r, n in self.unsupported.items()) or "none"
        return (f"{self.bag}: {self.images} images, kept {self.kept} ({self.width}x{self.height}); dropped: "
                f"{self.unmatched} without camera_info, {self.stride_dropped} by stride, {self.standstill_dropped} standing still"
                f"{' (speed on ' + self.motion_topic + ')' if self.motion_topic else ''}; "
                f"undecodable: {bad}{'; ' + self.recovered if self.recovered else ''}{'; ' + self.lidar_text() if self.lidar_topic else ''}")

    def lidar_text(self) -> str:
        return (f"LiDAR ground truth: {self.lidar_matched} of {self.kept} kept frames matched a scan on {self.lidar_topic} "
                f"within {self.lidar_tolerance_s:g} s ({self.lidar_scans} scans)")


def _open_reader(bag: Path, recover: bool = False):
    """An open reader of ``bag``: rosbags' AnyReader, or for a cut-off recording with ``recover`` a
    RecoveredReader of what was written (else a CutOffBag error saying how to recover it)."""
    from rosbags.highlevel import AnyReader

    if not bag.exists():
        raise BagError(f"bag not found: {bag} (no such file or folder)")
    error: Optional[BaseException] = None
    if not looks_cut_off(bag):
        try:
            reader = AnyReader([bag])
            reader.open()
            return reader
        except Exception as exc:  # rosbags raises several reader errors; all mean the same to the user
            error = exc
    if looks_cut_off(bag, error):
        detail = str(error) if error is not None else "no metadata.yaml beside " + ", ".join(p.name for p in storage_files(bag))
        if recover:
            return RecoveredReader(bag)
        raise CutOffBag(cut_off_message(bag, detail)) from error
    raise BagError(f"cannot read bag {bag}: {error}") from error


def find_bags(root) -> list[Path]:
    """The bags at ``root``: a rosbag2 folder or ``.bag`` file itself, or every one inside a folder
    (``*.bag`` files and sub-folders with a ``metadata.yaml``), sorted by name. Each is one sequence."""
    root = Path(root)
    if not root.exists():
        raise BagError(f"bag not found: {root} (no such file or folder)")
    if root.is_file() or (root / "metadata.yaml").is_file() or storage_files(root):
        return [root]  # (a folder with .mcap/.db3 files but no metadata.yaml: a cut-off rosbag2)
    bags = sorted(list(root.glob("*.bag")) + [d for d in root.iterdir() if d.is_dir() and ((d / "metadata.yaml").is_file() or storage_files(d))],
                  key=lambda p: p.name)
    if not bags:
        raise BagError(f"{root}: not a bag, and no bags inside (expected *.bag files or rosbag2 folders with metadata.yaml)")
    return bags


def list_topics(bag, recover: bool = False) -> dict[str, str]:
    """topic -> message type of every topic in the bag."""
    reader = _open_reader(Path(bag), recover)
    try:
        return {topic: info.msgtype for topic, info in reader.topics.items()}
    finally:
        reader.close()


def _fingerprint(bag: Path, settings: ExtractSettings) -> str:
    h = hashlib.sha1(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    files = sorted(p for p in ([bag] if bag.is_file() else bag.rglob("*")) if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _intrinsics_from_info(info) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    # ROS 2 names the fields k/d, ROS 1 K/D.
    K = np.asarray(info.k if hasattr(info, "k") else info.K, dtype=np.float64).reshape(3, 3)
    D = np.asarray(info.d if hasattr(info, "d") else info.D, dtype=np.float64).reshape(-1)
    return K, D, (int(info.width), int(info.height))


def _guarded(messages, bag: Path, summary: "ExtractSummary", recover: bool, what: str = "image"):
    """The reader's message iterator, with read failures turned into a BagError naming the bag.

    A recording cut off mid-way ends the iteration where it was cut when ``recover`` is set (noted
    in the summary), else raises a CutOffBag that says how many messages had been read.
    """
    n = 0
    try:
        for item in messages:
            n += 1
            yield item
    except Exception as exc:
        if looks_cut_off(bag, exc) or "truncat" in str(exc).lower():
            if recover:
                summary.recovered = f"read the part of the cut-off recording that was written ({n} {what} messages; {exc}); the rest is lost"
                return
            raise CutOffBag(cut_off_message(bag, f"{type(exc).__name__}: {exc}", n if what == "image" else 0)) from exc
        raise BagError(f"{bag}: the bag is corrupt ({type(exc).__name__}: {exc})") from exc


TF_STATIC = "/tf_static"
POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"


def _check_lidar(bag: Path, settings: ExtractSettings, topics: dict, listing: str, have_info: bool) -> Optional["_LidarTruth"]:
    """The LiDAR ground-truth plan, after the checks that need no message (topic, type, a way to the camera)."""
    if not settings.lidar_topic:
        return None
    if settings.lidar_topic not in topics:
        raise BagError(f"{bag}: LiDAR topic {settings.lidar_topic!r} (eval.lidar_topic) not found; topics in the bag: {listing}")
    if topics[settings.lidar_topic] != POINTCLOUD_TYPE:
        raise BagError(f"{bag}: LiDAR topic {settings.lidar_topic!r} has type {topics[settings.lidar_topic]}, expected {POINTCLOUD_TYPE}")
    if not have_info:
        raise BagError(f"{bag}: LiDAR ground truth is projected through camera_info, and camera_info topic "
                       f"{settings.camera_info_topic!r} is not in the bag; topics in the bag: {listing}")
    if settings.lidar_to_camera is None and TF_STATIC not in topics:
        raise BagError(f"{bag}: no {TF_STATIC} in the bag and no eval.lidar_to_camera: the LiDAR cannot be placed in the camera frame "
                       f"(give eval.lidar_to_camera, the 4x4 camera_from_lidar); topics in the bag: {listing}")
    return _LidarTruth(bag, settings)


class _LidarTruth:
    """Scans of ``settings.lidar_topic`` matched in time to kept frames and projected into them."""

    def __init__(self, bag: Path, settings: ExtractSettings):
        self.bag, self.settings = bag, settings
        self.cam_from_lidar: Optional[np.ndarray] = None
        self.stamps = np.zeros(0, np.int64)
        self._rectified: Optional[tuple] = None  # camera_info (R, P) when P is set
        self._undistorted = False  # frames were undistorted here (then their camera is K, without R)

    def _scans(self, reader, summary):
        conns = [c for c in reader.connections if c.topic == self.settings.lidar_topic]
        for conn, t_ns, raw in _guarded(reader.messages(connections=conns), self.bag, summary, self.settings.recover, "LiDAR"):
            msg = reader.deserialize(raw, conn.msgtype)
            yield _stamp_ns(msg, t_ns), msg

    def prepare(self, reader, infos, tree, summary) -> None:
        """Scan stamps, and camera_from_lidar (config or /tf_static); before any image is decoded."""
        summary.lidar_topic, summary.lidar_tolerance_s = self.settings.lidar_topic, self.settings.lidar_stamp_tolerance_s
        stamps, lidar_frame = [], ""
        for stamp, msg in self._scans(reader, summary):
            stamps.append(stamp)
            lidar_frame = lidar_frame or msg.header.frame_id
        self.stamps = np.array(stamps, dtype=np.int64)
        summary.lidar_scans = len(stamps)
        if not stamps:
            raise BagError(f"{self.bag}: no messages on LiDAR topic {self.settings.lidar_topic!r}")
        if not infos:
            raise BagError(f"{self.bag}: no messages on camera_info topic {self.settings.camera_info_topic!r}")
        info = infos[0][1]
        camera_frame = info.header.frame_id
        if self.settings.lidar_to_camera is not None:
            self.cam_from_lidar = np.asarray(self.settings.lidar_to_camera, dtype=np.float64).reshape(4, 4)
        else:
            self.cam_from_lidar = tree.lookup(camera_frame, lidar_frame)
            if self.cam_from_lidar is None:
                raise BagError(f"{self.bag}: {TF_STATIC} has no chain of transforms from the LiDAR frame {lidar_frame!r} to the camera "
                               f"frame {camera_frame!r} (frames in {TF_STATIC}: {', '.join(tree.frames()) or 'none'}); "
                               f"give eval.lidar_to_camera, the 4x4 camera_from_lidar")
        R = np.asarray(info.r if hasattr(info, "r") else info.R, dtype=np.float64).reshape(3, 3)
        P = np.asarray(info.p if hasattr(info, "p") else info.P, dtype=np.float64).reshape(3, 4)
        self._rectified = (R, P) if np.any(P) else None

    def write_depth(self, reader, kept: list, K: np.ndarray, D_used, partial: Path, summary) -> None:
        """depth_gt/<frame>.npz for each kept frame with a scan within the tolerance (nothing matched: BagError)."""
        from .lidar import pointcloud2_xyz, project_to_depth

        if D_used is not None and np.any(np.abs(D_used) > 0):
            raise BagError(f"{self.bag}: LiDAR ground truth needs undistorted frames (the camera has distortion D): set data.undistort=true")
        if self._undistorted or self._rectified is None:
            image_from_camera = np.hstack([K, np.zeros((3, 1))])  # frames undistorted here keep K as their camera
        else:
            # camera_info semantics (ROS): pixels of the rectified image are P @ [R X_cam; 1]
            # (KITTI: P_rect_02 @ R_rect_00, the projection of its devkit).
            R, P = self._rectified
            rect = np.eye(4)
            rect[:3, :3] = R
            image_from_camera = P @ rect
        image_from_lidar = image_from_camera @ self.cam_from_lidar
        tol = int(self.settings.lidar_stamp_tolerance_s * 1e9)
        wanted: dict[int, list] = {}
        for frame in kept:
            j = int(np.argmin(np.abs(self.stamps - frame["stamp_ns"])))
            if abs(int(self.stamps[j]) - frame["stamp_ns"]) <= tol:
                wanted.setdefault(j, []).append(frame)
        if not wanted:
            raise BagError(f"{self.bag}: no LiDAR scan on {self.settings.lidar_topic!r} within {self.settings.lidar_stamp_tolerance_s:g} s "
                           f"of any of the {len(kept)} kept frames (frames {_span(np.array([f['stamp_ns'] for f in kept]))}, "
                           f"{len(self.stamps)} scans {_span(self.stamps)}); raise eval.lidar_stamp_tolerance_s or check the clocks")
        (partial / "depth_gt").mkdir()
        for j, (stamp, msg) in enumerate(self._scans(reader, summary)):
            for frame in wanted.get(j, []):
                depth = project_to_depth(pointcloud2_xyz(msg), image_from_lidar, summary.height, summary.width,
                                         self.settings.lidar_pixel_offset)
                name = Path(frame["file"]).stem + ".npz"
                np.savez_compressed(partial / "depth_gt" / name, depth=depth)
                frame["depth_gt"] = f"depth_gt/{name}"
                frame["lidar_dt_s"] = (stamp - frame["stamp_ns"]) / 1e9
        summary.lidar_matched = sum(len(v) for v in wanted.values())


def _span(stamps: np.ndarray) -> str:
    return f"{stamps.min() / 1e9:.3f}..{stamps.max() / 1e9:.3f} s" if stamps.size else "none"


def extract_bag(bag, out_dir, settings: ExtractSettings, progress: bool = True) -> ExtractSummary:
    """Decode, match, thin and undistort a bag's frames into an image folder (see module doc).

    Raises:
        BagError: the bag is missing or corrupt, a topic is missing (the message lists the topics
            that exist), camera_info is missing and no intrinsics were given, or no frame is left.
    """
    bag = Path(bag)
    out_dir = Path(out_dir)
    if settings.frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {settings.frame_stride}")
    fingerprint = _fingerprint(bag, settings) if bag.exists() else ""
    manifest = out_dir / "frames.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") == fingerprint and fingerprint:
            summary = ExtractSummary(**old["summary"])
            summary.reused = True
            return summary
    reader = _open_reader(bag, settings.recover)
    summary = ExtractSummary(str(bag), str(out_dir))
    summary.recovered = getattr(reader, "note", "")
    partial = None
    try:
        topics = {topic: _norm_type(info.msgtype) for topic, info in reader.topics.items()}
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
        if settings.image_topic not in topics:
            raise BagError(f"{bag}: image topic {settings.image_topic!r} not found; topics in the bag: {listing}")
        if topics[settings.image_topic] not in IMAGE_TYPES:
            raise BagError(f"{bag}: topic {settings.image_topic!r} has type {topics[settings.image_topic]}, expected one of {IMAGE_TYPES}")
        have_info = settings.camera_info_topic in topics
        if not have_info and settings.intrinsics is None:
            raise BagError(f"{bag}: camera_info topic {settings.camera_info_topic!r} not found and no intrinsics file given "
                           f"(data.intrinsics_file); topics in the bag: {listing}")
        if settings.motion_topic == "auto":
            candidates = [t for t, m in topics.items() if m in MOTION_TYPES]
            settings = replace(settings, motion_topic=candidates[0] if len(candidates) == 1 else "")
            summary.motion_topic = settings.motion_topic
        if settings.motion_topic and settings.motion_topic not in topics:
            raise BagError(f"{bag}: motion topic {settings.motion_topic!r} not found; topics in the bag: {listing}")
        lidar = _check_lidar(bag, settings, topics, listing, have_info)
        side = ([settings.camera_info_topic] if have_info else []) + ([settings.motion_topic] if settings.motion_topic else [])
        side += [TF_STATIC] if lidar is not None and settings.lidar_to_camera is None else []
        tree = TransformTree()
        infos: list[tuple[int, object]] = []
        speeds: list[tuple[int, float]] = []
        # Pass 1: the small topics (camera_info, motion); pass 2 streams the images.
        side_connections = [c for c in reader.connections if c.topic in side]
        # (an empty connection list would mean "every topic" to rosbags)
        side_msgs = _guarded(reader.messages(connections=side_connections), bag, summary, settings.recover, "camera_info/motion")
        for conn, t_ns, raw in side_msgs if side_connections else ():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == settings.camera_info_topic and have_info:
                infos.append((_stamp_ns(msg, t_ns), msg))
            elif conn.topic == TF_STATIC:
                tree.add_message(msg)
            else:
                twist = msg.twist.twist if hasattr(msg.twist, "twist") else msg.twist
                speeds.append((_stamp_ns(msg, t_ns), float(np.linalg.norm([twist.linear.x, twist.linear.y, twist.linear.z]))))
        summary.images = int(reader.topics[settings.image_topic].msgcount)
        if lidar is not None:
            lidar.prepare(reader, infos, tree, summary)
        if not summary.images:
            raise BagError(f"{bag}: no messages on image topic {settings.image_topic!r}")
        image_msgs = _guarded(reader.messages(connections=[c for c in reader.connections if c.topic == settings.image_topic]), bag,
                              summary, settings.recover)
        info_stamps = np.array([s for s, _ in infos], dtype=np.int64)
        speed_stamps = np.array([s for s, _ in speeds], dtype=np.int64)
        tol = int(settings.stamp_tolerance_s * 1e9)
        partial = partial_dir(out_dir)
        kept = []
        last_kept: Optional[np.ndarray] = None
        K_used = D_used = None
        size = None
        maps = None
        iterator = image_msgs
        if progress:
            from tqdm import tqdm

            iterator = tqdm(image_msgs, desc=f"extract {bag.name}", unit="frame", total=summary.images)
        for n, (conn, t_ns, raw) in enumerate(iterator):
            msgtype = conn.msgtype
            if n % settings.frame_stride:
                summary.stride_dropped += 1
                continue
            try:
                msg = reader.deserialize(raw, msgtype)
            except Exception as exc:
                raise BagError(f"{bag}: message {n} on {settings.image_topic!r} cannot be read ({exc})") from exc
            stamp = _stamp_ns(msg, t_ns)
            if have_info:
                if info_stamps.size == 0:
                    summary.unmatched += 1
                    continue
                j = int(np.argmin(np.abs(info_stamps - stamp)))
                if abs(int(info_stamps[j]) - stamp) > tol:
                    summary.unmatched += 1
                    continue
                K, D, info_size = _intrinsics_from_info(infos[j][1])
            else:
                intr = settings.intrinsics
                K = np.array([[intr["fx"], 0, intr["cx"]], [0, intr["fy"], intr["cy"]], [0, 0, 1]], dtype=np.float64)
                D = np.asarray(intr.get("distortion", []) or [], dtype=np.float64)
                info_size = None
            try:
                rgb = decode_message(msgtype, msg)
            except (UnsupportedEncoding, ValueError) as exc:
                reason = str(exc).split(" (supported")[0]
                summary.unsupported[reason] = summary.unsupported.get(reason, 0) + 1
                continue
            if size is not None and rgb.shape[:2] != size:
                summary.unsupported["image size changed"] = summary.unsupported.get("image size changed", 0) + 1
                continue
            if settings.motion_topic and speed_stamps.size:
                j = int(np.argmin(np.abs(speed_stamps - stamp)))
                if speeds[j][1] < settings.min_speed:
                    summary.standstill_dropped += 1
                    continue
            if settings.min_image_change > 0 and last_kept is not None:
                small = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
                if float(np.abs(small - last_kept).mean()) < settings.min_image_change:
                    summary.standstill_dropped += 1
                    continue
            if settings.undistort and D is not None and np.any(np.abs(D) > 0):
                if lidar is not None:
                    lidar._undistorted = True
                if maps is None:
                    maps = cv2.initUndistortRectifyMap(K, D, None, K, (rgb.shape[1], rgb.shape[0]), cv2.CV_32FC1)
                rgb = cv2.remap(rgb, maps[0], maps[1], cv2.INTER_LINEAR)
                D_used = np.zeros(0)
            else:
                D_used = D
            K_used = K
            size = rgb.shape[:2]
            if settings.min_image_change > 0:
                last_kept = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
            name = f"{len(kept):06d}.png"
            cv2.imwrite(str(partial / name), rgb[..., ::-1])
            kept.append({"file": name, "stamp_ns": int(stamp), "message": n})
        summary.kept = len(kept)
        if not kept:
            shutil.rmtree(partial, ignore_errors=True)
            raise BagError(f"{bag}: no usable frame on {settings.image_topic!r} ({summary.text()})")
        summary.height, summary.width = int(size[0]), int(size[1])
        if lidar is not None:
            lidar.write_depth(reader, kept, K_used, D_used, partial, summary)
        intr = {"fx": float(K_used[0, 0]), "fy": float(K_used[1, 1]), "cx": float(K_used[0, 2]), "cy": float(K_used[1, 2]),
                "width": summary.width, "height": summary.height, "distortion": [float(x) for x in (D_used if D_used is not None else [])]}
        (partial / "intrinsics.yaml").write_text(yaml.safe_dump(intr, sort_keys=False))
        (partial / "frames.json").write_text(json.dumps({"fingerprint": fingerprint, "summary": asdict(summary), "frames": kept}, indent=1))
    except BaseException:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        reader.close()
    publish_dir(partial, out_dir, replace=True)
    return summary
