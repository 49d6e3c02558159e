"""Synthetic dynamic driving scenes with exact ground truth: a vectorised, seeded ray caster.

A forward-driving camera on a street between building facades, with parked (static) cars and
moving cars: a **lead car at exactly the ego speed** (the case where self-supervised depth runs to
infinity), oncoming cars and cars crossing from side streets. Every frame comes with its exact
depth, instance ids, which instances move, the camera pose and every object's pose.

World frame: x right, y down, z forward (the camera frame at the start, before jitter); the ground
is the plane y = camera_height. Poses are ``world_from_cam`` / ``world_from_object`` 4x4 matrices.
Depth is metres along the camera's z axis (0 where a ray sees only sky).

The renderer casts one ray per pixel against analytic primitives (ground plane, facade planes with
gaps for side streets, an end wall, oriented boxes for cars), with whole-image numpy operations and
no per-pixel Python loops. Cars only touch the image rectangle their box projects into. Textures are
prefiltered multi-octave noise (a mip stack) looked up at the hit point, so surfaces keep the same
texture from frame to frame (what a photometric loss needs), with lane marks and windows on top.

Programmatic use (tests of other modules)::

    seq = render_sequence(SceneParams(height=64, width=192, num_frames=5), seed=0)
    seq.frames[2].image, seq.frames[2].depth, seq.dynamic_mask(2), seq.K
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

# Instance kinds, in id order.
KIND_LEAD = "lead"
KIND_ONCOMING = "oncoming"
KIND_CROSSING = "crossing"
KIND_PARKED = "parked"

# Materials of the texture atlas.
_MAT_SKY, _MAT_ROAD, _MAT_PAVEMENT, _MAT_FACADE, _MAT_CAR, _MAT_WALL = 0, 1, 2, 3, 4, 5  # facades have windows, walls not
_TEX_OF_MAT = np.array([0, 1, 2, 3, 4, 3], dtype=np.int32)  # texture of each material in the atlas
_TEX_SIZE = 256
_TEX_LEVELS = 7
# Texels per metre of each material (sky: texels per unit of tan(angle)).
_TEX_DENSITY = np.array([60.0, 24.0, 16.0, 12.0, 24.0, 12.0], dtype=np.float32)
# Fixed palette entries (RGB albedo); building and car colours follow them.
_PAL_SKY, _PAL_ROAD, _PAL_PAVEMENT, _PAL_END, _PAL_BACK, _PAL_GLASS, _PAL_MARK, _PAL_WINDOW = range(8)
_FIXED_PALETTE = [(0.55, 0.7, 0.92), (0.42, 0.42, 0.44), (0.62, 0.6, 0.56), (0.6, 0.58, 0.55), (0.55, 0.5, 0.45),
                  (0.12, 0.14, 0.17), (0.92, 0.92, 0.92), (0.16, 0.2, 0.26)]


@dataclass
class SceneParams:
    """Everything that shapes a synthetic sequence (lengths in metres, speeds in m/s, angles in degrees)."""

    height: int = 192
    width: int = 640
    num_frames: int = 60
    fps: float = 10.0
    fx_ratio: float = 0.58  # fx / width, as KITTI at 192x640 (monodepth2's normalised intrinsics)
    fy_ratio: float = 1.92  # fy / height
    camera_height: float = 1.65
    ego_speed: float = 8.0
    yaw_jitter_deg: float = 0.3
    pitch_jitter_deg: float = 0.3
    lane_width: float = 3.5
    sidewalk_width: float = 2.5
    side_street_prob: float = 0.3
    building_height: tuple = (6.0, 18.0)
    lead_car: bool = True
    lead_distance: tuple = (12.0, 20.0)
    num_oncoming: int = 2
    oncoming_speed: tuple = (6.0, 11.0)
    num_crossing: int = 1
    crossing_speed: tuple = (4.0, 7.0)
    parked_prob: float = 0.6
    lighting_change: float = 0.0  # amplitude of a slow global brightness change (0 = none)
    noise_std: float = 0.0  # Gaussian pixel noise, on the 0-1 scale

    def validate(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"SceneParams: height and width must be at least 8, got {self.height}x{self.width}")
        if self.num_frames < 1:
            raise ValueError(f"SceneParams: num_frames must be >= 1, got {self.num_frames}")
        if self.fps <= 0 or self.ego_speed < 0 or self.camera_height <= 0:
            raise ValueError("SceneParams: fps and camera_height must be > 0 and ego_speed >= 0")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "SceneParams":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"SceneParams: unknown keys {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


@dataclass
class InstanceInfo:
    """One car. ``size`` is (width, height, length) in metres; ``dynamic`` is True if it moves."""

    id: int
    kind: str
    dynamic: bool
    size: tuple


@dataclass
class SyntheticFrame:
    """One rendered frame.

    Attributes:
        index: frame number in the sequence.
        timestamp: seconds since the start of the sequence.
        image: [H,W,3] uint8 RGB.
        depth: [H,W] float32 metres along the camera z axis; 0 = sky (no surface).
        instance_map: [H,W] int32 instance ids (0 = background: road, buildings, sky).
        cam_pose: [4,4] float64 world_from_cam.
        object_poses: instance id -> [4,4] float64 world_from_object (box centre, yaw about y).
    """

    index: int
    timestamp: float
    image: np.ndarray
    depth: np.ndarray
    instance_map: np.ndarray
    cam_pose: np.ndarray
    object_poses: dict


@dataclass
class SyntheticSequence:
    params: SceneParams
    seed: int
    K: np.ndarray  # [3,3] float64 intrinsics at params.height x params.width
    instances: list
    frames: list = field(default_factory=list)

    @property
    def dynamic_ids(self) -> np.ndarray:
        return np.array([i.id for i in self.instances if i.dynamic], dtype=np.int64)

    def dynamic_mask(self, index: int) -> np.ndarray:
        """[H,W] bool: pixels of moving instances in frame ``index``."""
        return dynamic_mask(self.frames[index].instance_map, self.dynamic_ids)

    def dynamic_fraction(self) -> float:
        """Fraction of all pixels of all frames that belong to moving cars."""
        if not self.frames:
            return 0.0
        return float(np.mean([self.dynamic_mask(i).mean() for i in range(len(self.frames))]))


def dynamic_mask(instance_map: np.ndarray, dynamic_ids) -> np.ndarray:
    """Boolean mask of the pixels whose instance id is in ``dynamic_ids`` (same shape as instance_map)."""
    ids = np.asarray(dynamic_ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros(instance_map.shape, dtype=bool)
    return np.isin(instance_map, ids)


def intrinsics_for(params: SceneParams) -> np.ndarray:
    """Pinhole K [3,3] of the synthetic camera (principal point at the image centre)."""
    fx = params.fx_ratio * params.width
    fy = params.fy_ratio * params.height
    return np.array([[fx, 0.0, (params.width - 1) / 2.0], [0.0, fy, (params.height - 1) / 2.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------- the scene
@dataclass
class _Car:
    info: InstanceInfo
    colour: np.ndarray  # albedo RGB in [0,1]
    x0: float
    z0: float
    vx: float
    vz: float
    yaw: float  # radians about y; 0 = length along z

    def centre(self, t: float, camera_height: float) -> np.ndarray:
        w, h, _ = self.info.size
        return np.array([self.x0 + self.vx * t, camera_height - h / 2.0, self.z0 + self.vz * t])

    def pose(self, t: float, camera_height: float) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
        T[:3, 3] = self.centre(t, camera_height)
        return T


@dataclass
class _Facade:
    """A vertical plane x = x_plane, split along z into buildings (start, end, height, colour)."""

    x_plane: float
    starts: np.ndarray
    ends: np.ndarray
    heights: np.ndarray
    colours: np.ndarray  # [n,3]
    colour_ids: Optional[np.ndarray] = None  # [n] palette entries of the colours


class SyntheticScene:
    """A seeded street scene; ``render(i)`` renders frame i (frames are independent of each other)."""

    def __init__(self, params: SceneParams, seed: int, texture_seed: Optional[int] = None):
        """``texture_seed``: seed of the texture atlas (default: ``seed``). The atlas takes ~0.5 s to
        build and the last 8 are cached, so many layouts can share a few atlases (motion pre-training)."""
        params.validate()
        self.params = params
        self.seed = int(seed)
        self.K = intrinsics_for(params)
        rng = np.random.default_rng([self.seed, 1])
        self._atlas = _texture_atlas(self.seed if texture_seed is None else int(texture_seed))
        self._layout(rng)
        # Per-frame camera jitter, drawn once so frames can be rendered in any order.
        self._yaw = np.deg2rad(params.yaw_jitter_deg) * _smooth_noise(rng, params.num_frames)
        self._pitch = np.deg2rad(params.pitch_jitter_deg) * _smooth_noise(rng, params.num_frames)
        self._light_phase = rng.uniform(0, 2 * math.pi)
        H, W = params.height, params.width
        v, u = np.mgrid[0:H, 0:W].astype(np.float32)
        K_inv = np.linalg.inv(self.K)
        # Rays with z = 1 in the camera frame: the ray parameter t is the depth along z.
        self._rays_cam = np.stack([K_inv[0, 0] * u + K_inv[0, 2], K_inv[1, 1] * v + K_inv[1, 2], np.ones_like(u)]).astype(np.float32)

    # ----------------------------------------------------------------------------- layout
    def _layout(self, rng: np.random.Generator) -> None:
        p = self.params
        duration = (p.num_frames - 1) / p.fps
        travel = p.ego_speed * duration
        self.z_end = travel + 90.0  # end-of-street wall: bounds every depth
        road_right = p.lane_width / 2.0 + 2.2  # ego lane + a parking strip
        road_left = -1.5 * p.lane_width - 2.2  # oncoming lane + a parking strip
        self.road_x = (road_left, road_right)
        self.facade_x = (road_left - p.sidewalk_width, road_right + p.sidewalk_width)
        cars: list[_Car] = []

        def new_id() -> int:
            return len(cars) + 1

        def size() -> tuple:
            return (float(rng.uniform(1.7, 1.9)), float(rng.uniform(1.4, 1.7)), float(rng.uniform(3.9, 4.7)))

        def colour() -> np.ndarray:
            palette = np.array([[0.75, 0.1, 0.1], [0.1, 0.25, 0.7], [0.85, 0.85, 0.82], [0.15, 0.15, 0.17], [0.55, 0.57, 0.6], [0.1, 0.5, 0.25], [0.9, 0.6, 0.1]])
            return palette[rng.integers(len(palette))] * rng.uniform(0.85, 1.1)

        if p.lead_car:
            d0 = float(rng.uniform(*p.lead_distance))
            cars.append(_Car(InstanceInfo(new_id(), KIND_LEAD, True, size()), colour(), 0.0, d0, 0.0, p.ego_speed, 0.0))
        oncoming_x = -p.lane_width
        for _ in range(p.num_oncoming):
            speed = float(rng.uniform(*p.oncoming_speed))
            # Meet the ego camera at a random time; start far enough ahead to be seen.
            meet = rng.uniform(0.3, 1.6) * max(duration, 1.0)
            z_meet = p.ego_speed * meet
            cars.append(_Car(InstanceInfo(new_id(), KIND_ONCOMING, True, size()), colour(), oncoming_x, z_meet + speed * meet, 0.0, -speed, 0.0))
        crossing_z = []
        for _ in range(p.num_crossing):
            speed = float(rng.uniform(*p.crossing_speed)) * (1 if rng.random() < 0.5 else -1)
            t_cross = rng.uniform(0.2, 0.8) * max(duration, 1.0)
            # Cross beyond the lead car, where the camera will still be looking.
            z = p.ego_speed * t_cross + float(rng.uniform(25.0, 40.0))
            crossing_z.append(z)
            x_at_cross = 0.5 * (road_left + road_right)
            cars.append(_Car(InstanceInfo(new_id(), KIND_CROSSING, True, size()), colour(), x_at_cross - speed * t_cross, z, speed, 0.0, math.pi / 2))
        # Parked cars along both parking strips, never in front of a side street.
        gaps = [(z - 6.0, z + 6.0) for z in crossing_z]
        for x in (p.lane_width / 2.0 + 1.1, -1.5 * p.lane_width - 1.1):
            z = -8.0
            while z < self.z_end - 10:
                s = size()
                if rng.random() < p.parked_prob and not any(a - 3 < z < b + 3 for a, b in gaps):
                    cars.append(_Car(InstanceInfo(new_id(), KIND_PARKED, False, s), colour(), x + rng.uniform(-0.15, 0.15), z + s[2] / 2, 0.0, 0.0, float(rng.normal(0, 0.03))))
                z += s[2] + rng.uniform(0.8, 6.0)
        self.cars = cars
        self.instances = [c.info for c in cars]
        self.facades = [self._facade(rng, x, gaps) for x in self.facade_x]
        # Back walls seen through side streets.
        self.back_x = (self.facade_x[0] - 14.0, self.facade_x[1] + 14.0)
        self.backs = [_Facade(x, np.array([-1e3]), np.array([1e4]), np.array([15.0]), np.array([_FIXED_PALETTE[_PAL_BACK]]), np.array([_PAL_BACK]))
                      for x in self.back_x]
        # One palette of albedos: the fixed entries, every building's colour, every car's colour.
        palette = [np.asarray(c) for c in _FIXED_PALETTE]
        for facade in self.facades:
            facade.colour_ids = np.arange(len(palette), len(palette) + len(facade.colours), dtype=np.int32)
            palette += list(facade.colours)
        self._car_colour_id = {}
        for car in self.cars:
            self._car_colour_id[car.info.id] = len(palette)
            palette.append(car.colour)
        self._palette = np.clip(np.array(palette, dtype=np.float32), 0.0, 1.0)

    def _facade(self, rng: np.random.Generator, x: float, gaps: list) -> _Facade:
        p = self.params
        starts, ends, heights, colours = [], [], [], []
        z = -20.0
        palette = np.array([[0.7, 0.55, 0.45], [0.75, 0.72, 0.65], [0.5, 0.35, 0.3], [0.6, 0.62, 0.66], [0.8, 0.7, 0.5], [0.45, 0.45, 0.42]])
        while z < self.z_end + 5:
            length = float(rng.uniform(8.0, 22.0))
            forced_gap = [g for g in gaps if z < g[1] and z + length > g[0]]
            if forced_gap:
                start = z
                end = forced_gap[0][0]
                if end - start > 2.0:
                    starts.append(start), ends.append(end)
                    heights.append(float(rng.uniform(*p.building_height))), colours.append(palette[rng.integers(len(palette))])
                z = forced_gap[0][1]
                continue
            starts.append(z), ends.append(z + length)
            heights.append(float(rng.uniform(*p.building_height))), colours.append(palette[rng.integers(len(palette))] * rng.uniform(0.85, 1.1))
            z += length
            if rng.random() < p.side_street_prob:
                z += float(rng.uniform(6.0, 12.0))
        return _Facade(x, np.array(starts), np.array(ends), np.array(heights), np.array(colours))

    # ----------------------------------------------------------------------------- poses
    def cam_pose(self, index: int) -> np.ndarray:
        p = self.params
        t = index / p.fps
        yaw, pitch = self._yaw[index], self._pitch[index]
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        R_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        R_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        T = np.eye(4)
        T[:3, :3] = R_yaw @ R_pitch
        T[:3, 3] = (0.0, 0.0, p.ego_speed * t)
        return T

    def object_poses(self, index: int) -> dict:
        t = index / self.params.fps
        return {c.info.id: c.pose(t, self.params.camera_height) for c in self.cars}

    # ----------------------------------------------------------------------------- render
    def render(self, index: int) -> SyntheticFrame:
        p = self.params
        if not 0 <= index < p.num_frames:
            raise IndexError(f"frame index {index} outside 0..{p.num_frames - 1}")
        H, W = p.height, p.width
        t_now = index / p.fps
        pose = self.cam_pose(index)
        R = pose[:3, :3].astype(np.float32)
        o = pose[:3, 3].astype(np.float32)
        d = np.einsum("ij,jhw->ihw", R, self._rays_cam)  # world ray directions [3,H,W]
        buf = _Buffers(H, W)
        h = p.camera_height

        # Ground plane y = h (y points down).
        with np.errstate(divide="ignore", invalid="ignore"):
            t_g = np.where(d[1] > 1e-6, (h - o[1]) / d[1], np.inf)
        xg = o[0] + t_g * d[0]
        on_road = (xg > self.road_x[0]) & (xg < self.road_x[1])
        buf.write(t_g, np.where(on_road, _MAT_ROAD, _MAT_PAVEMENT), 0, np.where(on_road, _PAL_ROAD, _PAL_PAVEMENT),
                  xg, o[2] + t_g * d[2], 1.0, np.abs(d[1]))

        # Facades with gaps, back walls through the gaps, and the end wall.
        for facade in self.facades:
            self._facade_hit(buf, o, d, facade)
        for back in self.backs:
            self._facade_hit(buf, o, d, back)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_e = np.where(d[2] > 1e-6, (self.z_end - o[2]) / d[2], np.inf)
        ye = o[1] + t_e * d[1]
        t_e = np.where(ye > h - 20.0, t_e, np.inf)
        buf.write(t_e, _MAT_WALL, 0, _PAL_END, o[0] + t_e * d[0], ye, 0.85, np.abs(d[2]))

        object_poses = self.object_poses(index)
        for car in self.cars:
            self._car_hit(buf, o, d, pose, car, object_poses[car.info.id])

        image = self._shade(buf, d, index, t_now)
        depth = np.where(np.isfinite(buf.t), buf.t, 0.0).astype(np.float32)
        return SyntheticFrame(index, t_now, image, depth, buf.inst.copy(), pose, object_poses)

    def _facade_hit(self, buf: "_Buffers", o: np.ndarray, d: np.ndarray, facade: _Facade) -> None:
        h = self.params.camera_height
        # Only columns with rays heading towards the plane can hit it (no camera roll): slice them.
        towards = (d[0] * (facade.x_plane - o[0]) > 0).any(0)
        cols = np.flatnonzero(towards)
        if cols.size == 0:
            return
        sl = (slice(None), slice(int(cols[0]), int(cols[-1]) + 1))
        dx, dy, dz = d[0][sl], d[1][sl], d[2][sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (facade.x_plane - o[0]) / dx
        t = np.where(t > 0, t, np.inf)
        z = o[2] + t * dz
        y = o[1] + t * dy
        k = np.clip(np.searchsorted(facade.starts, z, side="right") - 1, 0, len(facade.starts) - 1)
        inside = (z >= facade.starts[k]) & (z < facade.ends[k]) & (y > h - facade.heights[k]) & (y < h)
        t = np.where(inside, t, np.inf)
        buf.write(t, _MAT_FACADE, 0, facade.colour_ids[k], z, y, 0.8, np.abs(dx), sl=sl)

    def _car_hit(self, buf: "_Buffers", o: np.ndarray, d: np.ndarray, cam_pose: np.ndarray, car: _Car, obj_pose: np.ndarray) -> None:
        w, hgt, length = car.info.size
        half = np.array([w / 2, hgt / 2, length / 2], dtype=np.float32)
        # Pixel rectangle of the box's projection (whole image if it straddles the camera plane).
        corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T * half
        world = corners @ obj_pose[:3, :3].T + obj_pose[:3, 3]
        cam = (world - cam_pose[:3, 3]) @ cam_pose[:3, :3]
        near = 0.05
        if np.all(cam[:, 2] < near) or np.min(np.linalg.norm(cam, axis=1)) > 150:
            return
        H, W = buf.t.shape
        pts = _clip_box_to_near_plane(cam, near)
        uv = pts[:, :2] / pts[:, 2:3] * [self.K[0, 0], self.K[1, 1]] + [self.K[0, 2], self.K[1, 2]]
        uv = np.clip(uv, -1e6, 1e6)
        c0, r0 = np.floor(uv.min(0)).astype(int) - 1
        c1, r1 = np.ceil(uv.max(0)).astype(int) + 2
        r0, r1, c0, c1 = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
        if r0 >= r1 or c0 >= c1:
            return
        sl = (slice(r0, r1), slice(c0, c1))
        Rb = obj_pose[:3, :3].astype(np.float32)
        cb = obj_pose[:3, 3].astype(np.float32)
        dl = np.einsum("ji,jhw->ihw", Rb, d[:, sl[0], sl[1]])  # ray directions in the box frame
        ol = (o - cb) @ Rb
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / dl
            t1 = (-half[:, None, None] - ol[:, None, None]) * inv
            t2 = (half[:, None, None] - ol[:, None, None]) * inv
        t_near_axes = np.minimum(t1, t2)
        t_near = t_near_axes.max(0)
        t_far = np.maximum(t1, t2).min(0)
        hit = (t_far >= t_near) & (t_near > 0)
        t = np.where(hit, t_near, np.inf)
        axis = t_near_axes.argmax(0)  # the face the ray enters through
        p_local = ol[:, None, None] + t_near * dl
        # Face coordinates (metres in the box frame), so the texture moves with the car.
        a = np.where(axis == 0, p_local[2], p_local[0])
        b = np.where(axis == 1, p_local[2], p_local[1])
        shade = np.float32([0.75, 1.0, 0.9])[axis]
        cos_inc = np.abs(np.take_along_axis(dl, axis[None], 0)[0])
        # Windows: the upper 40% of the side and end faces is dark glass.
        glass = (axis != 1) & (p_local[1] < -half[1] + 0.8 * half[1])
        colour = np.where(glass, _PAL_GLASS, self._car_colour_id[car.info.id])
        buf.write(t, _MAT_CAR, car.info.id, colour, a, b, shade, cos_inc, sl=sl)

    def _shade(self, buf: "_Buffers", d: np.ndarray, index: int, t_now: float) -> np.ndarray:
        p = self.params
        H, W = buf.t.shape
        f = float(self.K[0, 0])
        norm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        sky = ~np.isfinite(buf.t)
        t = np.where(sky, 1.0, buf.t)
        # Footprint of a pixel on the surface (metres), for the mip level and anti-aliased patterns.
        footprint = t * norm / f / np.maximum(buf.cos_inc / norm, 0.08)
        sky_rows = np.flatnonzero(sky.any(1))
        if sky_rows.size:
            # Sky: texture by direction, so rotation alone moves it consistently (upper rows only).
            sl = slice(0, int(sky_rows[-1]) + 1)
            sky_sl = sky[sl]
            dz = np.maximum(d[2][sl], 1e-3)
            np.copyto(buf.a[sl], d[0][sl] / dz, where=sky_sl)
            np.copyto(buf.b[sl], d[1][sl] / dz, where=sky_sl)
            np.copyto(footprint[sl], np.float32(1.0 / f), where=sky_sl)
        mat = buf.mat
        density = _TEX_DENSITY[mat]
        level = np.clip(np.log2(np.maximum(footprint * density, 1e-6)), 0.0, _TEX_LEVELS - 1.001)
        noise = _sample_atlas(self._atlas, _TEX_OF_MAT[mat], buf.a * density, buf.b * density, level)
        # Overlays: lane marks on the road (dashed centre line, solid edge lines), windows on facades,
        # with soft edges one footprint wide (anti-aliasing).
        overlay = np.zeros((H, W), np.float32)
        road = mat == _MAT_ROAD
        road_rows = np.flatnonzero(road.any(1))
        if road_rows.size:
            sl = slice(int(road_rows[0]), int(road_rows[-1]) + 1)
            x, z, fp = buf.a[sl], buf.b[sl], footprint[sl]
            lw = p.lane_width
            centre = _soft_band(x, -lw / 2, 0.075, fp) * (np.mod(z, 9.0) < 3.0)
            edges = _soft_band(x, lw / 2, 0.08, fp) + _soft_band(x, -1.5 * lw, 0.08, fp)
            overlay[sl] = np.clip(centre + edges, 0, 1) * road[sl]
        wz = _soft_box(np.mod(buf.a, 3.2), 0.8, 2.4, footprint)
        wy = _soft_box(np.mod(buf.b - p.camera_height, 3.0), 0.7, 2.1, footprint) * (buf.b < p.camera_height - 3.5)
        overlay += wz * wy * (mat == _MAT_FACADE)
        base = self._palette[buf.col]
        top = self._palette[np.where(road, _PAL_MARK, _PAL_WINDOW)]
        brightness = np.where(sky, 0.85 + 0.3 * noise, (0.55 + 0.9 * noise) * buf.shade)
        if p.lighting_change:
            brightness *= np.float32(1.0 + p.lighting_change * math.sin(0.6 * t_now + self._light_phase))
        rgb = (base + overlay[..., None] * (top - base)) * (255.0 * brightness)[..., None]
        if p.noise_std:
            rng = np.random.default_rng([self.seed, 2, index])
            rgb += rng.normal(0.0, 255.0 * p.noise_std, rgb.shape).astype(np.float32)
        return np.clip(rgb + 0.5, 0.0, 255.0).astype(np.uint8)

    def frames(self) -> Iterator[SyntheticFrame]:
        for i in range(self.params.num_frames):
            yield self.render(i)


class _Buffers:
    """Per-pixel z-buffer of the nearest hit: depth, material, instance, palette colour, face coords, shading."""

    def __init__(self, H: int, W: int):
        self.t = np.full((H, W), np.inf, np.float32)
        self.mat = np.zeros((H, W), np.int64)
        self.inst = np.zeros((H, W), np.int32)
        self.col = np.zeros((H, W), np.int32)
        self.a = np.zeros((H, W), np.float32)
        self.b = np.zeros((H, W), np.float32)
        self.shade = np.ones((H, W), np.float32)
        self.cos_inc = np.ones((H, W), np.float32)

    def write(self, t, mat, inst, col, a, b, shade, cos_inc, sl=(slice(None), slice(None))) -> None:
        """Keep the new hit where it is nearer than what the buffer holds (all inputs cover ``sl``)."""
        closer = t < self.t[sl]
        if not closer.any():
            return
        for name, value in (("t", t), ("mat", mat), ("inst", inst), ("col", col), ("a", a), ("b", b), ("shade", shade), ("cos_inc", cos_inc)):
            target = getattr(self, name)[sl]
            np.copyto(target, np.broadcast_to(np.asarray(value, dtype=target.dtype), target.shape), where=closer)


# The 12 edges of a box whose 8 corners come from meshgrid([-1,1]^3) in "ij" order (bit 4=x, 2=y, 1=z).
_BOX_EDGES = [(a, a | bit) for bit in (4, 2, 1) for a in range(8) if not a & bit]


def _clip_box_to_near_plane(corners_cam: np.ndarray, near: float) -> np.ndarray:
    """Corners in front of the plane z = near, plus where the box's edges cross it ([n,3])."""
    z = corners_cam[:, 2]
    pts = [corners_cam[z >= near]]
    for a, b in _BOX_EDGES:
        if (z[a] >= near) != (z[b] >= near):
            s = (near - z[a]) / (z[b] - z[a])
            pts.append((corners_cam[a] + s * (corners_cam[b] - corners_cam[a]))[None])
    return np.concatenate(pts)


