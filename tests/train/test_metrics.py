"""Depth metrics per image and region, against numbers computed by hand."""
import math

import numpy as np
import pytest
import torch

from mcdepth_train.eval import METRIC_NAMES, REGIONS, RegionMetrics, crop_mask, depth_errors, evaluate_image, protocol_crop
from mcdepth_train.eval.metrics import shape_abs_rel


def test_depth_errors_hand_values():
    gt = np.array([1.0, 2.0, 4.0, 10.0])
    pred = np.array([1.9, 2.0, 2.0, 8.0])
    # ratios max(gt/pred, pred/gt) = [1.9, 1, 2, 1.25]
    e = depth_errors(gt, pred)
    assert set(e) == set(METRIC_NAMES)
    assert e["abs_rel"] == pytest.approx((0.9 / 1 + 0 + 2 / 4 + 2 / 10) / 4)  # 0.4
    assert e["abs_rel"] == pytest.approx(0.4)
    assert e["sq_rel"] == pytest.approx((0.81 / 1 + 0 + 4 / 4 + 4 / 10) / 4)  # 0.5525
    assert e["rmse"] == pytest.approx(math.sqrt((0.81 + 0 + 4 + 4) / 4))
    assert e["rmse_log"] == pytest.approx(math.sqrt((math.log(1.9) ** 2 + math.log(2) ** 2 + math.log(1.25) ** 2) / 4))
    assert e["a1"] == pytest.approx(1 / 4)  # 1.25 itself is not < 1.25
    assert e["a2"] == pytest.approx(2 / 4)  # < 1.5625
    assert e["a3"] == pytest.approx(3 / 4)  # < 1.953125
    perfect = depth_errors(gt, gt.copy())
    assert perfect == {"abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0, "a1": 1.0, "a2": 1.0, "a3": 1.0}


def test_depth_errors_bad_input():
    with pytest.raises(ValueError, match="gt and pred"):
        depth_errors(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="no valid pixels"):
        depth_errors(np.ones(0), np.ones(0))


def test_evaluate_image_median_scaling():
    gt = np.array([[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]])
    pred = gt / 2
    out, ratio = evaluate_image(pred, gt)
    assert ratio == pytest.approx(2.0)
    assert out["all"]["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert out["all"]["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert out["all"]["a1"] == 1.0
    out, ratio = evaluate_image(pred, gt, median_scaling=False)
    assert ratio == 1.0
    a = out["all"]
    assert a["abs_rel"] == pytest.approx(0.5)
    assert a["sq_rel"] == pytest.approx(np.mean(gt / 4))  # (gt/2)^2 / gt
    assert a["rmse"] == pytest.approx(math.sqrt(np.mean(gt**2 / 4)))
    assert a["rmse_log"] == pytest.approx(math.log(2))
    assert (a["a1"], a["a2"], a["a3"]) == (0.0, 0.0, 0.0)  # ratio 2 >= 1.25^3
    # torch input with extra size-1 dims is accepted
    out_t, ratio_t = evaluate_image(torch.tensor(pred).view(1, 1, 2, 3), torch.tensor(gt).view(1, 2, 3))
    assert ratio_t == pytest.approx(2.0)
    assert out_t["all"]["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_evaluate_image_dynamic_static_split_uses_one_image_ratio():
    gt = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    pred = np.array([[1.0, 2.0, 3.0, 8.0, 10.0]])  # the moving object is twice too far
    dyn = np.array([[False, False, False, True, True]])
    out, ratio = evaluate_image(pred, gt, dyn)
    assert ratio == pytest.approx(1.0)  # median(gt) = 3 = median(pred): taken over the whole image
    assert out["static"]["abs_rel"] == pytest.approx(0.0)
    assert out["dynamic"]["abs_rel"] == pytest.approx(1.0)  # |4-8|/4, |5-10|/5
    assert out["dynamic"]["rmse"] == pytest.approx(math.sqrt((16 + 25) / 2))
    assert out["all"]["abs_rel"] == pytest.approx(2 / 5)
    assert out["dynamic"]["a3"] == 0.0 and out["static"]["a1"] == 1.0


def test_image_without_dynamic_pixels_and_region_averages():
    gt_a = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    pred_a = np.array([[1.0, 2.0, 3.0, 8.0, 10.0]])
    dyn_a = np.array([[0, 0, 0, 1, 1]], dtype=bool)
    gt_b = np.full((1, 3), 2.0)
    pred_b = np.full((1, 3), 1.0)
    res_a, ratio_a = evaluate_image(pred_a, gt_a, dyn_a, median_scaling=False)
    res_b, ratio_b = evaluate_image(pred_b, gt_b, np.zeros((1, 3), bool), median_scaling=False)
    assert res_b["dynamic"] is None
    assert res_b["static"]["abs_rel"] == pytest.approx(0.5)
    # without a dynamic mask: no dynamic region, static is everything
    res_none, _ = evaluate_image(pred_b, gt_b, None, median_scaling=False)
    assert res_none["dynamic"] is None
    assert res_none["static"] == res_none["all"]

    acc = RegionMetrics()
    assert acc.mean() == {r: None for r in REGIONS}
    acc.add(res_a, ratio_a)
    acc.add(res_b, ratio_b)
    mean = acc.mean()
    assert mean["dynamic"]["images"] == 1
    assert mean["static"]["images"] == 2
    assert mean["all"]["images"] == 2
    assert mean["dynamic"]["abs_rel"] == pytest.approx(1.0)  # image b is skipped, not counted as 0
    assert mean["static"]["abs_rel"] == pytest.approx((0.0 + 0.5) / 2)
    assert mean["all"]["abs_rel"] == pytest.approx((0.4 + 0.5) / 2)
    assert mean["all"]["a1"] == pytest.approx((3 / 5 + 0.0) / 2)
    assert acc.ratios == [1.0, 1.0]


def test_crop_mask_garg_bounds():
    h, w = 375, 1242
    m = crop_mask(h, w, "garg")
    assert m.shape == (h, w) and m.dtype == bool
    # rows int(0.40810811*375)=153 .. int(0.99189189*375)=371, cols int(0.03594771*1242)=44 .. 1197
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    assert (rows[0], rows[-1] + 1) == (153, 371)
    assert (cols[0], cols[-1] + 1) == (44, 1197)
    assert m.sum() == (371 - 153) * (1197 - 44)
    assert crop_mask(4, 5, "none").all()
    e = crop_mask(375, 1242, "eigen")
    assert np.flatnonzero(e.any(1))[0] == 124 and np.flatnonzero(e.any(1))[-1] + 1 == 342
    with pytest.raises(ValueError, match="crop"):
        crop_mask(4, 5, "kitti")


def test_crop_mask_cityscapes_is_manydepths_crop_at_full_resolution():
    # ManyDepth: gt[256:, 192:1856] on the 768x2048 map left after the bonnet crop.
    m = crop_mask(768, 2048, "cityscapes")
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    assert (rows[0], rows[-1] + 1) == (256, 768)
    assert (cols[0], cols[-1] + 1) == (192, 1856)
    assert m.sum() == (768 - 256) * (1856 - 192)


def test_protocol_crop_auto_follows_the_protocol_and_an_explicit_crop_wins():
    assert protocol_crop("synthetic") == "none"
    assert protocol_crop("kitti_eigen") == "garg"
    assert protocol_crop("cityscapes", "auto") == "cityscapes"
    assert protocol_crop("kitti_eigen", "eigen") == "eigen"
    # 'auto' protocol: the evaluation data set's.
    assert protocol_crop("auto", "auto", "kitti") == "garg"
    assert protocol_crop("auto", "auto", "cityscapes") == "cityscapes"
    assert protocol_crop("auto", "auto", "synthetic") == "none"
    assert protocol_crop("auto", "auto", "rosbag") == "none"
    assert protocol_crop("synthetic", "auto", "kitti") == "none"  # an explicit protocol wins
    with pytest.raises(ValueError, match="protocol"):
        protocol_crop("kitti", "auto")


def test_evaluate_image_crop_and_eval_mask():
    gt = np.full((375, 1242), 10.0)
    pred = np.full((375, 1242), 10.0)
    pred[:100] = 1000.0  # outside the garg crop: must not count
    out, _ = evaluate_image(pred, gt, crop="garg", median_scaling=False)
    assert out["all"]["abs_rel"] == pytest.approx(0.0)
    mask = np.zeros((375, 1242), bool)
    out, ratio = evaluate_image(pred, gt, eval_mask=mask)
    assert out == {r: None for r in REGIONS} and math.isnan(ratio)


def test_evaluate_image_caps():
    gt = np.array([[10.0, 90.0, 50.0, 0.0, np.nan]])
    pred = np.array([[10.0, 10.0, 200.0, 5.0, 5.0]])
    out, _ = evaluate_image(pred, gt, median_scaling=False, max_depth=80.0)
    # gt 90 (beyond max_depth), 0 and NaN are ignored; the prediction 200 is clipped to 80
    assert out["all"]["abs_rel"] == pytest.approx((0 + 30 / 50) / 2)
    assert out["all"]["rmse"] == pytest.approx(math.sqrt((0 + 30**2) / 2))
    # predictions are clipped to min_depth too
    out, _ = evaluate_image(np.array([[1e-6, 2.0]]), np.array([[1.0, 2.0]]), median_scaling=False, min_depth=0.5)
    assert out["all"]["abs_rel"] == pytest.approx((0.5 / 1 + 0) / 2)
    # the ratio is taken over valid pixels only
    gt = np.array([[2.0, 4.0, 6.0, 500.0]])
    _, ratio = evaluate_image(gt / 4, gt)
    assert ratio == pytest.approx(4.0)


def test_evaluate_image_accepts_single_row_and_channel_dims():
    gt = np.array([[2.0, 4.0, 8.0]])  # a single row
    for pred in (gt[None, None] / 2, torch.tensor(gt / 2)):
        out, ratio = evaluate_image(pred, gt)
        assert ratio == pytest.approx(2.0)
        assert out["all"]["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    gt2 = np.array([[2.0, 4.0, 8.0], [1.0, 3.0, 5.0]])
    out, ratio = evaluate_image((gt2 / 2)[..., None], gt2[None])  # [H,W,1] and [1,H,W]
    assert ratio == pytest.approx(2.0)
    out, _ = evaluate_image(np.array([[1.0], [3.0]]), np.array([[2.0], [3.0]]), median_scaling=False)  # Hx1
    assert out["all"]["abs_rel"] == pytest.approx(0.25)


def test_evaluate_image_bad_input():
    with pytest.raises(ValueError, match="pred and gt"):
        evaluate_image(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="pred"):
        evaluate_image(np.ones((2, 2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="dynamic_mask"):
        evaluate_image(np.ones((2, 3)), np.ones((2, 3)), np.zeros((3, 2), bool))


def test_shape_abs_rel_ignores_scale_and_scores_shape():
    gt = np.array([10.0, 10.0, 10.0, 10.0])
    assert shape_abs_rel(gt, 0.37 * gt) == pytest.approx(0.0)  # any scale, same shape
    # a slant: median 1.5 -> scaled [6.67, 6.67, 13.33, 13.33], each 1/3 off
    assert shape_abs_rel(gt, np.array([1.0, 1.0, 2.0, 2.0])) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="gt and pred"):
        shape_abs_rel(gt, gt[:3])
    with pytest.raises(ValueError, match="gt and pred"):
        shape_abs_rel(gt[:0], gt[:0])
