"""bench/seed_spread.py: the spread of benchmark results over training seeds."""
from __future__ import annotations

import json

import pytest
from conftest import load_bench


def _results(stage1_dynamic, stage3_dynamic, static=0.1):
    return {"stage 1": {"dynamic": {"abs_rel": stage1_dynamic}, "static": {"abs_rel": static}},
            "stage 3": {"dynamic": {"abs_rel": stage3_dynamic}, "static": {"abs_rel": static * 1.1}, "all": None}}


def test_spread_and_relative_change_over_seeds():
    bench = load_bench("seed_spread")
    per_seed = {0: _results(0.2, 0.15), 1: _results(0.2, 0.19), 2: _results(0.25, 0.2)}
    s = bench.spread(per_seed)
    cell = s["stage 3"]["dynamic"]
    assert cell["values"] == [0.15, 0.19, 0.2] and cell["min"] == 0.15 and cell["max"] == 0.2
    assert cell["mean"] == pytest.approx(0.18) and cell["std"] == pytest.approx(0.0216, abs=1e-4)
    assert "all" not in s["stage 3"]  # a region no seed has is left out, not zero
    change = bench.relative_change(per_seed, "stage 1", "stage 3", "dynamic")
    assert change["per_seed"] == pytest.approx({0: -0.25, 1: -0.05, 2: -0.2})
    assert change["mean"] == pytest.approx(-0.5 / 3) and change["min"] == pytest.approx(-0.25)
    table = bench.spread_table(s)
    assert "| stage 3 | 0.180 (0.150–0.200) | 0.110 (0.110–0.110) |" in table
    text = bench.summary_text(bench.summarise(per_seed, "stage 1", "stage 3"))
    assert "stage 3 vs stage 1, dynamic AbsRel: mean -16.7% (seeds -25.0%, -5.0%, -20.0%)" in text
    with pytest.raises(ValueError, match="no results"):
        bench.spread({})


def test_a_row_missing_from_one_seed_is_summarised_over_the_others():
    bench = load_bench("seed_spread")
    per_seed = {0: _results(0.2, 0.15), 1: {"stage 1": {"dynamic": {"abs_rel": 0.3}}}}
    s = bench.spread(per_seed)
    assert s["stage 1"]["dynamic"]["values"] == [0.2, 0.3] and s["stage 3"]["dynamic"]["values"] == [0.15]
    assert bench.relative_change(per_seed, "stage 1", "stage 3", "dynamic")["per_seed"] == pytest.approx({0: -0.25})


def test_main_summarises_finished_runs(tmp_path, capsys):
    bench = load_bench("seed_spread")
    runs = []
    for seed, (s1, s3) in enumerate([(0.2, 0.15), (0.2, 0.19)]):
        run = tmp_path / f"seed_{seed}"
        (run / "eval").mkdir(parents=True)
        (run / "eval" / "metrics.json").write_text(json.dumps(_results(s1, s3)))
        runs.append(str(run))
    assert bench.main([*runs, "--json", str(tmp_path / "s.json")]) == 0
    assert "stage 3 vs stage 1, dynamic AbsRel: mean -15.0% (seeds -25.0%, -5.0%)" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())["abs_rel"]["stage 3"]["dynamic"]["max"] == 0.19
    for bad in ([str(tmp_path / "nowhere")], [*runs, "--row", "stage 9"]):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(bad)
        assert exit_info.value.code == 2
