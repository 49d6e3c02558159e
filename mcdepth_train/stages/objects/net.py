"""Object network (paper 4.2, Eqs. 11-14): per-object depth with the object's rigid motion.

The stage-1 depth and pose nets, initialised from stage 1, see the three frames multiplied by the
object's masks (full frames, not crops). The pose net's output is then the object's motion
relative to the camera, rigid for the whole object, so one consistent scale holds inside the
object: the pixel-wise freedom that made stage 1's moving objects scale-inconsistent is gone. The
object's depth o_k still has an unknown scale relative to the background; DSA fixes that.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ...data import keys
from ...losses.reprojection import PhotometricOptions
from ...networks.depth import DepthNet
from ...networks.pose import PoseNet
from ..frames import load_frame
from .geometry import object_forward, object_losses

OBJECT_MASK = "object_mask"  # (OBJECT_MASK, frame_id): [1,H,W] float, the object's mask in that frame
RECORD_SOURCES = {-1: "instances_prev", 1: "instances_next"}


class ObjectModel(nn.Module):
    """Depth + pose nets on mask-multiplied frames, trained with :func:`objects.object_losses`."""

    def __init__(self, depth_net: DepthNet, pose_net: PoseNet, photometric: PhotometricOptions = PhotometricOptions(),
                 smooth_weight: float = 0.02, source_ids=(-1, 1)):
        super().__init__()
        self.depth = depth_net
        self.pose = pose_net
        self.photometric = photometric
        self.smooth_weight = smooth_weight
        self.source_ids = list(source_ids)

    @classmethod
    def from_config(cls, cfg) -> "ObjectModel":
        return cls(DepthNet.from_config(cfg), PoseNet.from_config(cfg), PhotometricOptions.from_config(cfg.loss),
                   cfg.objects.smooth_weight, [f for f in cfg.data.frame_ids if f != 0])

    def forward(self, batch: dict) -> dict:
        ids = [0] + self.source_ids
        frames = {f: batch[keys.color(f, 0)] for f in ids}
        masks = {f: batch[(OBJECT_MASK, f)] for f in ids}
        depths, poses = object_forward(self.depth, self.pose, frames, masks)
        p = self.photometric
        with torch.autocast(device_type=frames[0].device.type, enabled=False):
            out = object_losses([d.float() for d in depths], frames[0].float(), masks[0],
                                {f: frames[f].float() for f in self.source_ids}, {f: masks[f] for f in self.source_ids},
                                {f: poses[f].float() for f in self.source_ids}, batch[keys.intrinsics(0)].float(),
                                self.smooth_weight, p.ssim_weight, p.l1_weight, p.ssim_luminance)
        return {"loss": out["loss"],
                "scalars": {"loss": out["loss"].detach(), "photometric": out["photo"].detach(), "smoothness": out["smooth"].detach()},
                "images": {"depth": (depths[0][:1] * masks[0][:1]).detach(), "target": (frames[0][:1] * masks[0][:1]).detach()}}


class ObjectSamples(torch.utils.data.Dataset):
    """One sample per usable object of every frame: the frame's sample dict plus the object's masks.

    Args:
        frames: the unaugmented training frames (same order as the masks stage saw them).
        masks_dir: ``RUN/masks/frames`` with one record per frame.
    """

    def __init__(self, frames, masks_dir: Path):
        self.frames = frames
        self.masks_dir = Path(masks_dir)
        self.items: list[tuple[int, int]] = []
        # Each usable object's masks, bit-packed (1/8 of bool), read once here instead of
        # re-reading the frame's whole record for every object sample.
        self.masks: list[dict[int, np.ndarray]] = []
        self.shape: tuple[int, int] | None = None
        for index in range(len(frames)):
            record = load_frame(self.masks_dir, index)
            self.shape = tuple(record["instances"].shape[-2:])
            for k in np.flatnonzero(record["usable"]):
                self.items.append((index, int(k)))
                packed = {0: np.packbits(record["instances"][k])}
                for f, name in RECORD_SOURCES.items():
                    if name in record:
                        packed[f] = np.packbits(record[name][k])
                self.masks.append(packed)

    def __len__(self) -> int:
        return len(self.items)

    def _mask(self, i: int, frame: int) -> torch.Tensor:
        h, w = self.shape
        bits = np.unpackbits(self.masks[i][frame], count=h * w).reshape(h, w)
        return torch.from_numpy(bits.astype(np.float32))[None]

    def __getitem__(self, i: int) -> dict:
        index, k = self.items[i]
        sample = self.frames[index]
        out = {key: sample[key] for key in (keys.intrinsics(0), keys.intrinsics(0, inverse=True))}
        out[keys.color(0, 0)] = sample[keys.color(0, 0)]
        out[(OBJECT_MASK, 0)] = self._mask(i, 0)
        for f in RECORD_SOURCES:
            if keys.color(f, 0) in sample and f in self.masks[i]:
                out[keys.color(f, 0)] = sample[keys.color(f, 0)]
                out[(OBJECT_MASK, f)] = self._mask(i, f)
        out[keys.INDEX] = torch.tensor(index)
        out["object"] = torch.tensor(k)
        return out


def load_stage_nets(model: nn.Module, checkpoint: Path, names=("depth", "pose")) -> None:
    """Copy the named networks' weights from a checkpoint into ``model``'s children of those names."""
    from ...engine.checkpoint import CheckpointError, load_checkpoint

    payload = load_checkpoint(checkpoint)
    children = dict(model.named_children())
    for name in names:
        if name not in payload["models"]:
            raise CheckpointError(f"{checkpoint} has no '{name}' network")
        children[name].load_state_dict(payload["models"][name])
