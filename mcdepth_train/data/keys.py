"""The one sample dict every dataset returns (and the default collate batches). Keys are documented here only.

Frame ids are temporal offsets (-1, 0, +1; 0 is the reference frame). Scale s is a pyramid level:
images at scale s are (H / 2**s, W / 2**s). Images are float32 RGB in [0, 1], channels first.

| key                         | shape (one sample)  | meaning                                                              |
|-----------------------------|---------------------|----------------------------------------------------------------------|
| ("color", f, s)             | [3, H/2^s, W/2^s]   | frame f, geometric augmentation (flip) only: for losses              |
| ("color_aug", f, s)         | [3, H/2^s, W/2^s]   | frame f with colour jitter too: network input                        |
| ("K", s)                    | [3, 3]              | intrinsics at scale s (adjusted for resize and flip)                 |
| ("inv_K", s)                | [3, 3]              | inverse of ("K", s)                                                  |
| "depth_gt"                  | [1, Hg, Wg]         | optional: ground-truth depth of frame 0 in metres, 0 = no measurement |
| "dynamic_mask"              | [1, Hg, Wg]         | optional: 1 on moving-object pixels of frame 0 (evaluation, synthetic) |
| "instance_map"              | [1, H, W] int64     | optional: instance id per pixel of frame 0 (0 = none)                 |
| "instance_dynamic"          | [256] bool          | optional: entry i is True if instance id i moves (synthetic ground truth) |
| ("cam_pose", f)             | [4, 4]              | optional: world_from_cam of frame f (synthetic ground truth; mirrored on flip) |
| "pseudo_label"              | [1, H, W]           | optional: pseudo depth label of frame 0 (stage 3), 0 = none           |
| "pseudo_dynamic"            | [1, H, W]           | optional: moving-object mask of the pseudo label (stage 3)            |
| "flipped"                   | bool tensor []      | whether the sample was flipped left-right                             |
| "index"                     | int64 tensor []     | index of the sample in its dataset                                    |
| "sequence"                  | str                 | sequence name (drive, bag, synthetic sequence)                        |
| "frame"                     | int64 tensor []     | frame number of frame 0 within its sequence                           |

Everything that is a per-pixel map of frame 0 (depth_gt, dynamic_mask, instance_map, pseudo_*)
flips with the images, left-right, when the sample is flipped.
"""
from __future__ import annotations

COLOR = "color"
COLOR_AUG = "color_aug"
K = "K"
INV_K = "inv_K"
DEPTH_GT = "depth_gt"
DYNAMIC_MASK = "dynamic_mask"
INSTANCE_MAP = "instance_map"
INSTANCE_DYNAMIC = "instance_dynamic"
CAM_POSE = "cam_pose"
MAX_INSTANCES = 256  # length of the instance_dynamic vector (instance ids must be below it)
PSEUDO_LABEL = "pseudo_label"
PSEUDO_DYNAMIC = "pseudo_dynamic"
FLIPPED = "flipped"
INDEX = "index"
SEQUENCE = "sequence"
FRAME = "frame"

# Per-pixel maps of frame 0 that must flip with the images.
PIXEL_MAPS = (DEPTH_GT, DYNAMIC_MASK, INSTANCE_MAP, PSEUDO_LABEL, PSEUDO_DYNAMIC)


def color(frame_id: int, scale: int = 0, augmented: bool = False) -> tuple:
    return (COLOR_AUG if augmented else COLOR, frame_id, scale)


def intrinsics(scale: int = 0, inverse: bool = False) -> tuple:
    return (INV_K if inverse else K, scale)
