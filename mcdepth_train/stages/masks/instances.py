"""Object instances, from one of three interchangeable sources (``masks.source``).

1. ``self_supervised`` (default): connected components of the dynamic evidence are the moving
   objects; a Mask R-CNN (random init, 2 classes: object / background) is trained on them and
   self-trained for ``masks.maskrcnn_rounds`` rounds (its confident detections that overlap no
   moving component join the pseudo masks), so it also finds objects that do *not* move - the
   static objects DSA trains on.
2. ``semantic_prior``: torchvision's Mask R-CNN with COCO weights read from a local file
   (``masks.maskrcnn_weights``), keeping vehicles and persons.
3. ``folder``: precomputed masks, one PNG per instance (see :func:`instance_png_path`).

Instance masks of one frame are numpy bool stacks [N,H,W].
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset

from ...config import TrainSchedule
from ...networks.weights import read_state_dict
from ..frames import MASKS_DIR
from .rules import as_instance_stack, components_to_instances

# COCO category ids (torchvision numbering) of road users.
COCO_ROAD_USERS = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 6: "bus", 7: "train", 8: "truck"}
COCO_NUM_CLASSES = 91
MASKRCNN_DIR = f"{MASKS_DIR}/maskrcnn"  # under the run folder: one Trainer folder per self-training round


# ---------------------------------------------------------------------------------- folder source
def instance_png_path(folder: str | Path, sequence: str, frame: int, index: int) -> Path:
    """``<folder>/<sequence>/<frame:06d>_<index:03d>.png``: one instance, non-zero pixels inside it.

    With ``sequence = ""`` the PNGs sit directly in the folder and ``frame`` is the frame's index
    in the data set (``<folder>/<frame:06d>_<index:03d>.png``).

    The PNG is 8- or 16-bit, one channel (colour images are read as grey), at the frame's size
    or any size (it is resized with nearest neighbour to the network input).
    """
    return Path(folder) / sequence / f"{int(frame):06d}_{int(index):03d}.png"


def write_folder_instances(folder: str | Path, sequence: str, frame: int, masks: np.ndarray) -> list[Path]:
    """Write one frame's instances as PNGs in the folder layout (for converting your own segmenter's output)."""
    masks = as_instance_stack("masks", masks)
    paths = []
    for k, m in enumerate(masks):
        path = instance_png_path(folder, sequence, frame, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.png")
        if not cv2.imwrite(str(tmp), m.astype(np.uint8) * 255):
            raise OSError(f"could not write {tmp}")
        tmp.replace(path)
        paths.append(path)
    return paths


def read_folder_instances(folder: str | Path, sequence: str, frame: int, hw: tuple[int, int] | None = None) -> np.ndarray:
    """One frame's instances from the folder layout; [0,H,W] when the frame has none.

    Raises:
        FileNotFoundError: the folder or the sequence's sub-folder does not exist.
        ValueError: a PNG cannot be read, or the frame's PNGs differ in size when ``hw`` is None.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"masks.instance_folder: no such folder: {folder}")
    seq_dir = folder / sequence if sequence else folder
    if not seq_dir.is_dir():
        raise FileNotFoundError(f"masks.instance_folder: no sub-folder for sequence '{sequence}' in {folder}")
    pattern = re.compile(rf"^{int(frame):06d}_(\d+)\.png$")
    files = sorted((int(m.group(1)), p) for p in seq_dir.iterdir() if (m := pattern.match(p.name)))
    masks = []
    for _, path in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"{path}: not a readable PNG")
        if hw is not None and image.shape != tuple(hw):
            image = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        masks.append(image > 0)
    if not masks:
        if hw is None:
            raise ValueError(f"{seq_dir}: frame {frame} has no instance PNGs and no size was given")
        return np.zeros((0, *hw), dtype=bool)
    if len({m.shape for m in masks}) > 1:
        raise ValueError(f"{seq_dir}: the PNGs of frame {frame} differ in size; pass hw to resize them")
    return np.stack(masks)


