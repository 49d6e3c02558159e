"""One typed configuration for a run: every default, with its meaning, lives in this file.

A run's config is built from these defaults, then YAML files (in order), then dotted command-line
overrides (``model.encoder=resnet50``). Unknown keys are an error naming the key and where it came
from: a misspelt key never falls back silently to a default. Values are then checked for every
stage at once (``check_values``), so a bad late-stage value stops a run before it starts. The
resolved config is written into the run folder and into every checkpoint, so a checkpoint alone is
enough to rebuild its networks.

Print every key with its default and meaning: ``mcdepth-train config --defaults``.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from mcdepth_ros.contract import PRECISIONS as ENGINE_PRECISIONS  # export.precision: the contract's (stdlib only)


def opt(default: Any, help: str, opt_in: bool = False) -> Any:  # noqa: A002 - mirrors argparse's wording
    """A config field with a default and its one-line documentation.

    ``opt_in``: a key added after runs exist whose default reproduces the behaviour from before it
    existed. At its default it is left out of the pipeline's stage fingerprints, so adding it does
    not make existing runs retrain (``pipeline.py``).
    """
    metadata = {"help": help, "opt_in": opt_in}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


# ----------------------------------------------------------------------------------------- run
@dataclass
class RunConfig:
    out_dir: str = opt("runs/default", "Run folder: checkpoints, logs, manifest and outputs of every stage.")
    seed: int = opt(0, "Seed for Python, NumPy and torch (each data-loader worker derives its own).")
    device: str = opt("cpu", "torch device for training and inference: 'cpu', 'cuda', 'cuda:1', ...")
    deterministic: bool = opt(False, "Ask torch for deterministic kernels (CPU runs reproduce bit for bit).")
    num_workers: int = opt(0, "Data-loader worker processes.")
    amp: str = opt("none", "Mixed precision on CUDA: 'none', 'bf16' or 'fp16' (ignored on CPU).")
    channels_last: bool = opt(False, "Use channels_last memory format for conv nets on CUDA.")
    tensorboard: bool = opt(True, "Write TensorBoard scalars and images under RUN/<stage>/tb.")
    progress: bool = opt(True, "Show tqdm progress bars.")


# ---------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    dataset: str = opt("synthetic", "Source: 'synthetic', 'kitti', 'cityscapes', 'folder' or 'rosbag'.")
    root: str = opt("", "Dataset root folder (KITTI raw, Cityscapes, image folder) or bag path (rosbag).")
    split: str = opt("", "Split file, or the name of a shipped split (mcdepth_train/data/splits/<name>/); empty = every usable frame.")
    val_split: str = opt("", "Validation split file or name; empty = a held-out tail of the training frames.")
    height: int = opt(192, "Network input height in pixels (the full-resolution pyramid level).")
    width: int = opt(640, "Network input width in pixels.")
    frame_ids: list = opt([-1, 0, 1], "Temporal offsets of the frames in a sample; 0 is the reference frame.")
    num_scales: int = opt(4, "Pyramid levels of images and intrinsics in a sample (each half the last).")
    flip_prob: float = opt(0.5, "Probability of a horizontal flip (images, masks, labels and intrinsics together).")
    color_jitter_prob: float = opt(0.5, "Probability of colour jitter, the same jitter on every frame of a sample.")
    # Synthetic generator
    synth_sequences: int = opt(4, "Synthetic: number of sequences to generate.")
    synth_frames: int = opt(60, "Synthetic: frames per sequence.")
    synth_seed: int = opt(0, "Synthetic: seed of the first sequence (sequence k uses seed + k).")
    synth_test_sequences: int = opt(1, "Synthetic: held-out test sequences (seeds seed + 1000 + k).")
    synth_noise: float = opt(0.0, "Synthetic: Gaussian pixel noise (0-1 scale).")
    synth_lighting: float = opt(0.0, "Synthetic: amplitude of a slow global brightness change (0 = constant light).")
    gt_root: str = opt("", "KITTI: root of the depth benchmark's annotated maps (<root>/{train,val}/<drive>/proj_depth/groundtruth); empty = look inside each drive folder.")
    gt_depth: str = opt("auto", "Evaluation ground truth (KITTI): 'auto' (improved maps, then projected Velodyne), 'groundtruth', 'velodyne' or 'none'.")
    # Image folder / video
    intrinsics_file: str = opt("", "YAML with fx, fy, cx, cy (and optional distortion) for folder/video/rosbag input.")
    # Rosbag
    image_topic: str = opt("/camera/image_raw", "Rosbag: image topic (sensor_msgs/Image or CompressedImage).")
    camera_info_topic: str = opt("/camera/camera_info", "Rosbag: sensor_msgs/CameraInfo topic.")
    stamp_tolerance_s: float = opt(0.02, "Rosbag: largest image/camera_info time difference accepted as a match.")
    frame_stride: int = opt(1, "Keep every n-th frame (rosbag, folder, video).")
    min_image_change: float = opt(0.0, "Drop frames whose mean absolute change to the last kept frame is below this (0-255 scale); 0 keeps all.")
    undistort: bool = opt(True, "Undistort frames with the camera model's D/K when distortion is present.")
    motion_topic: str = opt("auto", "Rosbag: nav_msgs/Odometry or geometry_msgs/TwistStamped topic used to drop frames where the vehicle stands still ('auto' = the bag's only such topic, if it has exactly one; '' = none).")
    min_speed: float = opt(0.5, "Rosbag: frames with a speed below this (m/s) on motion_topic are dropped.")
    bag_recover: bool = opt(False, "Rosbag: a cut-off recording (recorder stopped before it finished writing: no MCAP footer, no metadata.yaml, a short sqlite file) is read up to the cut instead of refused.", opt_in=True)


# --------------------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    encoder: str = opt("resnet18", "Depth-net encoder from the registry: 'resnet18', 'resnet34' or 'resnet50'.")
    pose_encoder: str = opt("resnet18", "Pose-net encoder (on the 6-channel image pair).")
    pretrained_path: str = opt("", "Local file with ImageNet weights for the encoders (state dict); empty = random init.")
    min_depth: float = opt(0.1, "Smallest depth the disparity head can output (sigmoid 1 -> min_depth).")
    max_depth: float = opt(100.0, "Largest depth the disparity head can output (sigmoid 0 -> max_depth).")
    rotation: str = opt("axis_angle", "Pose parameterisation of the rotation: 'axis_angle' or 'euler'.")
    translation_scale: float = opt(0.01, "Scale applied to the pose net's translation output.")
    initial_forward_motion: float = opt(
        0.03, "Pose net's starting translation along the optical axis per frame (model units; 0 = start at "
        "the identity). A camera that drives forward: without this prior a from-scratch pose net settles "
        "on sideways motion (docs/stage1.md).")
    motion_net: str = opt("raft_small", "Pixel-wise motion net: 'raft_small' or 'raft_large' (torchvision RAFT).")
    motion_iters: int = opt(1, "RAFT update iterations.")
    motion_input_scale: int = opt(1, "RAFT sees the motion net's two images upsampled by this factor (at least 128 px a side): "
                                     "it correlates features at 1/8 of its input, so 2 gives a car twice the cells across. Costs time: "
                                     "at 64x192, 2 made a stage-1 step 1.4x slower (docs/motion_pretraining.md). "
                                     "Must match the scale model.motion_weights was trained at (its card).")
    motion_weights: str = opt("shipped", "Local file with torchvision RAFT weights (state dict of the chosen motion_net) "
                                         "to start the motion net from; 'shipped' = the repository's RAFT-small pre-trained on "
                                         "synthetic motion (mcdepth-train pretrain-motion; its held-out scores in "
                                         "docs/motion_pretraining.md); empty = random init (the authors').")
    splat_supersample: int = opt(3, "Upsample reference depth/image by this factor before forward splatting (fills holes).")


# -------------------------------------------------------------------------------------- losses
@dataclass
class LossConfig:
    ssim_weight: float = opt(0.85, "Weight of (1-SSIM)/2 in the photometric error (authors: 3, with l1_weight 2).")
    l1_weight: float = opt(0.15, "Weight of the L1 term in the photometric error.")
    ssim_luminance: bool = opt(True, "Keep SSIM's luminance term (the authors drop it).")
    automask: bool = opt(True, "Exclude pixels where an unwarped source matches better (auto-masking).")
    smooth_weight: float = opt(1e-3, "Edge-aware smoothness weight (on mean-normalised disparity).")
    smooth_scale_decay: bool = opt(True, "Divide the smoothness weight by 2**scale at coarser scales.")
    sparsity_weight: float = opt(0.01, "Motion sparsity weight (Li et al. 2021) on the masked motion carried back to the reference "
                                       "view, in pixel units (the authors' 0.02 acts before the perspective divide; derivation in "
                                       "docs/stage1.md). Off in the motion-only phase.")
    sparsity_ramp_steps: int = opt(100, "Stage 1: the sparsity weight rises linearly from 0 over this many steps from the start of "
                                        "the 'all' phase (0 = full weight at once), so motion can appear before it is kept sparse.")


# ------------------------------------------------------------------------------ training phases
@dataclass
class TrainSchedule:
    """What every training stage shares: optimiser, schedule, checkpoints and logging."""

    epochs: int = opt(15, "Training epochs.")
    max_steps: int = opt(0, "Stop after this many optimiser steps in total (0 = run all epochs).")
    batch_size: int = opt(12, "Samples per optimiser step (per process under torchrun).")
    lr: float = opt(2e-4, "Adam learning rate.")
    lr_milestones: list = opt([10], "Epochs at which the learning rate is multiplied by lr_gamma.")
    lr_gamma: float = opt(0.5, "Learning-rate factor at each milestone.")
    grad_clip: float = opt(10.0, "Clip the global gradient norm to this (0 = no clipping).")
    checkpoint_every: int = opt(500, "Write a resumable checkpoint every this many steps (and at each epoch end).")
    log_every: int = opt(50, "Log scalars every this many steps (images every 10x that).")
    val_every: int = opt(0, "Validate every this many steps (0 = at each epoch end).")
    val_batches: int = opt(20, "Validation batches per validation (photometric loss; no ground truth).")


@dataclass
class Stage1Config(TrainSchedule):
    depth_pose_epochs: int = opt(1, "First epochs that train depth+pose only, with the motion field held at zero.")
    motion_only_epochs: int = opt(0, "Following epochs that train the motion net alone; then all nets together (the authors: 1, with stage1.motion_lr_scale=1; with the default frozen pre-trained motion net there is nothing to train alone).")
    motion_mean_threshold: bool = opt(True, "Keep residual motion only where |m| >= its image mean (most of a scene is static).")
    report_gt: bool = opt(False, "Also measure depth against ground truth at each validation (reported in summary.json only, never used to choose checkpoints).")
    motion_two_sided: bool = opt(True, "Keep motion only where both source frames see it (back-splatted to the reference).")
    motion_lr_scale: float = opt(0.0, "Learning rate of the motion net as a multiple of lr. 0 (default) = frozen: the pre-trained model.motion_weights as they are, because the photometric loss erases their motion (docs/stage1.md, 'Keeping the pre-trained motion'); then motion_only_epochs must be 0. The authors' set-up: 1 with motion_only_epochs=1 and model.motion_weights=\"\".")
    init_checkpoint: str = opt("", "Start stage 1 from the depth, pose and motion nets of this checkpoint (e.g. a synthetic run's RUN/stage1/checkpoints/best.pt) instead of random or ImageNet weights; a resumed run continues from its own last.pt.", opt_in=True)


@dataclass
class MasksConfig:
    source: str = opt("self_supervised", "Instances from 'self_supervised', 'semantic_prior' (Mask R-CNN COCO) or 'folder'.")
    motion_source: str = opt("dis", "Residual motion the masks stage reads: 'dis' (OpenCV's DIS optical flow between the splatted reference and the source frame, no training) or 'net' (stage 1's motion net, the paper's). Stage 1 itself is the same either way. At three drives 'dis' found more moving cars and kept the static region nearer stage 1's (docs/stage2.md, 'Motion from DIS flow').")
    dis_preset: str = opt("medium", "masks.motion_source=dis: OpenCV DIS preset ('ultrafast', 'fast', 'medium').")
    dis_min_width: int = opt(768, "masks.motion_source=dis: upsample the pair to at least this width first (DIS matches 8x8 patches; at 192 pixels a car is a few patches wide).")
    motion_threshold_px: float = opt(1.0, "Dynamic evidence: mean residual motion over both sources at least this (pixels).")
    min_relative_motion: float = opt(0.5, "Dynamic evidence also needs the residual motion to be at least this share of the translational flow through stage-1 depth: a static point whose depth is off by a share e needs about e of it, so 0.5 leaves out what a depth error under 50% explains (parked cars). 0 = off (docs/stage2.md).")
    far_explains: bool = opt(False, "The relative rule also calls a depth error any residual that moves a point as if it were farther than stage 1 says, up to infinity (the sky and far walls, which a depth net puts too near; it loses cars that move towards the focus of expansion). Four times more precise masks at three drives, but no better depth over five paired runs (docs/stage2.md, 'Motion from DIS flow').", opt_in=True)
    dynamic_fraction: float = opt(0.5, "An instance is moving if at least this fraction of its pixels show motion.")
    central_strip_fraction: float = opt(0.05, "Instances touching the central vertical strip of this width (fraction of W) count as moving (0 = off).")
    min_instance_fraction: float = opt(0.005, "Drop instances smaller than this fraction of the image.")
    contact_ratio: float = opt(0.0, "Contact rule: an instance whose stage-1 depth at its bottom edge is more than this many times nearer than the road plane under it counts as moving (a crossing car; needs its contact in view). 0 = off, the paper's rules only (docs/stage2.md).", opt_in=True)
    grow_depth_tolerance: float = opt(0.0, "Grow each moving instance into the connected non-ground pixels near it (masks.grow_radius_px) whose stage-1 depth is within a factor 1 + this of its median depth: motion evidence covers only part of a car. 0 = off: at three drives it found more of each car but the labels got worse (docs/stage2.md, 'Growing the moving components').", opt_in=True)
    grow_radius_px: int = opt(4, "masks.grow_depth_tolerance: grow at most this many pixels from the motion component.", opt_in=True)
    max_height_ratio: float = opt(0.0, "Drop instances that could not stand on the road: taller than this many times the camera's height above it, measured from their rows and the ground plane's horizon (sky and building tops end on or above the horizon). 3 allows road users up to 4.9 m tall under a 1.65 m car camera; a low robot camera needs more. 0 = off (docs/stage2.md, 'Road users stand on the road').", opt_in=True)
    ground_normal_deg: float = opt(10.0, "Ground: surface normal within this many degrees of vertical.")
    maskrcnn_weights: str = opt("", "Local file with Mask R-CNN COCO weights (semantic prior) or an initialisation.")
    maskrcnn_rounds: int = opt(1, "Self-training rounds of the Mask R-CNN on pseudo masks (self_supervised source).")
    maskrcnn_score: float = opt(0.5, "Minimum detection score kept from Mask R-CNN.")
    instance_folder: str = opt("", "Folder of precomputed instance PNGs (source 'folder').")
    correspondence_threshold: float = opt(0.5, "Warped object masks in neighbouring frames are thresholded at this.")
    correspondence_supersample: int = opt(2, "Splat reference masks into frames +-1 at this multiple of the resolution (coverage is averaged back).")
    maskrcnn_min_size: int = opt(192, "Mask R-CNN input: shorter image side resized to this (torchvision min_size).")
    maskrcnn_max_size: int = opt(640, "Mask R-CNN input: longer image side at most this (torchvision max_size).")
    maskrcnn_steps: int = opt(2000, "Self-supervised Mask R-CNN: SGD steps per self-training round.")
    maskrcnn_batch_size: int = opt(4, "Self-supervised Mask R-CNN: images per step.")
    maskrcnn_lr: float = opt(0.005, "Self-supervised Mask R-CNN: SGD learning rate (momentum 0.9).")
    maskrcnn_proposals: int = opt(2000, "Mask R-CNN training: region proposals kept per image before and after NMS (torchvision's rpn_pre/post_nms_top_n_train). A street frame has a few objects; 300 trains about 3x faster on a CPU.", opt_in=True)
    maskrcnn_rois_per_image: int = opt(512, "Mask R-CNN training: proposals sampled per image for the box and mask heads (torchvision's box_batch_size_per_image; 64 on a CPU).", opt_in=True)
    maskrcnn_checkpoint_every: int = opt(100, "Self-supervised Mask R-CNN: write a resumable checkpoint every this many steps (RUN/masks/maskrcnn/roundN/checkpoints/last.pt).", opt_in=True)
    semantic_classes: list = opt([1, 2, 3, 4, 6, 7, 8], "Semantic prior: COCO class ids kept (person, bicycle, car, motorcycle, bus, train, truck).")
    appearance_net_steps: int = opt(0, "Self-supervised instances: train a small segmentation net this many steps on the moving objects the rules keep (against the ground and what lies above the horizon), and add the objects that look like them, parked and lead cars included, as instances (stages/masks/appearance.py; trained with masks.ground_net_lr and masks.ground_smooth_weight). Needs masks.maskrcnn_steps=0. 0 = off.", opt_in=True)
    appearance_threshold: float = opt(0.5, "Appearance net: probability from which a pixel looks like the movers.", opt_in=True)
    appearance_depth_step: float = opt(0.0, "Appearance net: leave out pixels where stage 1's log depth steps by more than this to a neighbour, so that cars touching in the image at different depths become separate instances. 0 = no split.", opt_in=True)
    ground_net: bool = opt(True, "Learn the ground with a small segmentation net (else use the normal-based mask as is).")
    ground_net_steps: int = opt(2000, "Ground net: Adam steps.")
    ground_net_lr: float = opt(1e-3, "Ground net: Adam learning rate.")
    ground_smooth_weight: float = opt(0.1, "Ground net: weight of the edge-aware smoothness next to the BCE.")


SHAPE_SOURCES = ("object_net", "stage1")


@dataclass
class ObjectsConfig(TrainSchedule):
    epochs: int = opt(5, "Object-network training epochs.")
    smooth_weight: float = opt(0.02, "Smoothness weight inside the object mask.")
    shape_source: str = opt("object_net", "Where each object's depth shape o_k comes from: 'object_net' (paper Eqs. 11-14, trained in this stage) or 'stage1' (stage 1's depth over its median, no training; for comparison: stage 3 on its labels was worse at three drives, docs/stage2.md).", opt_in=True)
    min_parallax_px: float = opt(1.0, "An object whose motion relative to the camera shows less parallax than this (pixels, the larger of the two neighbouring frames; 1 px as for dynamic evidence) has unobservable depth: it keeps stage 1's depth over its median as its shape (DSA sets the scale). 0 = always the object net's depth.")


@dataclass
class DSAConfig(TrainSchedule):
    epochs: int = opt(20, "DSA training epochs.")
    batch_size: int = opt(32, "Static objects per DSA step.")
    lr: float = opt(1e-3, "DSA Adam learning rate.")
    lr_milestones: list = opt([3, 10], "DSA learning-rate milestones (epochs).")
    huber_delta: float = opt(0.005, "Huber delta of the DSA loss.")
    crop_size: int = opt(128, "DSA input crop size around each object (pixels, square).")
    held_out_fraction: float = opt(0.2, "Fraction of static objects held out to measure the scale error.")
    min_static_objects: int = opt(4, "Fewer usable static objects than this: no DSA training; moving objects are scaled to the ground under them (ground-contact fallback).")
    min_contact_share: float = opt(0.5, "Ground-contact fallback: an object whose columns see the ground under them in less than this share has its contact out of view (cut by the image's lower edge); the road there only bounds its depth, so it keeps stage 1's level when that is nearer; 0 = always the road.")
    contact_depth: str = opt("bottom", "Ground-contact fallback: which depth of o_k is put on the road under the object: 'bottom' (o_k at its lowest pixel in each column) or 'median' (o_k's median over the object: its lowest pixels blend into the road, docs/stage2.md).", opt_in=True)
    groups: int = opt(32, "GroupNorm groups in the DSA ResNet18 (replaces BatchNorm; objects per batch vary).")
    context: float = opt(2.0, "DSA crop side as a multiple of the object's longer box side (room for the ground around it).")


@dataclass
class PseudoConfig:
    storage: str = opt("png16", "Pseudo-label storage: 'png16' (16-bit PNG of log depth, per-frame constants in the manifest) or 'float16' (.npy).")
    inspection_samples: int = opt(16, "Frames (evenly spaced) that get an inspection strip under RUN/pseudo/inspect.")
    max_ratio_to_ground: float = opt(2.0, "A moving object whose label (median of DSA scale x object depth) is more than this factor nearer or farther than the ground at its bottom edge is left out of the labels (stage-1 depth there, no pseudo-label loss); 0 = no check.")


PL_ERRORS = ("depth", "relative")


@dataclass
class Stage3Config(TrainSchedule):
    epochs: int = opt(5, "Final-net training epochs per round.")
    lr: float = opt(2e-5, "Final-net Adam learning rate.")
    lr_milestones: list = opt([], "Final-net learning-rate milestones (epochs).")
    pl_weight: float = opt(0.1, "Weight lambda of the scale-invariant pseudo-label loss.")
    pl_upper_percentile: float = opt(90.0, "Second median pass keeps scaled labels between min(D) and this percentile of D.")
    pl_error: str = opt("depth", "Pseudo-label error per pixel: 'depth' = |D - s D_bar| (paper Eq. 19, in the net's depth units) or 'relative' = |D - s D_bar| / (s D_bar).", opt_in=True)
    pl_static_weight: float = opt(0.0, "The pseudo-label term also on the static region (label = stage 1's depth there; in a self-training round, the previous round's), weighted this much beside the moving one; 0 = the paper's (moving region only). Holds parked cars where stage 1 had them (docs/stage3.md).", opt_in=True)
    self_training_rounds: int = opt(1, "Rounds where the latest final net's depth becomes the next pseudo label.")
    motion_lr_scale: float = opt(1.0, "Learning rate of the motion net as a multiple of stage3.lr (as stage1.motion_lr_scale); 0 = frozen: stage 1's pre-trained motion kept as it is; made no measurable difference to depth at three drives (docs/stage2.md).", opt_in=True)
    keep_better: bool = opt(False, "Adopt a round (stage 3 or a self-training round) only if its validation photometric loss over the whole val split is below that of the net it started from; else keep that net (the next round starts from it, export uses it). No ground truth. Off (the paper's: always the last round): at three drives it stopped the drift, on two demo seeds it tied (docs/stage3.md).", opt_in=True)
    seed: int = opt(-1, "Seed of stage 3's training (data order, augmentation, initial draws); -1 = run.seed. Changing it alone re-runs stage 3 on the same stage 1 and labels: its run-to-run spread (docs/stage3.md).", opt_in=True)


@dataclass
class PretrainMotionConfig(TrainSchedule):
    """``mcdepth-train pretrain-motion``: supervised pre-training of the motion net on the generator's exact residual motion."""

    epochs: int = opt(1, "Must be 1: pairs are drawn on the fly and the run is max_steps steps (learning-rate steps: lr_decay_steps).")
    max_steps: int = opt(1000, "Pre-training steps.")
    batch_size: int = opt(8, "Pairs per step.")
    lr: float = opt(4e-4, "Adam learning rate.")
    lr_milestones: list = opt([], "Must be empty: the run is one epoch; use lr_decay_steps.")
    lr_decay_steps: list = opt([], "Steps after which the learning rate is multiplied by lr_gamma (e.g. [2500] with max_steps=3000: the last 500 steps at lr * lr_gamma).")
    lr_gamma: float = opt(0.25, "Learning-rate factor at each of lr_decay_steps.")
    checkpoint_every: int = opt(50, "Write the resumable checkpoint every this many steps.")
    log_every: int = opt(10, "Log scalars every this many steps.")
    val_every: int = opt(100, "Validate on the held-out pairs every this many steps.")
    val_batches: int = opt(4, "Validation batches (of batch_size held-out pairs).")
    height: int = opt(64, "Pair height (the motion net's input in stage 1: data.height).")
    width: int = opt(192, "Pair width (data.width).")
    seed: int = opt(0, "Seed of the pairs: pair i of the run is drawn from (seed, i); scenes use seeds >= 10**7, never a demo or bench seed.")
    frame_offsets: list = opt([-2, -1, 1, 2], "Source frames relative to the reference (stage 1 uses -1 and 1; 2 doubles the motion).")
    exact_fraction: float = opt(0.4, "Share of pairs splatted with the exact depth and pose (only moving cars carry residual).")
    depth_log_std: float = opt(0.15, "Perturbed pairs: largest std of the smooth log-depth noise (drawn per pair in [0, this]).")
    rotation_deg: float = opt(0.3, "Perturbed pairs: largest per-axis rotation error of the splat's pose (degrees).")
    translation_m: float = opt(0.1, "Perturbed pairs: largest per-axis translation error of the splat's pose (metres).")
    moving_weight: float = opt(4.0, "Loss weight of moving-car pixels relative to the rest.")
    max_flow_px: float = opt(48.0, "Pixels whose target is longer than this are left out of the loss.")
    huber_px: float = opt(3.0, "Flow loss: Huber with this delta (px) per component; 0 = L1 (RAFT's), which pulls a net that cannot read motion yet to zero.")
    warmup_steps: int = opt(50, "Linear learning-rate warm-up over the first steps (0 = none).")
    texture_pool: int = opt(8, "Texture atlases the scenes draw from (each takes ~0.5 s to build; 8 stay cached).")
    val_pairs: int = opt(32, "Held-out validation pairs (their own seeds).")


