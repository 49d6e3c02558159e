"""The ground-truth validation report: scores only batches with depth_gt, means per region, 'gt/' keys."""
from __future__ import annotations

import numpy as np
import pytest

from mcdepth_train.data import keys
from mcdepth_train.eval.gt_report import GroundTruthReport
from mcdepth_train.eval.metrics import evaluate_image


def test_ground_truth_report_scores_batches_with_depth_gt_and_restarts():
    gt = np.full((4, 6), 10.0)
    seen = []

    def score(model, batch):
        seen.append(batch["id"])
        return [evaluate_image(np.full((4, 6), batch["pred"]), gt, median_scaling=False)]

    report = GroundTruthReport(score)
    report.start()
    report.add(None, {"id": 1, "pred": 8.0, keys.DEPTH_GT: gt})   # abs_rel 0.2
    report.add(None, {"id": 2, "pred": 99.0})                      # no ground truth: not scored
    report.add(None, {"id": 3, "pred": 11.0, keys.DEPTH_GT: gt})  # abs_rel 0.1
    result = report.result()
    assert seen == [1, 3] and report.name == "ground_truth"
    assert result["gt/all/abs_rel"] == pytest.approx(0.15) and result["gt/all/images"] == 2
    assert not any(k.startswith("gt/dynamic/") for k in result)  # no dynamic mask: that region has no images
    report.start()
    assert report.result() == {}