def load_instance_folder(folder: str | Path, index: int, hw: tuple[int, int], sequence: str = "") -> np.ndarray:
    """The ``folder`` source for one frame: ``<folder>[/<sequence>]/<index:06d>_<k:03d>.png`` at size ``hw``."""
    return read_folder_instances(folder, sequence, index, hw)


# -------------------------------------------------------------------------------------- Mask R-CNN
def build_maskrcnn(num_classes: int = 2, min_size: int = 192, max_size: int = 640, **kwargs) -> torch.nn.Module:
    """torchvision Mask R-CNN (ResNet50-FPN), randomly initialised: nothing is downloaded.

    ``kwargs`` go to ``maskrcnn_resnet50_fpn`` (e.g. ``rpn_post_nms_top_n_train``, ``box_batch_size_per_image``).
    """
    return torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes, min_size=min_size, max_size=max_size, **kwargs
    )


def load_maskrcnn(
    path: str | Path, num_classes: int = COCO_NUM_CLASSES, min_size: int = 192, max_size: int = 640, **kwargs
) -> torch.nn.Module:
    """Mask R-CNN with weights from a local file (e.g. torchvision's COCO ``maskrcnn_resnet50_fpn`` state dict).

    Accepts a bare state dict or one wrapped under "model" / "state_dict".
    """
    state = read_state_dict(path, "masks.maskrcnn_weights")
    if "roi_heads.box_predictor.cls_score.weight" not in state:
        raise ValueError(f"masks.maskrcnn_weights: {path} is not a Mask R-CNN state dict")
    found = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    if found != num_classes:
        raise ValueError(f"masks.maskrcnn_weights: {path} has {found} classes, expected {num_classes}")
    model = build_maskrcnn(num_classes, min_size, max_size, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"masks.maskrcnn_weights: {path} does not fit maskrcnn_resnet50_fpn: {exc}") from exc
    return model


def filter_detections(
    output: dict[str, torch.Tensor], score_threshold: float = 0.5, keep_labels: Iterable[int] | None = None, mask_threshold: float = 0.5
) -> np.ndarray:
    """Mask R-CNN output of one image -> [N,H,W] bool instances with score >= threshold and a kept label.

    Args:
        output: {"labels": [N], "scores": [N], "masks": [N,1,H,W] probabilities}.
        keep_labels: class ids to keep (e.g. ``COCO_ROAD_USERS``), or None for all.
    """
    labels, scores, masks = output["labels"], output["scores"], output["masks"]
    keep = scores >= score_threshold
    if keep_labels is not None:
        keep &= torch.isin(labels, torch.tensor(sorted(keep_labels), dtype=labels.dtype, device=labels.device))
    selected = (masks[keep, 0] >= mask_threshold).cpu().numpy()
    selected = selected[selected.any(axis=(1, 2))]
    return selected.reshape(-1, *masks.shape[-2:]).astype(bool)


@torch.no_grad()
def predict_instances(
    model: torch.nn.Module, images: list[torch.Tensor], score_threshold: float = 0.5, keep_labels: Iterable[int] | None = None,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """Instances of each [3,H,W] image (RGB in [0,1]), ``batch_size`` images per forward pass."""
    model.eval()
    device = next(model.parameters()).device
    found = []
    for start in range(0, len(images), batch_size):
        outputs = model([im.to(device) for im in images[start:start + batch_size]])
        found += [filter_detections(out, score_threshold, keep_labels) for out in outputs]
    return found


def masks_to_target(masks: np.ndarray) -> dict[str, torch.Tensor]:
    """[N,H,W] bool pseudo masks -> a torchvision detection target (class 1 = object)."""
    masks = as_instance_stack("masks", masks)
    masks = masks[masks.any(axis=(1, 2))]
    boxes = []
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.ones(len(masks), dtype=torch.int64),
        "masks": torch.from_numpy(masks.astype(np.uint8)),
    }


class PseudoMaskSet(Dataset):
    """Images with their pseudo masks as torchvision detection targets (class 1 = object)."""

    def __init__(self, images: list[torch.Tensor], instances: list[np.ndarray]):
        if len(images) != len(instances) or not images:
            raise ValueError(f"images and instances: need equal, non-zero counts, got {len(images)} and {len(instances)}")
        self.images = images
        self.targets = [masks_to_target(m) for m in instances]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "target": self.targets[index]}


