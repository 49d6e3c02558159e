"""All mask rules on a tiny fixed scene with known truth: dynamic-mask IoU and static-object recall."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdepth_train.stages.masks.rules import frame_masks, mask_iou, static_object_recall

H, W, F_PX, CAM_H = 48, 96, 60.0, 1.5
CY = (H - 1) / 2


def _scene():
    """Road + far wall, a moving car A (left) and a parked car B (right), camera driving forward."""
    v = torch.arange(H, dtype=torch.float32).view(H, 1).expand(H, W)
    depth = torch.where(v - CY > 0.5, F_PX * CAM_H / (v - CY).clamp_min(1e-3), torch.full_like(v, 40.0)).clamp_max(40.0)
    truth = np.zeros((2, H, W), bool)
    for k, (r0, r1, c0, c1) in enumerate([(28, 40, 10, 30), (30, 38, 60, 80)]):
        depth[r0:r1, c0:c1] = F_PX * CAM_H / (r1 - 1 - CY)  # standing on the road at its bottom row
        truth[k, r0:r1, c0:c1] = True
    K = torch.tensor([[[F_PX, 0, (W - 1) / 2], [0, F_PX, CY], [0, 0, 1]]])
    poses = {}
    for sid in (-1, 1):
        T = torch.eye(4)[None].clone()
        T[0, 2, 3] = -0.3 * sid  # 0.3 m forward per frame
        poses[sid] = T
    g = torch.Generator().manual_seed(0)
    flows = {}
    for sid in (-1, 1):
        flow = 0.3 * torch.randn(1, 2, H, W, generator=g)  # below-threshold noise everywhere
        flow[0, 0][torch.from_numpy(truth[0])] += 2.0 * sid  # car A moves 2 px per frame
        flows[sid] = flow
    detections = np.zeros_like(truth)
    detections[0, 27:43, 9:31] = True  # a detector's masks: a bit too big, reaching into the road
    detections[1, 29:41, 59:81] = True
    return depth.view(1, 1, H, W), K, poses, flows, truth, np.array([True, False]), detections


def test_tiny_scene_dynamic_iou_and_static_recall():
    depth, K, poses, flows, truth, true_moving, detections = _scene()
    out = frame_masks(depth, K, poses, flows, instances=detections)
    assert len(out.instances.masks) == 2 and out.instances.moving.tolist() == [True, False]
    iou = mask_iou(out.instances.dynamic_mask, truth[0])
    recall, matched, total = static_object_recall(out.instances.static, truth, true_moving)
    assert iou >= 0.8  # conservative; measured 0.88 (the detection is 2 px too wide at the sides)
    assert (recall, matched, total) == (1.0, 1, 1)
    assert not (out.instances.masks & out.ground).any()  # road cut out of the detections
    assert out.ground[45, 40] and not out.ground[10, 40]
    assert out.keep.tolist() == [True, True]
    assert set(out.warped) == {-1, 1} and out.warped[1].shape == (2, H, W)
    # Without a detector (connected components of the evidence) only the moving car is found.
    cc = frame_masks(depth, K, poses, flows)
    assert mask_iou(cc.instances.dynamic_mask, truth[0]) >= 0.85  # measured 0.92
    assert static_object_recall(cc.instances.static, truth, true_moving)[0] == 0.0


def test_iou_and_recall_helpers():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert mask_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    truth = np.stack([a, b])
    assert static_object_recall(truth[:1], truth, np.array([False, True])) == (1.0, 1, 1)
    assert np.isnan(static_object_recall(truth, truth, np.array([True, True]))[0])
