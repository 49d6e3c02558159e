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
import torch.nn.functional as F

from ..data import keys
from ..losses.reprojection import PhotometricOptions, multiscale_photometric_loss, multiscale_smoothness
from ..networks.depth import DepthNet
from ..networks.pose import PoseNet
from .frames import load_frame

OBJECT_MASK = "object_mask"  # (OBJECT_MASK, frame_id): [1,H,W] float, the object's mask in that frame
RECORD_SOURCES = {-1: "instances_prev", 1: "instances_next"}


class ObjectModel(nn.Module):
    """Depth + pose nets on mask-multiplied frames; masked photometric + masked smoothness loss."""

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

    @staticmethod
    def masked(batch: dict, frame_id: int) -> torch.Tensor:
        return batch[keys.color(frame_id, 0)] * batch[(OBJECT_MASK, frame_id)]

    def object_depth(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] frame, [B,1,H,W] mask -> [B,1,H,W] object depth o_k (0 outside the mask)."""
        return self.depth.depth(image * mask) * (mask > 0.5)

    def forward(self, batch: dict) -> dict:
        ref = self.masked(batch, 0)
        mask = batch[(OBJECT_MASK, 0)]
        sources = {f: self.masked(batch, f) for f in self.source_ids}
        disps = self.depth(ref)
        poses = {f: self.pose(ref, sources[f]) for f in self.source_ids}
        with torch.autocast(device_type=ref.device.type, enabled=False):
            disps = [d.float() for d in disps]
            photo, details = multiscale_photometric_loss(
                disps, ref, sources, batch[keys.intrinsics(0)], batch[keys.intrinsics(0, inverse=True)],
                {f: p.float() for f, p in poses.items()}, self.photometric, self.depth.min_depth, self.depth.max_depth, mask=mask,
            )
            sizes = [d.shape[-2:] for d in disps]
            images = [F.interpolate(ref, size=s, mode="area") if s != ref.shape[-2:] else ref for s in sizes]
            masks = [F.interpolate(mask, size=s, mode="area") if s != mask.shape[-2:] else mask for s in sizes]
            smooth = multiscale_smoothness(disps, images, self.smooth_weight, True, masks=masks)
        loss = photo + smooth
        return {"loss": loss,
                "scalars": {"loss": loss.detach(), "photometric": photo.detach(), "smoothness": smooth.detach()},
                "images": {"depth": (details["depth"][:1] * mask[:1]).detach(), "target": ref[:1].detach()}}


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
        for index in range(len(frames)):
            record = load_frame(self.masks_dir, index)
            self.items += [(index, k) for k in np.flatnonzero(record["usable"])]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        index, k = self.items[i]
        sample = self.frames[index]
        record = load_frame(self.masks_dir, index)
        out = {key: sample[key] for key in (keys.intrinsics(0), keys.intrinsics(0, inverse=True))}
        out[keys.color(0, 0)] = sample[keys.color(0, 0)]
        out[(OBJECT_MASK, 0)] = torch.from_numpy(record["instances"][k].astype(np.float32))[None]
        for f, name in RECORD_SOURCES.items():
            if keys.color(f, 0) in sample:
                out[keys.color(f, 0)] = sample[keys.color(f, 0)]
                out[(OBJECT_MASK, f)] = torch.from_numpy(record[name][k].astype(np.float32))[None]
        out[keys.INDEX] = torch.tensor(index)
        out["object"] = torch.tensor(int(k))
        return out


def load_stage_nets(model: nn.Module, checkpoint: Path, names=("depth", "pose")) -> None:
    """Copy the named networks' weights from a checkpoint into ``model``'s children of those names."""
    from ..engine.checkpoint import CheckpointError, load_checkpoint

    payload = load_checkpoint(checkpoint)
    children = dict(model.named_children())
    for name in names:
        if name not in payload["models"]:
            raise CheckpointError(f"{checkpoint} has no '{name}' network")
        children[name].load_state_dict(payload["models"][name])