def _as_list(samples: list[dict]) -> list[dict]:
    return list(samples)  # Mask R-CNN takes lists: images may differ in size, targets in count


class MaskRCNNTraining(nn.Module):
    """A Mask R-CNN with ``forward(batch)`` in the Trainer's format: the sum of its five losses."""

    def __init__(self, maskrcnn: nn.Module):
        super().__init__()
        self.maskrcnn = maskrcnn

    def forward(self, batch: list[dict]) -> dict:
        terms = self.maskrcnn([b["image"] for b in batch], [b["target"] for b in batch])
        return {"loss": sum(terms.values()), "scalars": {k: v.detach() for k, v in terms.items()}}


def maskrcnn_schedule(cfg) -> TrainSchedule:
    """``masks.maskrcnn_*`` as a Trainer schedule: SGD steps, batch, learning rate, checkpoints."""
    m = cfg.masks
    return TrainSchedule(epochs=max(m.maskrcnn_steps, 1), max_steps=m.maskrcnn_steps, batch_size=m.maskrcnn_batch_size,
                         lr=m.maskrcnn_lr, lr_milestones=[], grad_clip=10.0, checkpoint_every=m.maskrcnn_checkpoint_every)


def train_maskrcnn(cfg, model: nn.Module, images: list[torch.Tensor], instances: list[np.ndarray], stage: str,
                   hooks: list | None = None) -> dict:
    """Train a Mask R-CNN on pseudo masks with the stages' Trainer; returns its summary.

    SGD (momentum 0.9, weight decay 1e-4) for ``masks.maskrcnn_steps`` steps of
    ``masks.maskrcnn_batch_size`` images at ``masks.maskrcnn_lr``. Checkpoints go to
    ``RUN/<stage>/checkpoints/last.pt`` (``RUN`` = ``cfg.run.out_dir``): a killed run resumes there,
    and a finished one only loads its weights.

    Args:
        images: [3,H,W] RGB in [0,1]. instances: [N,H,W] bool per image (N may be 0: a negative).
        hooks: more Trainer hooks (e.g. a benchmark's step timer).
    """
    from ...engine.loop import Trainer, TrainerSpec

    def sgd(module: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in module.parameters() if p.requires_grad]
        return torch.optim.SGD(params, lr=cfg.masks.maskrcnn_lr, momentum=0.9, weight_decay=1e-4)

    spec = TrainerSpec(stage=stage, model=MaskRCNNTraining(model), train_set=PseudoMaskSet(images, instances),
                       schedule=maskrcnn_schedule(cfg), make_optimizer=sgd, collate_fn=_as_list)
    return Trainer(cfg, spec, hooks=hooks).train()


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = a.reshape(len(a), a.shape[1] * a.shape[2]).astype(np.float32), b.reshape(len(b), b.shape[1] * b.shape[2]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None] - inter
    return inter / np.maximum(union, 1)


