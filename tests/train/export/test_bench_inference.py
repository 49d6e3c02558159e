"""bench/inference.py: timing statistics, size parsing and one tiny end-to-end run."""
from __future__ import annotations

import json

import pytest
from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("inference")


def test_latency_stats_median_p90_and_throughput(bench):
    stats = bench.latency_stats([10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 20.0, 100.0])
    assert stats == {"median_ms": 10.0, "p90_ms": pytest.approx(28.0), "fps": pytest.approx(1000 / 20.0), "iters": 10}


def test_time_call_counts_calls_and_times_only_the_timed_ones(bench, monkeypatch):
    """A clock that each call advances by a known time: warm-up calls are not timed, ms are ms."""
    import types

    now = [0.0]
    durations_s = iter([5.0, 5.0, 0.002, 0.004, 0.006, 0.010])  # two slow warm-ups, then 2, 4, 6, 10 ms

    def call():
        now[0] += next(durations_s)

    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    stats = bench.time_call(call, iters=4, warmup=2)
    assert stats["iters"] == 4 and next(durations_s, None) is None  # exactly 2 + 4 calls
    assert stats["median_ms"] == pytest.approx(5.0) and stats["p90_ms"] == pytest.approx(8.8)
    assert stats["fps"] == pytest.approx(1000.0 / 5.5)


def test_parse_size(bench):
    assert bench.parse_size("192x640") == (192, 640)
    with pytest.raises(Exception, match="expected HxW"):
        bench.parse_size("192by640")


def test_tiny_end_to_end_run(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "64x128", "--iters", "2", "--warmup", "0", "--skip-int8", "--json", str(out),
                       "--calib-dir", str(tmp_path / "none")]) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["size"] == [64, 128]
    names = set(result["backends"])
    assert {"pytorch eager", "pytorch inference_mode+channels_last", "onnxruntime cpu fp32"} <= names
    assert result["backends"]["pytorch eager"]["speedup_vs_eager"] == pytest.approx(1.0)
    assert all(s["median_ms"] > 0 for s in result["backends"].values())
    assert "onnxruntime cpu fp32" in capsys.readouterr().out
