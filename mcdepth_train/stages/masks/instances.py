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

import re
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
import torchvision
from tqdm import tqdm

from ...networks.weights import read_state_dict
from .rules import as_instance_stack, components_to_instances

# COCO category ids (torchvision numbering) of road users.
COCO_ROAD_USERS = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 6: "bus", 7: "train", 8: "truck"}
COCO_NUM_CLASSES = 91


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
    model: torch.nn.Module, images: list[torch.Tensor], score_threshold: float = 0.5, keep_labels: Iterable[int] | None = None
) -> list[np.ndarray]:
    """Instances of each [3,H,W] image (RGB in [0,1])."""
    model.eval()
    device = next(model.parameters()).device
    return [filter_detections(out, score_threshold, keep_labels) for out in model([im.to(device) for im in images])]


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


def train_maskrcnn(
    model: torch.nn.Module,
    images: list[torch.Tensor],
    instances: list[np.ndarray],
    steps: int = 1000,
    batch_size: int = 4,
    lr: float = 0.005,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train a Mask R-CNN on pseudo masks (SGD, momentum 0.9); returns the summed loss of every step.

    Args:
        images: [3,H,W] RGB in [0,1]. instances: [N,H,W] bool per image (N may be 0: a negative).
    """
    if len(images) != len(instances) or not images:
        raise ValueError(f"images and instances: need equal, non-zero counts, got {len(images)} and {len(instances)}")
    targets = [masks_to_target(m) for m in instances]
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="maskrcnn", disable=not progress):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=generator).tolist()
        batch_targets = [{k: v.to(device) for k, v in targets[i].items()} for i in idx]
        loss_terms = model([images[i].to(device) for i in idx], batch_targets)
        loss = sum(loss_terms.values())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimiser.step()
        losses.append(loss.item())
    return losses


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
    model: torch.nn.Module,
    images: list[torch.Tensor],
    dynamic: list[np.ndarray],
    rounds: int = 1,
    steps_per_round: int = 1000,
    score_threshold: float = 0.5,
    min_pixels: int = 1,
    batch_size: int = 4,
    lr: float = 0.005,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.nn.Module, list[np.ndarray]]:
    """The self-supervised instance source: moving components -> Mask R-CNN -> self-training rounds.

    Round 0 trains on the connected components of each image's dynamic evidence. Each later round
    first predicts on every image and adds confident detections that overlap no moving component
    (objects that look like the moving ones but do not move), then trains again.

    Args:
        images: [3,H,W] RGB in [0,1]. dynamic: HxW bool dynamic evidence of each image.
        rounds: self-training rounds after the first training (``masks.maskrcnn_rounds``).
        min_pixels: smallest component kept as a pseudo mask.
    Returns:
        (the trained model, the final instances of each image: moving components + detections).
    """
    moving = [components_to_instances(d, min_pixels) for d in dynamic]
    pseudo = moving
    for r in range(rounds + 1):
        if r > 0:
            detected = predict_instances(model, images, score_threshold)
            pseudo = [merge_pseudo_masks(m, d) for m, d in zip(moving, detected)]
        train_maskrcnn(model, images, pseudo, steps_per_round, batch_size, lr, seed + r, progress)
    detected = predict_instances(model, images, score_threshold)
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


def self_supervised_instances(model: torch.nn.Module | None, image: np.ndarray, evidence: np.ndarray, cfg) -> np.ndarray:
    """The ``self_supervised`` source for one frame: moving components + the trained Mask R-CNN's other detections.

    With ``model = None`` (none trained yet) only the connected components of the evidence.
    """
    h, w = np.asarray(evidence).shape
    moving = components_to_instances(evidence, max(int(cfg.masks.min_instance_fraction * h * w), 1))
    if model is None:
        return moving
    return merge_pseudo_masks(moving, predict_instances(model, [_image_tensor(image)], cfg.masks.maskrcnn_score)[0])


def train_self_supervised_from_config(cfg, images: list[np.ndarray], evidence: list[np.ndarray]) -> torch.nn.Module:
    """Build a 2-class Mask R-CNN and run :func:`self_train_maskrcnn` with the ``masks.maskrcnn_*`` settings.

    Args:
        images: HxWx3 RGB per frame. evidence: HxW bool dynamic evidence per frame.
    """
    m = cfg.masks
    model = build_maskrcnn(2, m.maskrcnn_min_size, m.maskrcnn_max_size).to(cfg.run.device)
    h, w = np.asarray(evidence[0]).shape
    model, _ = self_train_maskrcnn(
        model, [_image_tensor(im) for im in images], evidence, m.maskrcnn_rounds, m.maskrcnn_steps, m.maskrcnn_score,
        max(int(m.min_instance_fraction * h * w), 1), m.maskrcnn_batch_size, m.maskrcnn_lr, cfg.run.seed, cfg.run.progress,
    )
    return model
