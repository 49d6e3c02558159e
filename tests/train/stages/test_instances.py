"""Instance sources: PNG folder, Mask R-CNN with local COCO weights, self-supervised training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.config import Config
from mcdepth_train.stages.masks.instances import (
    COCO_NUM_CLASSES,
    COCO_ROAD_USERS,
    build_maskrcnn,
    filter_detections,
    instance_png_path,
    load_instance_folder,
    load_maskrcnn,
    masks_to_target,
    merge_pseudo_masks,
    predict_instances,
    read_folder_instances,
    self_supervised_instances,
    self_train_maskrcnn,
    semantic_prior_instances,
    train_self_supervised_from_config,
    write_folder_instances,
)


# Few proposals and sampled boxes keep Mask R-CNN fast on a CPU.
SMALL = dict(min_size=64, max_size=64, rpn_pre_nms_top_n_train=64, rpn_post_nms_top_n_train=32,
             rpn_pre_nms_top_n_test=32, rpn_post_nms_top_n_test=16, box_batch_size_per_image=16,
             box_detections_per_img=8, rpn_batch_size_per_image=32)


def _stack(h=24, w=32):
    masks = np.zeros((2, h, w), bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 10:20, 15:30] = True
    return masks


def test_folder_round_trip_naming_and_errors(tmp_path):
    masks = _stack()
    paths = write_folder_instances(tmp_path, "drive_01", 7, masks)
    assert [p.name for p in paths] == ["000007_000.png", "000007_001.png"]
    assert paths[1] == instance_png_path(tmp_path, "drive_01", 7, 1)
    assert np.array_equal(read_folder_instances(tmp_path, "drive_01", 7), masks)
    # Resized (nearest) to the network size when it differs.
    big = read_folder_instances(tmp_path, "drive_01", 7, hw=(48, 64))
    assert big.shape == (2, 48, 64) and big[0].sum() == 4 * masks[0].sum()
    assert read_folder_instances(tmp_path, "drive_01", 8, hw=(24, 32)).shape == (0, 24, 32)
    with pytest.raises(FileNotFoundError, match="drive_02"):
        read_folder_instances(tmp_path, "drive_02", 7)
    with pytest.raises(FileNotFoundError, match="instance_folder"):
        read_folder_instances(tmp_path / "nope", "drive_01", 7)
    # Flat layout by data-set index, as the masks stage calls it.
    write_folder_instances(tmp_path / "flat", "", 12, masks)
    assert (tmp_path / "flat" / "000012_001.png").is_file()
    assert np.array_equal(load_instance_folder(tmp_path / "flat", 12, (24, 32)), masks)
    (tmp_path / "drive_01" / "000009_000.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="000009_000.png"):
        read_folder_instances(tmp_path, "drive_01", 9)


def test_filter_detections_keeps_road_users_above_score():
    h, w = 8, 8
    masks = torch.zeros(4, 1, h, w)
    masks[0, 0, :4] = 0.9  # car, confident
    masks[1, 0, 4:] = 0.9  # person, low score
    masks[2, 0, :, :4] = 0.9  # dining table (COCO 67), confident
    masks[3, 0, :, 4:] = 0.3  # bus, confident box but weak mask: nothing over 0.5
    out = {"labels": torch.tensor([3, 1, 67, 6]), "scores": torch.tensor([0.9, 0.3, 0.95, 0.8]), "masks": masks}
    kept = filter_detections(out, 0.5, COCO_ROAD_USERS)
    assert kept.shape == (1, h, w) and kept[0, :4].all() and not kept[0, 4:].any()
    assert filter_detections(out, 0.5, None).shape == (2, h, w)
    assert filter_detections(out, 0.2, COCO_ROAD_USERS).shape == (2, h, w)
    assert set(COCO_ROAD_USERS) == {1, 2, 3, 4, 6, 7, 8}


def test_load_maskrcnn_from_a_local_coco_state_dict(tmp_path):
    torch.manual_seed(0)
    reference = build_maskrcnn(COCO_NUM_CLASSES, **SMALL)
    path = tmp_path / "maskrcnn_coco.pth"
    torch.save({"model": reference.state_dict()}, path)
    model = load_maskrcnn(path, **SMALL)
    key = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert torch.equal(model.state_dict()[key], reference.state_dict()[key])
    assert model.roi_heads.box_predictor.cls_score.out_features == COCO_NUM_CLASSES
    out = predict_instances(model, [torch.rand(3, 48, 64)], score_threshold=0.0, keep_labels=COCO_ROAD_USERS)
    assert len(out) == 1 and out[0].ndim == 3 and out[0].shape[1:] == (48, 64)
    cfg = Config()
    cfg.masks.maskrcnn_weights = str(path)
    cfg.masks.maskrcnn_min_size = cfg.masks.maskrcnn_max_size = 64
    cfg.masks.maskrcnn_score = 0.0
    found = semantic_prior_instances(cfg, np.random.default_rng(0).random((48, 64, 3)).astype(np.float32))
    assert found.ndim == 3 and found.shape[1:] == (48, 64) and found.dtype == bool
    cfg.masks.maskrcnn_weights = ""
    with pytest.raises(ValueError, match="maskrcnn_weights"):
        semantic_prior_instances(cfg, np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="maskrcnn_weights"):
        load_maskrcnn(tmp_path / "missing.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="not a Mask R-CNN"):
        load_maskrcnn(tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="classes"):
        load_maskrcnn(path, num_classes=2)


def test_targets_and_merge():
    masks = _stack()
    target = masks_to_target(np.concatenate([masks, np.zeros((1, 24, 32), bool)]))
    assert target["boxes"].tolist() == [[3, 2, 9, 8], [15, 10, 30, 20]]  # empty masks are dropped
    assert target["labels"].tolist() == [1, 1] and target["masks"].shape == (2, 24, 32)
    assert masks_to_target(np.zeros((0, 4, 4), bool))["boxes"].shape == (0, 4)
    detected = np.stack([masks[1], np.roll(masks[0], 12, axis=0)])  # one duplicate, one new object
    merged = merge_pseudo_masks(masks[:1], detected)
    assert len(merged) == 3 and np.array_equal(merged[2], detected[1])
    merged = merge_pseudo_masks(masks, detected)
    assert len(merged) == 3  # the duplicate of masks[1] is not added again


def test_self_supervised_maskrcnn_trains_on_moving_components():
    torch.manual_seed(0)
    model = build_maskrcnn(2, **SMALL)
    images = [torch.rand(3, 48, 64) for _ in range(2)]
    dynamic = [np.zeros((48, 64), bool) for _ in range(2)]
    dynamic[0][10:30, 10:30] = True
    dynamic[1][5:25, 30:60] = True
    before = {k: v.clone() for k, v in model.state_dict().items() if "mask_fcn_logits" in k}
    model, instances = self_train_maskrcnn(
        model, images, dynamic, rounds=1, steps_per_round=1, score_threshold=0.99, batch_size=2, progress=False
    )
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert len(instances) == 2
    assert np.array_equal(instances[0][0], dynamic[0]) and np.array_equal(instances[1][0], dynamic[1])
    cfg = Config()
    cfg.masks.maskrcnn_score = 0.99
    image = images[0].permute(1, 2, 0).numpy()
    assert np.array_equal(self_supervised_instances(None, image, dynamic[0], cfg)[0], dynamic[0])
    with_model = self_supervised_instances(model, image, dynamic[0], cfg)
    assert len(with_model) >= 1 and np.array_equal(with_model[0], dynamic[0])
    cfg.masks.maskrcnn_rounds, cfg.masks.maskrcnn_steps, cfg.masks.maskrcnn_batch_size = 0, 1, 1
    cfg.masks.maskrcnn_min_size = cfg.masks.maskrcnn_max_size = 64
    cfg.run.progress = False
    trained = train_self_supervised_from_config(cfg, [image], dynamic[:1])
    assert trained.roi_heads.box_predictor.cls_score.out_features == 2
