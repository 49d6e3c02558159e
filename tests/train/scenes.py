"""A tiny ray-cast scene with exact depth and camera motion, as a dataset following data/keys.py.

A camera drives down a textured corridor (ground plane, two side walls, an end wall) with a box
moving sideways in front of it. Depth and ``src_from_ref`` are exact, so tests can check that the
true geometry reconstructs a frame better than a wrong one. World frame: x right, y down, z forward.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mcdepth_train.data import keys
from mcdepth_train.geometry import intrinsics_pyramid, pixel_grid

CAMERA_HEIGHT = 1.5
WALL_X = 4.0
END_Z = 40.0
BOX_Z = 10.0  # the box's front face, in world z
BOX_X0, BOX_WIDTH, BOX_HEIGHT = -3.0, 2.0, 1.6


def intrinsics(height: int, width: int) -> torch.Tensor:
    f = 0.6 * width
    return torch.tensor([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _texture(a: torch.Tensor, b: torch.Tensor, phase: float) -> torch.Tensor:
    """Smooth multi-frequency RGB pattern of surface coordinates (metres) -> [3,...] in [0,1]."""
    out = []
    for c, (fa, fb) in enumerate([(1.3, 0.9), (0.7, 1.7), (2.3, 0.5)]):
        v = 0.5 + 0.22 * torch.sin(fa * a + phase + c) * torch.cos(fb * b - c) + 0.18 * torch.sin(0.31 * a + 0.57 * b + 2 * c)
        out.append(v)
    return torch.stack(out).clamp(0, 1)


class TinyScene(Dataset):
    """Samples of a forward-driving camera; sample i is centred on frame i + max(-frame_ids).

    Args:
        num_samples: dataset length. height, width: image size (multiples of 32 for the nets).
        frame_ids: temporal offsets; 0 is the reference. num_scales: pyramid levels.
        speed: camera metres per frame along z. yaw_rate: radians per frame.
        box_speed: the moving box's metres per frame along x (0 = a static box).
        first_frame: time of the first rendered frame (a later stretch of the drive for validation).
    """

    def __init__(self, num_samples: int = 8, height: int = 64, width: int = 128, frame_ids=(-1, 0, 1),
                 num_scales: int = 4, speed: float = 0.5, yaw_rate: float = 0.004, box_speed: float = 0.25,
                 supersample: int = 2, first_frame: int = 0):
        self.n, self.h, self.w = num_samples, height, width
        self.frame_ids, self.num_scales = list(frame_ids), num_scales
        self.speed, self.yaw_rate, self.box_speed = speed, yaw_rate, box_speed
        self.K = intrinsics(height, width)
        self.first_frame = first_frame
        self.offset = -min(self.frame_ids)
        n_frames = num_samples + self.offset + max(self.frame_ids)
        self.frames = [self._render(first_frame + t, supersample) for t in range(n_frames)]

    def world_from_cam(self, t: int) -> torch.Tensor:
        T = torch.eye(4)
        T[:3, :3] = _rot_y(self.yaw_rate * t)
        T[2, 3] = self.speed * t
        return T

    def src_from_ref(self, index: int, frame_id: int) -> torch.Tensor:
        """Exact camera motion [4,4] from the reference frame of sample ``index`` to frame ``frame_id``."""
        t = self.first_frame + index + self.offset
        return torch.linalg.inv(self.world_from_cam(t + frame_id)) @ self.world_from_cam(t)

    def _render(self, t: int, supersample: int) -> dict:
        """Ray-cast one frame: image [3,H,W], depth [1,H,W], box mask [1,H,W]."""
        s = supersample
        K = intrinsics(self.h * s, self.w * s)
        rays = (torch.linalg.inv(K) @ pixel_grid(self.h * s, self.w * s).reshape(3, -1))  # z = 1 in camera
        T = self.world_from_cam(t)
        d = T[:3, :3] @ rays
        o = T[:3, 3:]
        inf = torch.full_like(d[0], float("inf"))

        def hit(axis: int, value: float) -> torch.Tensor:
            tt = (value - o[axis]) / d[axis]
            return torch.where((tt > 1e-3) & torch.isfinite(tt), tt, inf)

        cands = [hit(1, CAMERA_HEIGHT), hit(0, -WALL_X), hit(0, WALL_X), hit(2, END_Z)]
        box_t = hit(2, BOX_Z)
        bx = o[0] + box_t * d[0]
        by = o[1] + box_t * d[1]
        x0 = BOX_X0 + self.box_speed * t
        on_box = (bx >= x0) & (bx <= x0 + BOX_WIDTH) & (by >= CAMERA_HEIGHT - BOX_HEIGHT) & (by <= CAMERA_HEIGHT)
        cands.append(torch.where(on_box, box_t, inf))
        stack = torch.stack(cands)
        depth, which = stack.min(0)  # rays have camera z = 1, so the ray parameter is the depth
        p = o + depth * d
        tex = torch.stack([
            _texture(p[0], p[2], 0.0),  # ground (x, z)
            _texture(p[2], p[1], 1.0),  # left wall (z, y)
            _texture(p[2], p[1], 2.0),  # right wall
            _texture(p[0], p[1], 3.0),  # end wall (x, y)
            _texture(3 * (p[0] - x0), 3 * p[1], 4.0),  # box, finer texture, moves with it
        ])  # [5,3,N]
        image = tex.gather(0, which.view(1, 1, -1).expand(1, 3, -1))[0]
        shape = (self.h * s, self.w * s)
        image = image.reshape(1, 3, *shape)
        depth = depth.reshape(1, 1, *shape)
        box = (which == 4).float().reshape(1, 1, *shape)
        if s > 1:  # anti-alias: average the supersampled colours; depth and mask at the sample centres
            image = F.avg_pool2d(image, s)
            depth = F.avg_pool2d(depth, s)
            box = (F.avg_pool2d(box, s) > 0.5).float()
        return {"image": image[0], "depth": depth[0], "box": box[0]}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        t = index + self.offset
        sample: dict = {}
        for f in self.frame_ids:
            image = self.frames[t + f]["image"].unsqueeze(0)
            for s in range(self.num_scales):
                scaled = image if s == 0 else F.interpolate(image, scale_factor=0.5**s, mode="area")
                sample[keys.color(f, s)] = scaled[0]
                sample[keys.color(f, s, augmented=True)] = scaled[0].clone()
        for s, Ks in enumerate(intrinsics_pyramid(self.K.unsqueeze(0), self.num_scales)):
            sample[keys.intrinsics(s)] = Ks[0]
            sample[keys.intrinsics(s, inverse=True)] = torch.linalg.inv(Ks[0])
        sample[keys.DEPTH_GT] = self.frames[t]["depth"].clone()
        sample[keys.DYNAMIC_MASK] = self.frames[t]["box"].clone() if self.box_speed else torch.zeros(1, self.h, self.w)
        sample[keys.FLIPPED] = torch.tensor(False)
        sample[keys.INDEX] = torch.tensor(index)
        sample[keys.SEQUENCE] = "tiny"
        sample[keys.FRAME] = torch.tensor(self.first_frame + t)
        return sample


# ------------------------------------------------------------------ a tiny backbone for fast tests
TINY_ENCODER = "tiny_test"


class TinyEncoder(torch.nn.Module):
    """Five strided convs (strides 2..32): the encoder interface at a fraction of ResNet18's cost."""

    def __init__(self, in_channels: int = 3, pretrained_path: str = ""):
        super().__init__()
        self.channels = [8, 8, 16, 16, 32]
        chans = [in_channels] + self.channels
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), torch.nn.ReLU()) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


def register_tiny_encoder() -> str:
    from mcdepth_train.networks.encoders import ENCODERS, register_encoder

    if TINY_ENCODER not in ENCODERS:
        register_encoder(TINY_ENCODER)(TinyEncoder)
    return TINY_ENCODER


def tiny_config(out_dir, overrides=()):
    """A run config for 64x128 tiny-scene training with the tiny encoder, plus dotted ``overrides``."""
    from mcdepth_train.config import load_config

    register_tiny_encoder()
    overrides = [
        f"run.out_dir={out_dir}", "run.progress=false", "run.deterministic=true",
        "data.height=64", "data.width=128",
        f"model.encoder={TINY_ENCODER}", f"model.pose_encoder={TINY_ENCODER}", "model.splat_supersample=2",
        "stage1.epochs=3", "stage1.batch_size=2", "stage1.checkpoint_every=2", "stage1.log_every=1",
        "stage1.val_batches=1", "stage1.lr=0.001",
    ] + list(overrides)
    return load_config([], overrides)