def _soft_band(x: np.ndarray, centre: float, half_width: float, footprint: np.ndarray) -> np.ndarray:
    """1 inside |x - centre| < half_width, 0 outside, with a ramp one footprint wide (anti-aliasing)."""
    return np.clip((half_width - np.abs(x - centre)) / np.maximum(footprint, 1e-4) + 0.5, 0.0, 1.0)


def _soft_box(x: np.ndarray, lo: float, hi: float, footprint: np.ndarray) -> np.ndarray:
    return _soft_band(x, 0.5 * (lo + hi), 0.5 * (hi - lo), footprint)


def _smooth_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """n values of a smooth random walk in about [-1, 1] (camera jitter)."""
    raw = rng.normal(size=n + 8)
    kernel = np.hanning(9)
    smooth = np.convolve(raw, kernel / kernel.sum(), mode="valid")[:n]
    return smooth / max(np.abs(smooth).max(), 1e-6) if n > 1 else smooth * 0


@functools.lru_cache(maxsize=8)
def _texture_atlas(seed: int) -> np.ndarray:
    """[materials, levels, S, S] float32 noise in about [0,1]: level l is blurred by sigma 2**l texels (a mip stack)."""
    rng = np.random.default_rng([seed, 3])
    S = _TEX_SIZE
    freq = np.fft.fftfreq(S)
    f2 = freq[:, None] ** 2 + freq[None, :] ** 2
    # Octave weights per material: (sigma in texels, weight).
    octaves = {
        _MAT_SKY: [(12.0, 1.0), (4.0, 0.3)],
        _MAT_ROAD: [(0.6, 1.0), (2.0, 0.8), (8.0, 0.6)],
        _MAT_PAVEMENT: [(0.8, 0.8), (3.0, 1.0), (10.0, 0.5)],
        _MAT_FACADE: [(1.0, 0.7), (3.0, 1.0), (12.0, 0.8)],
        _MAT_CAR: [(1.5, 0.4), (6.0, 1.0), (20.0, 0.6)],
    }
    atlas = np.zeros((len(octaves), _TEX_LEVELS, S, S), np.float32)
    for m, octs in octaves.items():
        spectrum = np.zeros((S, S), np.complex128)
        for sigma, weight in octs:
            white = np.fft.fft2(rng.normal(size=(S, S)))
            g = np.exp(-2 * (math.pi * sigma) ** 2 * f2)
            spectrum += white * g * weight / math.sqrt((g**2).mean())
        base = np.real(np.fft.ifft2(spectrum))
        scale = base.std() + 1e-9
        for level in range(_TEX_LEVELS):
            sigma = 0.0 if level == 0 else 0.5 * 2.0**level
            g = np.exp(-2 * (math.pi * sigma) ** 2 * f2)
            blurred = np.real(np.fft.ifft2(spectrum * g)) / scale
            atlas[m, level] = np.clip(0.5 + 0.17 * blurred, 0.0, 1.0)
    return atlas


