"""bench/oracle_masks.py: the oracle inputs it builds from the generator's ground truth."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from conftest import REPO

from mcdepth_train.data import keys


def _load():
    spec = importlib.util.spec_from_file_location("oracle_masks", REPO / "bench" / "oracle_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oracle_instances_one_mask_per_instance_id():
    ids = torch.zeros(1, 4, 6, dtype=torch.int64)
    ids[0, :2, :2] = 3
    ids[0, 2:, 4:] = 7
    masks = _load().oracle_instances({keys.INSTANCE_MAP: ids})
    assert masks.shape == (2, 4, 6) and masks.dtype == bool
    assert masks[0].sum() == 4 and masks[0, :2, :2].all()
    assert masks[1].sum() == 4 and masks[1, 2:, 4:].all()
    assert _load().oracle_instances({keys.INSTANCE_MAP: torch.zeros(1, 4, 6, dtype=torch.int64)}).shape == (0, 4, 6)


def test_oracle_evidence_resizes_the_true_moving_mask():
    dyn = torch.zeros(1, 8, 8)
    dyn[0, :4, 4:] = 1
    evidence = _load().oracle_evidence({keys.DYNAMIC_MASK: dyn}, (4, 4))
    np.testing.assert_array_equal(evidence, np.array([[0, 0, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2, bool))


def test_oracle_needs_ground_truth():
    bench = _load()
    with pytest.raises(ValueError, match="instance_map"):
        bench.oracle_instances({})
    with pytest.raises(ValueError, match="dynamic_mask"):
        bench.oracle_evidence({}, (4, 4))
