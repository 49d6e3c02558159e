"""LiDAR in bags: PointCloud2 points, static TF, and projection to sparse depth maps.

Used to turn a bag's LiDAR into evaluation ground truth (:func:`.rosbag.extract_bag` with a LiDAR
topic) and, through :func:`project_to_depth`, by the KITTI loader's Velodyne projection, so both
paths give the same maps. The evaluation regions on those maps are in :mod:`..eval.road_regions`.
"""
from __future__ import annotations

from collections import deque
from typing import Optional

import numpy as np

# sensor_msgs/PointField datatypes -> numpy
_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud2_xyz(msg) -> np.ndarray:
    """[N,3] float64 x, y, z of a ``sensor_msgs/PointCloud2`` (non-finite points dropped).

    Honours ``point_step``, ``row_step`` padding, field offsets and ``is_bigendian``.
    """
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise ValueError(f"PointCloud2 has no field {', '.join(missing)} (fields: {', '.join(fields) or 'none'})")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for n in "xyz":
        f = fields[n]
        if int(f.datatype) not in _FIELD_TYPES:
            raise ValueError(f"PointCloud2 field {n}: unknown datatype {f.datatype}")
        names.append(n)
        formats.append(order + _FIELD_TYPES[int(f.datatype)])
        offsets.append(int(f.offset))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    height, width, row_step = int(msg.height), int(msg.width), int(msg.row_step)
    raw = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if raw.size < height * row_step:
        raise ValueError(f"PointCloud2 data has {raw.size} bytes, expected height*row_step = {height}*{row_step}")
    rows = raw[: height * row_step].reshape(height, row_step)[:, : width * int(msg.point_step)]
    points = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    xyz = np.stack([points[n].astype(np.float64) for n in "xyz"], axis=1)
    return xyz[np.isfinite(xyz).all(axis=1)]


def transform_matrix(translation, rotation) -> np.ndarray:
    """4x4 from a translation (x, y, z) and a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in rotation)
    n = np.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = [float(v) for v in translation]
    return T


def quaternion_from_matrix(R: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation."""
    R = np.asarray(R, dtype=np.float64)
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2
    y = np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2
    z = np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2
    x = np.copysign(x, R[2, 1] - R[1, 2])
    y = np.copysign(y, R[0, 2] - R[2, 0])
    z = np.copysign(z, R[1, 0] - R[0, 1])
    return float(x), float(y), float(z), float(w)


class TransformTree:
    """Static transforms (``tf2_msgs/TFMessage`` of ``/tf_static``) and lookups along the tree."""

    def __init__(self):
        self.edges: dict[str, dict[str, np.ndarray]] = {}  # frame -> {neighbour: neighbour_from_frame}

    def add(self, parent: str, child: str, parent_from_child: np.ndarray) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        self.edges.setdefault(child, {})[parent] = parent_from_child
        self.edges.setdefault(parent, {})[child] = np.linalg.inv(parent_from_child)

    def add_message(self, msg) -> None:
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            self.add(t.header.frame_id, t.child_frame_id, transform_matrix((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w)))

    def frames(self) -> list[str]:
        return sorted(self.edges)

    def lookup(self, target: str, source: str) -> Optional[np.ndarray]:
        """target_from_source (4x4), or None when the two frames are not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if source == target:
            return np.eye(4)
        queue, seen = deque([(source, np.eye(4))]), {source}
        while queue:
            frame, frame_from_source = queue.popleft()
            for neighbour, neighbour_from_frame in self.edges.get(frame, {}).items():
                if neighbour in seen:
                    continue
                chained = neighbour_from_frame @ frame_from_source
                if neighbour == target:
                    return chained
                seen.add(neighbour)
                queue.append((neighbour, chained))
        return None


def project_to_depth(points: np.ndarray, image_from_points: np.ndarray, height: int, width: int,
                     pixel_offset: int = 0) -> np.ndarray:
    """Sparse depth [H,W] float32 (0 = none, nearest point wins) from points [N,>=3].

    Args:
        image_from_points: [3,4] homogeneous projection; a point's depth is its third row.
        pixel_offset: added to the rounded pixel; the KITTI devkit (and every Eigen-split
            evaluation) uses -1, a ROS/OpenCV camera 0 (pixel centres at integer coordinates).
    """
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    proj = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(image_from_points, np.float64).T
    z = proj[:, 2]
    keep = z > 0
    proj, z = proj[keep], z[keep]
    u = np.round(proj[:, 0] / z).astype(np.int64) + pixel_offset
    v = np.round(proj[:, 1] / z).astype(np.int64) + pixel_offset
    inside = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.zeros((height, width), np.float32)
    order = np.argsort(-z, kind="stable")  # far first, so the nearest point is written last and wins
    depth[v[order], u[order]] = z[order]
    return depth


