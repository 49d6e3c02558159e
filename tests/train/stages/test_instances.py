"""Instance sources: PNG folder, Mask R-CNN with local COCO weights, self-supervised training."""
from __future__ import annotations

import json

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
    maskrcnn_from_config,
    masks_to_target,
    merge_pseudo_masks,
    predict_instances,
    read_folder_instances,
    self_train_maskrcnn,
    self_supervised_from_config,
    semantic_prior_instances,
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


def _small_cfg(tmp_path, steps=1, rounds=1):
    cfg = Config()
    cfg.run.out_dir, cfg.run.progress, cfg.run.tensorboard = str(tmp_path), False, False
    m = cfg.masks
    m.maskrcnn_min_size = m.maskrcnn_max_size = 64
    m.maskrcnn_proposals, m.maskrcnn_rois_per_image, m.maskrcnn_checkpoint_every = 32, 16, 1
    m.maskrcnn_steps, m.maskrcnn_rounds, m.maskrcnn_batch_size, m.maskrcnn_score = steps, rounds, 2, 0.99
    return cfg


def _moving_blobs():
    images = [torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    dynamic = [np.zeros((48, 64), bool) for _ in range(2)]
    dynamic[0][10:30, 10:30] = True
    dynamic[1][5:25, 30:60] = True
    return images, dynamic


def test_self_supervised_maskrcnn_trains_on_moving_components(tmp_path):
    images, dynamic = _moving_blobs()
    cfg = _small_cfg(tmp_path)
    torch.manual_seed(0)
    model = maskrcnn_from_config(cfg)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 16 and model.rpn._post_nms_top_n["training"] == 32
    before = {k: v.clone() for k, v in model.state_dict().items() if "mask_fcn_logits" in k}
    model, instances = self_train_maskrcnn(cfg, model, images, dynamic)
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert len(instances) == 2
    assert np.array_equal(instances[0][0], dynamic[0]) and np.array_equal(instances[1][0], dynamic[1])
    for r in (0, 1):  # one resumable Trainer folder per round
        assert (tmp_path / "masks" / "maskrcnn" / f"round{r}" / "checkpoints" / "last.pt").is_file()
    arrays = [im.permute(1, 2, 0).numpy() for im in images]  # HxWx3 arrays are accepted as well
    trained, found = self_supervised_from_config(_small_cfg(tmp_path / "cfg", rounds=0), arrays, dynamic)
    assert trained.roi_heads.box_predictor.cls_score.out_features == 2
    assert len(found) == 2 and np.array_equal(found[0][0], dynamic[0])


def test_self_supervised_maskrcnn_resumes_where_it_stopped(tmp_path):
    """Stopped after 2 of 3 steps (as a kill after a checkpoint leaves it), the rerun trains only the
    third and ends where an uninterrupted 3-step run ends; a finished run only loads its weights."""
    images, dynamic = _moving_blobs()

    def run(folder, steps):
        torch.manual_seed(0)
        cfg = _small_cfg(folder, steps=steps, rounds=0)
        model, _ = self_train_maskrcnn(cfg, maskrcnn_from_config(cfg), images, dynamic)
        summary = json.loads((folder / "masks" / "maskrcnn" / "round0" / "summary.json").read_text())
        return {k: v for k, v in model.state_dict().items() if "mask_fcn_logits" in k}, summary

    straight, _ = run(tmp_path / "straight", 3)
    run(tmp_path / "stopped", 2)
    last = tmp_path / "stopped" / "masks" / "maskrcnn" / "round0" / "checkpoints" / "last.pt"
    assert torch.load(last, map_location="cpu", weights_only=False)["step"] == 2
    resumed, summary = run(tmp_path / "stopped", 3)
    assert summary["resumed"] and summary["steps"] == 3
    for k in straight:
        assert torch.allclose(straight[k], resumed[k], atol=1e-6), k
    again, summary = run(tmp_path / "stopped", 3)
    assert summary["resumed"] and summary["steps"] == 3
    assert all(torch.equal(again[k], resumed[k]) for k in again)  # nothing trained twice
