"""Pose network: ResNet on a frame pair -> rigid motion (rotation vector + translation)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..checks import check_tensor
from ..geometry import invert_pose, pose_vec_to_matrix
from .depth import IMAGENET_MEAN, IMAGENET_STD
from .encoders import build_encoder


class PoseNet(nn.Module):
    """[B,6,H,W] (frame a, frame b) RGB in [0,1] -> ``b_from_a`` as [B,4,4].

    The outputs are scaled by 0.01 (rotation) and ``translation_scale`` so training starts near
    the identity (monodepth2), except that the translation starts at ``initial_forward_motion``
    along the optical axis: the later camera sits that far ahead of the earlier one.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        pretrained_path: str = "",
        rotation: str = "axis_angle",
        translation_scale: float = 0.01,
        num_frames: int = 2,
        initial_forward_motion: float = 0.0,
    ):
        super().__init__()
        if translation_scale <= 0:
            raise ValueError(f"translation_scale: must be > 0, got {translation_scale}")
        self.rotation = rotation
        self.translation_scale = translation_scale
        self.encoder = build_encoder(encoder, in_channels=3 * num_frames, pretrained_path=pretrained_path)
        ch = self.encoder.channels[-1]
        self.head = nn.Sequential(
            nn.Conv2d(ch, 256, 1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 6, 1),
        )
        # Forward driving seen from the earlier frame: later_from_earlier has t_z = -forward.
        # From random weights, starting at the identity, min reprojection lets a sideways motion
        # explain the radial flow half an image per source, and the net stays there (measured).
        with torch.no_grad():
            self.head[-1].bias[5] = -initial_forward_motion / translation_scale
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN * num_frames).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD * num_frames).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, cfg) -> "PoseNet":
        m = cfg.model
        return cls(m.pose_encoder, m.pretrained_path, m.rotation, m.translation_scale,
                   initial_forward_motion=m.initial_forward_motion)

    def forward_vectors(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation [B,3] and translation [B,3] of ``b_from_a``."""
        check_tensor("frame_a", frame_a, "B3HW")
        check_tensor("frame_b", frame_b, "B3HW")
        x = (torch.cat([frame_a, frame_b], 1) - self.mean) / self.std
        out = self.head(self.encoder(x)[-1]).mean(dim=(2, 3))
        return 0.01 * out[:, :3], self.translation_scale * out[:, 3:]

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> torch.Tensor:
        rot, trans = self.forward_vectors(frame_a, frame_b)
        return pose_vec_to_matrix(rot, trans, self.rotation)

    def src_from_ref(self, reference: torch.Tensor, source: torch.Tensor, source_id: int) -> torch.Tensor:
        """``src_from_ref`` [B,4,4] with the pair always fed in temporal order (monodepth2).

        A source before the reference (``source_id < 0``) is fed as (source, reference) and the
        result inverted, so the net always predicts the motion from the earlier to the later
        frame. Fed as (reference, source) for both, a from-scratch net must learn to flip the sign
        with the order; measured on the synthetic drive it collapses to one constant pose
        instead, and depth never learns.
        """
        if source_id < 0:
            return invert_pose(self(source, reference))
        return self(reference, source)