def _sample_atlas(atlas: np.ndarray, tex: np.ndarray, u: np.ndarray, v: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Trilinear lookup (bilinear in texels, linear between mip levels), wrapping at the tile border."""
    M, L, S, _ = atlas.shape
    assert S & (S - 1) == 0, "texture size must be a power of two (wrapping uses a bit mask)"
    flat = atlas.reshape(-1)
    uf = np.floor(u)
    vf = np.floor(v)
    fu = (u - uf).astype(np.float32)
    fv = (v - vf).astype(np.float32)
    mask = S - 1
    u0 = uf.astype(np.int32) & mask  # two's complement: wraps negative coordinates too
    v0 = vf.astype(np.int32) & mask
    u1 = (u0 + 1) & mask
    v1 = (v0 + 1) & mask
    l0 = level.astype(np.int32)  # level >= 0, so truncation is floor
    fl = (level - l0).astype(np.float32)
    gu = 1 - fu
    out = None
    for dl, wl in ((0, 1.0 - fl), (1, fl)):
        base = (tex.astype(np.int32) * L + np.minimum(l0 + dl, L - 1)) * (S * S)
        r0 = base + v0 * S
        r1 = base + v1 * S
        val = (flat[r0 + u0] * gu + flat[r0 + u1] * fu) * (1 - fv) + (flat[r1 + u0] * gu + flat[r1 + u1] * fu) * fv
        out = wl * val if out is None else out + wl * val
    return out


def render_sequence(params: Optional[SceneParams] = None, seed: int = 0, progress: bool = False) -> SyntheticSequence:
    """Render every frame of a seeded sequence (deterministic: same params and seed, same bytes)."""
    params = params or SceneParams()
    scene = SyntheticScene(params, seed)
    frames = range(params.num_frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"render seed {seed}", unit="frame")
    seq = SyntheticSequence(params, int(seed), scene.K.copy(), list(scene.instances))
    seq.frames = [scene.render(i) for i in frames]
    return seq
