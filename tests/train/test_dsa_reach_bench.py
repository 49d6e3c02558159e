"""bench/dsa_reach.py: DSA's scale over stage 1's level and the truth, grouped by kind and by the central strip."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_bench

H, W = 16, 24


def test_object_row_divides_dsa_by_stage1s_and_the_true_scale():
    bench = load_bench("dsa_reach")
    mask = np.zeros((H, W), bool)
    mask[4:10, 6:14] = True
    object_depth = np.where(mask, 2.0, 0.0)
    stage1 = np.full((H, W), 6.0)  # stage 1's level: scale 3
    true_depth = np.full((H, W), 8.0)  # the truth: scale 4
    row = bench.object_row(True, "lead", True, 6.0, stage1, object_depth, mask, true_depth)
    assert row == {"moving": True, "kind": "lead", "in_strip": True, "dsa_over_stage1": pytest.approx(2.0),
                   "dsa_over_true": pytest.approx(1.5)}
    assert bench.object_row(True, "lead", True, 6.0, stage1, object_depth, mask, np.zeros((H, W))) is None  # no truth


def test_summarise_groups_static_before_moving_and_drops_small_groups():
    bench = load_bench("dsa_reach")
    rows = [{"moving": m, "kind": k, "in_strip": s, "dsa_over_stage1": v, "dsa_over_true": v}
            for m, k, s, v in [(False, "parked", False, 1.0), (False, "parked", False, 1.2), (True, "lead", True, 1.6),
                               (True, "lead", True, 1.6), (True, "bg", False, 0.5)]]
    groups = bench.summarise(rows, min_objects=2)
    assert [(g["moving"], g["kind"], g["objects"]) for g in groups] == [(False, "parked", 2), (True, "lead", 2)]
    assert groups[0]["dsa_over_stage1"][1] == pytest.approx(1.1) and groups[1]["dsa_over_true"] == pytest.approx([1.6] * 3)
    table = bench.format_table({"every": 2, "groups": groups}).splitlines()
    assert len(table) == 4 and table[3].split()[:4] == ["moving", "lead", "True", "2"]


def test_a_run_without_a_trained_dsa_is_refused(tmp_path, capsys):
    bench = load_bench("dsa_reach")
    (tmp_path / "data" / "synth").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--run", str(tmp_path), "--every", "3"])
    assert exit_info.value.code == 2 and "no trained DSA" in capsys.readouterr().err