def merge_pseudo_masks(moving: np.ndarray, detected: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Moving components plus the detections that match none of them (IoU < threshold): the next round's targets."""
    moving, detected = as_instance_stack("moving", moving), as_instance_stack("detected", detected)
    if len(detected) == 0:
        return moving
    if len(moving) == 0:
        return detected
    new = detected[_iou_matrix(detected, moving).max(1) < iou_threshold]
    return np.concatenate([moving, new]) if len(new) else moving


def self_train_maskrcnn(
    cfg, model: nn.Module, images: list[torch.Tensor], dynamic: list[np.ndarray], min_pixels: int = 1
) -> tuple[nn.Module, list[np.ndarray]]:
    """The self-supervised instance source: moving components -> Mask R-CNN -> self-training rounds.

    Round 0 trains on the connected components of each image's dynamic evidence. Each of the
    ``masks.maskrcnn_rounds`` later rounds first predicts on every image and adds confident
    detections (``masks.maskrcnn_score``) that overlap no moving component (objects that look like
    the moving ones but do not move), then trains again. Round r trains in
    ``RUN/masks/maskrcnn/round<r>/`` (resumable; ``RUN`` = ``cfg.run.out_dir``) with seed
    ``run.seed + r``.

    Args:
        images: [3,H,W] RGB in [0,1]. dynamic: HxW bool dynamic evidence of each image.
        min_pixels: smallest component kept as a pseudo mask.
    Returns:
        (the trained model, the final instances of each image: moving components + detections).
    """
    score = cfg.masks.maskrcnn_score
    moving = [components_to_instances(d, min_pixels) for d in dynamic]
    pseudo = moving
    for r in range(cfg.masks.maskrcnn_rounds + 1):
        if r > 0:
            detected = predict_instances(model, images, score)
            pseudo = [merge_pseudo_masks(m, d) for m, d in zip(moving, detected)]
        round_cfg = copy.deepcopy(cfg)
        round_cfg.run.seed = cfg.run.seed + r
        train_maskrcnn(round_cfg, model, images, pseudo, f"{MASKRCNN_DIR}/round{r}")
    detected = predict_instances(model, images, score)
    return model, [merge_pseudo_masks(m, d) for m, d in zip(moving, detected)]


# ------------------------------------------------------------------------------ per-frame sources
_MODELS: dict[tuple, torch.nn.Module] = {}


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 RGB (uint8, or float in [0, 1]) -> [3,H,W] float in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected HxWx3 RGB, got shape {list(image.shape)}")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return tensor / 255 if image.dtype == np.uint8 else tensor


def semantic_prior_instances(cfg, image: np.ndarray) -> np.ndarray:
    """The ``semantic_prior`` source for one frame: COCO Mask R-CNN (local weights file), road users only.

    The model is loaded once per weights file and device and kept for later frames.
    """
    m = cfg.masks
    if not m.maskrcnn_weights:
        raise ValueError("masks.maskrcnn_weights: the semantic prior needs a local file with COCO Mask R-CNN weights "
                         "(torchvision maskrcnn_resnet50_fpn state dict)")
    key = (str(m.maskrcnn_weights), m.maskrcnn_min_size, m.maskrcnn_max_size, cfg.run.device)
    if key not in _MODELS:
        _MODELS[key] = load_maskrcnn(m.maskrcnn_weights, COCO_NUM_CLASSES, m.maskrcnn_min_size, m.maskrcnn_max_size).to(cfg.run.device)
    return predict_instances(_MODELS[key], [_image_tensor(image)], m.maskrcnn_score, m.semantic_classes)[0]


def maskrcnn_from_config(cfg, num_classes: int = 2) -> nn.Module:
    """A randomly initialised Mask R-CNN with the ``masks.maskrcnn_*`` input size and sampling, on ``run.device``."""
    m = cfg.masks
    return build_maskrcnn(
        num_classes, m.maskrcnn_min_size, m.maskrcnn_max_size, rpn_pre_nms_top_n_train=m.maskrcnn_proposals,
        rpn_post_nms_top_n_train=m.maskrcnn_proposals, box_batch_size_per_image=m.maskrcnn_rois_per_image,
    ).to(cfg.run.device)


def self_supervised_from_config(cfg, images: list, evidence: list[np.ndarray]) -> tuple[nn.Module, list[np.ndarray]]:
    """The ``self_supervised`` source over a run's training frames: :func:`self_train_maskrcnn` with ``masks.*``.

    Components smaller than ``masks.min_instance_fraction`` of the image are not trained on.

    Args:
        images: [3,H,W] RGB tensors in [0,1], or HxWx3 RGB arrays. evidence: HxW bool dynamic evidence per frame.
    Returns:
        (the trained model, each frame's instances: its moving components + the model's other detections).
    """
    tensors = [im if isinstance(im, torch.Tensor) else _image_tensor(im) for im in images]
    h, w = np.asarray(evidence[0]).shape
    torch.manual_seed(cfg.run.seed)
    model = maskrcnn_from_config(cfg)
    return self_train_maskrcnn(cfg, model, tensors, evidence, max(int(cfg.masks.min_instance_fraction * h * w), 1))