@dataclass
class EvalConfig:
    protocol: str = opt("auto", "Evaluation protocol: 'synthetic' (no crop), 'kitti_eigen' (Garg crop), 'cityscapes' (ManyDepth's crop), or 'auto': the evaluation data set's (kitti -> kitti_eigen, cityscapes -> cityscapes, else synthetic). Sets the crop when eval.crop is 'auto'.")
    dataset: str = opt("", "Evaluation data set (as data.dataset; needs ground truth); empty = the training data set.")
    root: str = opt("", "Root of the evaluation data set (as data.root).")
    min_depth: float = opt(1e-3, "Ground-truth depths below this are ignored.")
    max_depth: float = opt(80.0, "Ground-truth depths above this are ignored; predictions are capped to it.")
    median_scaling: bool = opt(True, "Scale each prediction by median(gt)/median(pred) over the image's valid pixels.")
    crop: str = opt("auto", "Evaluation crop: 'auto' (the protocol's), 'none', 'garg', 'eigen' (KITTI) or 'cityscapes'.")
    # LiDAR ground truth from a bag, and road regions on real data (docs/real_data.md)
    lidar_topic: str = opt("", "Rosbag evaluation: sensor_msgs/PointCloud2 topic whose scans, projected through the matched camera_info, are the ground truth; empty = none.", opt_in=True)
    lidar_to_camera: list = opt([], "Rosbag evaluation: camera_from_lidar, a 4x4 (16 numbers row-major, or 4 rows) taking LiDAR points into the camera_info frame; empty = look it up in the bag's /tf_static.", opt_in=True)
    lidar_stamp_tolerance_s: float = opt(0.05, "Rosbag evaluation: a scan is the ground truth of the image nearest in time if their stamps differ by at most this.", opt_in=True)
    lidar_pixel_offset: int = opt(0, "Rosbag evaluation: added to each projected LiDAR point's rounded pixel; 0 = ROS/OpenCV (pixel centres at integers), -1 = the KITTI devkit's convention (what the KITTI loader's Velodyne maps use).", opt_in=True)
    lidar_regions: bool = opt(False, "Add the regions 'ground' (points near a RANSAC road plane) and 'objects' (points above it in the road corridor: mostly vehicles, a proxy for dynamic) from the ground truth itself.", opt_in=True)
    ground_tolerance_m: float = opt(0.05, "Road regions: ground = points within this distance of the road plane (m).", opt_in=True)
    object_height_m: list = opt([0.3, 3.0], "Road regions: objects = points between these heights above the road plane (m) ...", opt_in=True)
    corridor_half_width_m: float = opt(5.0, "Road regions: ... and at most this far left or right of the camera (m).", opt_in=True)
    unscaled_row: bool = opt(False, "Also report every checkpoint without median scaling (for models with metric scale).", opt_in=True)


@dataclass
class ExportConfig:
    height: int = opt(192, "Static input height of the exported graph.")
    width: int = opt(640, "Static input width of the exported graph.")
    opset: int = opt(17, "ONNX opset.")
    precision: str = opt("fp32", "Engine precision: 'fp32', 'fp16' or 'int8'.")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    masks: MasksConfig = field(default_factory=MasksConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    dsa: DSAConfig = field(default_factory=DSAConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    stage3: Stage3Config = field(default_factory=Stage3Config)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    pretrain_motion: PretrainMotionConfig = field(default_factory=PretrainMotionConfig)


# ------------------------------------------------------------------------------------ machinery
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field's annotation; ints (and numeric strings such as YAML's
    ``2e-4``) are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if origin is Union:  # Optional[X]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads exponents without a dot, such as 2e-4, as strings.
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
        # YAML reads bare 2011_09_26 as the int 20110926 and off as False: converting back would
        # silently change the value, so ask for quotes instead.
        raise ConfigError(f"{where}: expected a string, got {value!r}; quote the value in YAML")
    elif annotation is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ConfigError(f"{where}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def merge_into(obj: Any, values: dict, source: str, prefix: str = "") -> None:
    """Overwrite fields of the dataclass ``obj`` from a nested dict; unknown keys raise ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{prefix or '<root>'}' must be a mapping, got {type(values).__name__}")
    types = _field_types(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known keys here: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge_into(current, value, source, prefix=dotted + ".")
        else:
            setattr(obj, key, _coerce(value, types[key], f"{source}: '{dotted}'"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'model.encoder=resnet50'`` -> (['model', 'encoder'], 'resnet50'); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override '{text}' has an empty key")
    return path, yaml.safe_load(raw) if raw.strip() else ""


def load_config(files: list[Union[str, Path]] = (), overrides: list[str] = ()) -> Config:
    """Defaults, then each YAML file in order, then dotted overrides; then every value is checked."""
    cfg = Config()
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                values = yaml.safe_load(f) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        merge_into(cfg, values, str(path))
    return validate(apply_overrides(cfg, overrides))


# -------------------------------------------------------------------------------------- choices
# The values a key may take. They live here, at the bottom of the import graph, so check_values
# needs no other mcdepth_train module; the code that uses a key imports its list from here and
# checks against it. (export.precision's list is the model contract's, ENGINE_PRECISIONS above.)
AMP_MODES = ("none", "bf16", "fp16")  # run.amp
DATASETS = ("synthetic", "kitti", "cityscapes", "folder", "rosbag")  # data.dataset and eval.dataset
GT_SOURCES = ("auto", "groundtruth", "velodyne", "none")  # data.gt_depth
# model.encoder / model.pose_encoder: the shipped backbones (networks/encoders.py builds each);
# ``register_encoder`` adds the name of a new backbone here, so the check at load accepts it.
ENCODERS: set[str] = {"resnet18", "resnet34", "resnet50"}
ROTATIONS = ("axis_angle", "euler")  # model.rotation
MOTION_NETS = ("raft_small", "raft_large")  # model.motion_net: torchvision RAFT variants
MASK_SOURCES = ("self_supervised", "semantic_prior", "folder")  # masks.source
MOTION_SOURCES = ("net", "dis")  # masks.motion_source
DIS_PRESET_NAMES = ("ultrafast", "fast", "medium")  # masks.dis_preset
STORAGES = ("png16", "float16")  # pseudo.storage
CONTACT_DEPTHS = ("bottom", "median")  # dsa.contact_depth
CROPS = ("none", "garg", "eigen", "cityscapes")  # eval.crop (besides 'auto')
# eval.protocol -> the crop its papers evaluate in (eval.crop=auto).
PROTOCOL_CROPS = {"synthetic": "none", "kitti_eigen": "garg", "cityscapes": "cityscapes"}


def check_max_ratio(max_ratio: float, name: str = "max_ratio") -> float:
    """``max_ratio`` if it is 0 (check off) or a factor > 1, else ValueError naming ``name``.

    The rule of ``pseudo.max_ratio_to_ground``; stages/pseudo/labels.py applies it to its arguments.
    """
    if max_ratio != 0 and not max_ratio > 1:
        raise ValueError(f"{name}: expected 0 (no check) or a factor > 1, got {max_ratio}")
    return max_ratio


def check_values(cfg: Config) -> list[str]:
    """Every value of ``cfg`` that its type allows but its stage would refuse, each naming its key.

    Types are checked while values merge; this checks choices and ranges for every stage at once,
    so ``mcdepth-train run`` refuses a bad key deep in the pipeline (``objects.min_parallax_px=-1``)
    before stage 1 trains for hours rather than after. The lists of choices (above) are the ones the
    code that uses them checks against.
    """
    problems: list[str] = []

    def value(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    def one_of(key: str, choices) -> None:
        if value(key) not in choices:
            problems.append(f"{key}: expected one of {tuple(choices)}, got {value(key)!r}")

    def at_least(key: str, low: float, above: bool = False) -> None:
        v = value(key)
        if v < low or (above and v == low):
            problems.append(f"{key}: expected a value {'>' if above else '>='} {low}, got {v!r}")

    def within(key: str, low: float, high: float, high_open: bool = False) -> None:
        v = value(key)
        if not (low <= v <= high) or (high_open and v == high):
            problems.append(f"{key}: expected a value in [{low}, {high}{')' if high_open else ']'}, got {v!r}")

    def require(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    one_of("run.amp", AMP_MODES)
    at_least("run.num_workers", 0)
    require(value("run.device") == "cpu" or str(value("run.device")).split(":")[0] in ("cuda", "mps"),
            f"run.device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {value('run.device')!r}")

    d = cfg.data
    one_of("data.dataset", DATASETS)
    require(d.dataset == "synthetic" or bool(d.root), f"data.root: empty, but data.dataset={d.dataset!r} needs a dataset folder, bag or video")
    for key in ("data.height", "data.width", "export.height", "export.width"):
        require(value(key) >= 64 and value(key) % 32 == 0, f"{key}: expected a multiple of 32 and at least 64, got {value(key)!r}")
    require(0 in d.frame_ids and len(set(d.frame_ids)) >= 2,
            f"data.frame_ids: need the reference 0 and at least one source, got {d.frame_ids!r}")
    at_least("data.num_scales", 1)
    for key in ("data.flip_prob", "data.color_jitter_prob"):
        within(key, 0.0, 1.0)
    at_least("data.synth_sequences", 1)
    at_least("data.synth_frames", 3)
    at_least("data.synth_test_sequences", 0)
    at_least("data.synth_noise", 0.0)
    at_least("data.synth_lighting", 0.0)
    one_of("data.gt_depth", GT_SOURCES)
    at_least("data.stamp_tolerance_s", 0.0)
    at_least("data.frame_stride", 1)
    at_least("data.min_image_change", 0.0)
    at_least("data.min_speed", 0.0)

    m = cfg.model
    one_of("model.encoder", sorted(ENCODERS))
    one_of("model.pose_encoder", sorted(ENCODERS))
    require(0 < m.min_depth < m.max_depth, f"model.min_depth/max_depth: need 0 < min < max, got {m.min_depth}, {m.max_depth}")
    one_of("model.rotation", ROTATIONS)
    at_least("model.translation_scale", 0.0, above=True)
    one_of("model.motion_net", MOTION_NETS)
    at_least("model.motion_iters", 1)
    at_least("model.motion_input_scale", 1)
    at_least("model.splat_supersample", 1)

    for key in ("ssim_weight", "l1_weight", "smooth_weight", "sparsity_weight"):
        at_least(f"loss.{key}", 0.0)
    at_least("loss.sparsity_ramp_steps", 0)

    for stage in ("stage1", "objects", "dsa", "stage3", "pretrain_motion"):
        for key, low, above in (("epochs", 0, False), ("max_steps", 0, False), ("batch_size", 1, False), ("lr", 0.0, True),
                                ("lr_gamma", 0.0, True), ("grad_clip", 0.0, False), ("checkpoint_every", 1, False),
                                ("log_every", 1, False), ("val_every", 0, False), ("val_batches", 0, False)):
            at_least(f"{stage}.{key}", low, above)
        milestones = value(f"{stage}.lr_milestones")
        require(all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in milestones),
                f"{stage}.lr_milestones: expected epoch numbers >= 0, got {milestones!r}")
    at_least("stage1.depth_pose_epochs", 0)
    at_least("stage1.motion_only_epochs", 0)
    at_least("stage1.motion_lr_scale", 0.0)
    require(cfg.stage1.motion_lr_scale > 0 or cfg.stage1.motion_only_epochs == 0,
            "stage1.motion_only_epochs: a frozen motion net (stage1.motion_lr_scale=0) has nothing to train in a motion-only phase; set it to 0")

    k = cfg.masks
    one_of("masks.source", MASK_SOURCES)
    require(k.source != "folder" or bool(k.instance_folder),
            "masks.instance_folder: empty, but masks.source=folder needs the folder of instance PNGs")
    require(k.source != "semantic_prior" or bool(k.maskrcnn_weights),
            "masks.maskrcnn_weights: empty, but masks.source=semantic_prior needs a local COCO Mask R-CNN file")
    one_of("masks.motion_source", MOTION_SOURCES)
    one_of("masks.dis_preset", DIS_PRESET_NAMES)
    at_least("masks.dis_min_width", 1)
    at_least("masks.motion_threshold_px", 0.0)
    at_least("masks.min_relative_motion", 0.0)
    within("masks.dynamic_fraction", 0.0, 1.0)
    within("masks.central_strip_fraction", 0.0, 1.0, high_open=True)
    within("masks.min_instance_fraction", 0.0, 1.0)
    require(k.contact_ratio == 0 or k.contact_ratio > 1,
            f"masks.contact_ratio: expected 0 (off) or a factor > 1, got {k.contact_ratio!r}")
    at_least("masks.grow_depth_tolerance", 0.0)
    at_least("masks.grow_radius_px", 1)
    at_least("masks.max_height_ratio", 0.0)
    within("masks.ground_normal_deg", 0.0, 90.0)
    at_least("masks.maskrcnn_rounds", 0)
    within("masks.maskrcnn_score", 0.0, 1.0)
    within("masks.correspondence_threshold", 0.0, 1.0)
    at_least("masks.correspondence_supersample", 1)
    at_least("masks.maskrcnn_min_size", 1)
    require(k.maskrcnn_max_size >= k.maskrcnn_min_size,
            f"masks.maskrcnn_max_size: expected at least masks.maskrcnn_min_size ({k.maskrcnn_min_size}), got {k.maskrcnn_max_size!r}")
    at_least("masks.maskrcnn_steps", 0)
    at_least("masks.maskrcnn_batch_size", 1)
    at_least("masks.maskrcnn_lr", 0.0, above=True)
    at_least("masks.maskrcnn_proposals", 1)
    at_least("masks.maskrcnn_rois_per_image", 1)
    at_least("masks.maskrcnn_checkpoint_every", 1)
    at_least("masks.ground_net_steps", 0)
    at_least("masks.appearance_net_steps", 0)
    within("masks.appearance_threshold", 0.0, 1.0)
    at_least("masks.appearance_depth_step", 0.0)
    require(k.appearance_net_steps == 0 or k.maskrcnn_steps == 0,
            "masks.appearance_net_steps: the appearance net replaces the self-supervised Mask R-CNN; set masks.maskrcnn_steps=0 too")
    at_least("masks.ground_net_lr", 0.0, above=True)
    at_least("masks.ground_smooth_weight", 0.0)

    at_least("objects.smooth_weight", 0.0)
    at_least("objects.min_parallax_px", 0.0)
    one_of("objects.shape_source", SHAPE_SOURCES)

    at_least("dsa.huber_delta", 0.0, above=True)
    at_least("dsa.crop_size", 32)
    within("dsa.held_out_fraction", 0.0, 1.0, high_open=True)
    at_least("dsa.min_static_objects", 1)
    within("dsa.min_contact_share", 0.0, 1.0)
    one_of("dsa.contact_depth", CONTACT_DEPTHS)
    # GroupNorm splits every ResNet18 width (64, 128, 256, 512) into dsa.groups groups.
    require(value("dsa.groups") >= 1 and 64 % value("dsa.groups") == 0, f"dsa.groups: expected a divisor of 64, got {value('dsa.groups')!r}")
    at_least("dsa.context", 1.0)

    one_of("pseudo.storage", STORAGES)
    at_least("pseudo.inspection_samples", 0)
    try:  # the stage's own rule, collected here rather than raised
        check_max_ratio(value("pseudo.max_ratio_to_ground"), "pseudo.max_ratio_to_ground")
    except ValueError as exc:
        problems.append(str(exc))

    at_least("stage3.pl_weight", 0.0)
    one_of("stage3.pl_error", PL_ERRORS)
    require(0 < value("stage3.pl_upper_percentile") <= 100,
            f"stage3.pl_upper_percentile: expected a value in (0, 100], got {value('stage3.pl_upper_percentile')!r}")
    at_least("stage3.self_training_rounds", 0)
    at_least("stage3.seed", -1)
    at_least("stage3.motion_lr_scale", 0.0)
    at_least("stage3.pl_static_weight", 0.0)

    e = cfg.eval
    one_of("eval.protocol", ("auto", *PROTOCOL_CROPS))
    if e.dataset:
        one_of("eval.dataset", DATASETS)
    require(e.dataset in ("", "synthetic") or bool(e.root),
            f"eval.root: empty, but eval.dataset={e.dataset!r} needs the evaluation data set's folder")
    require(0 <= e.min_depth < e.max_depth, f"eval.min_depth/max_depth: need 0 <= min < max, got {e.min_depth}, {e.max_depth}")
    one_of("eval.crop", ("auto",) + CROPS)
    check_lidar_eval(cfg, problems)

    pm = cfg.pretrain_motion
    for key in ("height", "width"):
        require(value(f"pretrain_motion.{key}") >= 16 and value(f"pretrain_motion.{key}") % 8 == 0,
                f"pretrain_motion.{key}: expected a multiple of 8 and at least 16, got {value(f'pretrain_motion.{key}')!r}")
    require(bool(pm.frame_offsets) and all(isinstance(o, int) and not isinstance(o, bool) and o != 0 for o in pm.frame_offsets),
            f"pretrain_motion.frame_offsets: expected non-zero integers, got {pm.frame_offsets!r}")
    within("pretrain_motion.exact_fraction", 0.0, 1.0)
    for key in ("depth_log_std", "rotation_deg", "translation_m"):
        at_least(f"pretrain_motion.{key}", 0.0)
    at_least("pretrain_motion.moving_weight", 0.0, above=True)
    at_least("pretrain_motion.max_flow_px", 0.0, above=True)
    at_least("pretrain_motion.huber_px", 0.0)
    at_least("pretrain_motion.warmup_steps", 0)
    # the loop's milestones count epochs, and a pre-training is one epoch: they would never fire
    require(pm.epochs == 1, f"pretrain_motion.epochs: expected 1 (pairs are drawn on the fly; set pretrain_motion.max_steps), got {pm.epochs!r}")
    require(not pm.lr_milestones, "pretrain_motion.lr_milestones: a pre-training is one epoch, its milestones would never fire; "
            f"use pretrain_motion.lr_decay_steps (steps), got {pm.lr_milestones!r}")
    require(all(isinstance(s, int) and not isinstance(s, bool) and 0 < s < pm.max_steps for s in pm.lr_decay_steps),
            f"pretrain_motion.lr_decay_steps: expected step numbers > 0 and below pretrain_motion.max_steps ({pm.max_steps}), got {pm.lr_decay_steps!r}")
    at_least("pretrain_motion.texture_pool", 1)
    at_least("pretrain_motion.val_pairs", 0)

    at_least("export.opset", 13)
    one_of("export.precision", ENGINE_PRECISIONS)
    return problems


def lidar_to_camera_matrix(values: list, key: str = "eval.lidar_to_camera"):
    """The 4x4 of ``eval.lidar_to_camera`` (16 numbers or 4 rows of 4) as nested lists; ValueError naming the key."""
    flat = [v for row in values for v in (row if isinstance(row, (list, tuple)) else [row])]
    if len(flat) != 16 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise ValueError(f"{key}: expected a 4x4 matrix (16 numbers, row-major, or 4 rows of 4), got {values!r}")
    rows = [[float(v) for v in flat[i : i + 4]] for i in range(0, 16, 4)]
    if rows[3] != [0.0, 0.0, 0.0, 1.0]:
        raise ValueError(f"{key}: the last row of a rigid transform is [0, 0, 0, 1], got {rows[3]!r}")
    return rows


def check_lidar_eval(cfg: Config, problems: list) -> None:
    """The LiDAR-evaluation keys (appended to ``problems``)."""
    e = cfg.eval
    dataset = e.dataset or cfg.data.dataset
    if e.lidar_topic and dataset != "rosbag":
        problems.append(f"eval.lidar_topic: set, but the evaluation data set is {dataset!r}; LiDAR scans are read from bags "
                        f"(eval.dataset=rosbag; a KITTI folder has its Velodyne ground truth already)")
    if e.lidar_to_camera:
        try:
            lidar_to_camera_matrix(e.lidar_to_camera)
        except ValueError as exc:
            problems.append(str(exc))
    if e.lidar_pixel_offset not in (-1, 0):
        problems.append(f"eval.lidar_pixel_offset: expected 0 (ROS/OpenCV) or -1 (KITTI devkit), got {e.lidar_pixel_offset!r}")
    if e.lidar_stamp_tolerance_s < 0:
        problems.append(f"eval.lidar_stamp_tolerance_s: expected a value >= 0, got {e.lidar_stamp_tolerance_s!r}")
    if not e.ground_tolerance_m > 0:
        problems.append(f"eval.ground_tolerance_m: expected a value > 0, got {e.ground_tolerance_m!r}")
    heights = e.object_height_m
    if len(heights) != 2 or not all(isinstance(h, (int, float)) for h in heights) or not 0 <= heights[0] < heights[1]:
        problems.append(f"eval.object_height_m: expected [low, high] with 0 <= low < high, got {heights!r}")
    if not e.corridor_half_width_m > 0:
        problems.append(f"eval.corridor_half_width_m: expected a value > 0, got {e.corridor_half_width_m!r}")


def validate(cfg: Config, source: str = "config") -> Config:
    """``cfg`` unchanged, or a ConfigError listing every problem :func:`check_values` finds."""
    problems = check_values(cfg)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} bad value{'s' if len(problems) > 1 else ''}:\n  " + "\n  ".join(problems))
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply dotted ``section.key=value`` overrides to ``cfg`` in place (and return it)."""
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        merge_into(cfg, nested, f"override '{text}'")
    return cfg


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict, source: str = "checkpoint") -> Config:
    cfg = Config()
    merge_into(cfg, values, source)
    return cfg


def save_config(cfg: Config, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def describe_defaults(cfg_cls: type = Config) -> str:
    """Every key, its default and its meaning, as YAML with comments (``mcdepth-train config --defaults``)."""
    lines: list[str] = []
    for section in dataclasses.fields(cfg_cls):
        lines.append(f"{section.name}:")
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            default = getattr(section.default_factory(), f.name)  # type: ignore[misc]
            value = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"  {f.name}: {value}  # {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"
