"""bench/motion_landscape.py (where pixels truly go, from the generator's poses), bench/motion_probe.py, motion_eval.py and motion_in_stage1.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_bench

K = np.array([[50.0, 0, 8], [0, 50.0, 6], [0, 0, 1]])


def _load(name: str = "motion_landscape"):
    return load_bench(name)


def _translation(x=0.0, z=0.0):
    T = np.eye(4)
    T[0, 3], T[2, 3] = x, z
    return T


def _truth(cam_z1: float, object_x1: float) -> dict:
    return {"cam_poses": {0: _translation(), 1: _translation(z=cam_z1)},
            "object_poses": {0: {5: _translation(z=10.0)}, 1: {5: _translation(x=object_x1, z=10.0)}}}


def test_static_pixels_follow_the_camera_and_moving_ones_their_object_too():
    bench = _load()
    depth = np.full((12, 16), 10.0)
    instances = np.zeros((12, 16), np.int64)
    instances[4:8, 6:10] = 5
    truth = _truth(cam_z1=0.0, object_x1=0.5)  # camera still, object 0.5 m to the right
    out = bench.true_source_pixels(depth, instances, K, truth, 1)
    u, v = np.meshgrid(np.arange(16), np.arange(12))
    np.testing.assert_allclose(out[0][instances == 0], u[instances == 0])
    np.testing.assert_allclose(out[1], v, atol=1e-9)
    # 0.5 m at 10 m depth with f = 50: 2.5 px to the right.
    np.testing.assert_allclose(out[0][instances == 5], u[instances == 5] + 2.5)


def test_object_at_ego_speed_stays_where_it_is_while_the_rigid_model_expects_it_to_grow():
    bench = _load()
    depth = np.full((12, 16), 10.0)
    instances = np.zeros((12, 16), np.int64)
    instances[4:8, 6:10] = 5
    truth = _truth(cam_z1=1.0, object_x1=0.0)
    truth["object_poses"][1][5] = _translation(z=11.0)  # the lead car moved on with the camera
    true = bench.true_source_pixels(depth, instances, K, truth, 1)
    src_from_ref = np.linalg.inv(truth["cam_poses"][1]) @ truth["cam_poses"][0]
    rigid = bench.rigid_source_pixels(depth, K, src_from_ref)
    u, _ = np.meshgrid(np.arange(16), np.arange(12))
    np.testing.assert_allclose(true[0][instances == 5], u[instances == 5])
    # The rigid model moves a corner pixel outwards by (u - cx) * (10 / 9 - 1).
    assert abs(rigid[0][4, 6] - (6 + (6 - 8) * (10 / 9 - 1))) < 1e-9
    np.testing.assert_allclose(true[:, instances == 0], rigid[:, instances == 0])


def test_regions_drop_small_objects_and_name_kinds():
    bench = _load()
    instances = np.zeros((6, 6), np.int64)
    instances[:3, :3] = 2
    instances[5, 5] = 3
    regions = bench.region_names(instances, {2: "crossing", 3: "parked"}, min_pixels=4)
    assert sorted(regions) == ["background", "crossing#2"]
    assert regions["crossing#2"].sum() == 9
    summary = bench._per_kind([("crossing#2", {"x": 1.0}), ("crossing#7", {"x": 3.0}), ("background", {"x": 0.0})])
    assert summary["crossing"] == {"x": 2.0, "regions": 2} and summary["background"]["regions"] == 1


@pytest.fixture(scope="module")
def tiny_stage1(tmp_path_factory):
    """A stage-1 checkpoint of one optimiser step on a tiny synthetic drive."""
    from mcdepth_train.cli import main as cli

    run = tmp_path_factory.mktemp("motion_benches") / "run"
    assert cli(["run", "--run", str(run), "--until", "stage1", "run.progress=false", "data.height=64", "data.width=192",
                "data.synth_frames=6", "data.synth_sequences=1", "data.synth_test_sequences=1", "model.splat_supersample=1",
                "stage1.epochs=1", "stage1.max_steps=1", "stage1.batch_size=2", "stage1.depth_pose_epochs=0",
                "stage1.motion_only_epochs=0", "stage1.val_batches=1"]) == 0
    return run / "stage1" / "checkpoints" / "last.pt"


def _printed_json(printed: str) -> dict:
    return json.loads(printed[printed.index("{"):])


def test_landscape_runs_on_a_tiny_stage1_and_reports_every_kind(tiny_stage1, capsys):
    capsys.readouterr()
    assert _load().main([str(tiny_stage1), "--frames", "2", "--free-frames", "1", "--free-steps", "2"]) == 0
    printed = capsys.readouterr().out
    result = _printed_json(printed)
    assert result["frames"] == 2
    assert "background" in result["by_kind"] and "lead" in result["by_kind"]  # every generated drive has a lead car
    assert all(row["needed_px"] >= 0 and row["loss_zero_motion"] >= 0 for row in result["by_kind"].values())
    assert set(result["free_flow"]["by_sparsity_weight"]) == {"0.01", "0.0"}  # the checkpoint's weight, and none
    assert "needed px" in printed.splitlines()[0]


def test_probe_reports_motion_on_moving_and_static_pixels(tiny_stage1, capsys):
    capsys.readouterr()
    assert _load("motion_probe").main([str(tiny_stage1), "--frames", "2"]) == 0
    result = _printed_json(capsys.readouterr().out)
    assert result["frames"] == 2 and result["threshold_px"] == 1.0
    assert result["motion_px_moving"] >= 0 and result["motion_px_static"] >= 0
    assert 0.0 <= result["moving_pixels_above_threshold"] <= 1.0


@pytest.mark.parametrize("bench, args, message", [
    ("motion_landscape", ["--frames", "0"], "--frames"),
    ("motion_landscape", ["--free-frames", "0"], "--free-frames"),
    ("motion_landscape", ["--free-steps", "-1"], "--free-steps"),
    ("motion_probe", ["--frames", "0"], "--frames"),
])
def test_benches_reject_bad_counts_before_loading_anything(tmp_path, capsys, bench, args, message):
    with pytest.raises(SystemExit) as exit_info:
        _load(bench).main([str(tmp_path / "never_read.pt"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _eval_layout_ok(result: dict, seeds: list[int]) -> None:
    assert set(result["per_kind"]) == {"crossing", "oncoming", "lead", "parked", "background"}
    for row in result["per_kind"].values():
        assert set(row) == {"mean_motion_px", "epe_px", "pixel_share", "flagged_share", "instances",
                            "observable_instances", "flagged_share_observable"}
        assert row["mean_motion_px"] >= 0 and row["epe_px"] >= 0
        assert 0 <= row["pixel_share"] <= 1 and 0 <= row["flagged_share"] <= 1
        assert 0 <= row["observable_instances"] <= row["instances"] and 0 <= row["flagged_share_observable"] <= 1
    assert result["per_kind"]["background"]["instances"] == 2 * len(seeds)  # one per evaluated frame
    assert result["seeds"] == seeds and set(result["goals"]) >= {"crossing", "parked", "background"}


def test_motion_eval_with_weights_uses_exact_depth_and_pose(tmp_path, capsys):
    from mcdepth_train.networks.motion import MotionNet

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    weights = tmp_path / "raft.pt"
    torch.save(MotionNet().raft.state_dict(), weights)
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert _load("motion_eval").main(["--weights", str(weights), "--seeds", "3", "--frames", "2", "--json", str(out),
                                      "data.synth_frames=6", "model.splat_supersample=1"]) == 0
    result = json.loads(out.read_text())
    _eval_layout_ok(result, [3])
    assert result["weights"] == str(weights) and result["depth_and_pose"] == "exact"
    assert "flagged" in capsys.readouterr().out.splitlines()[0]
    with pytest.raises(SystemExit):
        _load("motion_eval").main(["--weights", str(tmp_path / "missing.pt"), "--seeds", "3"])


def test_motion_eval_with_a_checkpoint_uses_its_own_depth_and_pose(tiny_stage1, tmp_path):
    out = tmp_path / "eval.json"
    assert _load("motion_eval").main(["--checkpoint", str(tiny_stage1), "--seeds", "5", "--frames", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    _eval_layout_ok(result, [5])
    assert result["depth_and_pose"] == "checkpoint's own"
    from mcdepth_train.networks.motion import MotionNet

    torch = pytest.importorskip("torch")
    torch.save(MotionNet().raft.state_dict(), tmp_path / "raft.pt")
    assert _load("motion_eval").main(["--checkpoint", str(tiny_stage1), "--motion-weights", str(tmp_path / "raft.pt"),
                                      "--seeds", "5", "--frames", "2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["weights"].endswith("raft.pt")


def test_goal_results_apply_the_issue_bounds():
    bench = _load("motion_eval")
    row = {"mean_motion_px": 2.0, "epe_px": 0.5, "pixel_share": 0.9, "flagged_share": 0.5, "instances": 5,
           "observable_instances": 4, "flagged_share_observable": 0.8}
    per_kind = {"crossing": row, "oncoming": row | {"epe_px": 1.0, "flagged_share_observable": 0.75},
                "parked": row | {"flagged_share": 0.05}, "background": row | {"pixel_share": 0.01}, "lead": row | {"instances": 0}}
    assert bench.goal_results(per_kind) == {"crossing": True, "oncoming": False, "crossing_epe": True, "oncoming_epe": False,
                                            "parked": True, "background": False}
    # recall is judged over the instances a perfect motion net could flag; none observable -> not judged
    assert bench.goal_results(per_kind | {"crossing": row | {"observable_instances": 0}})["crossing"] is None


def test_motion_eval_oracle_motion_flags_exactly_the_observable_instances(tmp_path):
    """Fed the needed motion itself, the masks rule flags every observable instance and no other:
    the observable count is the ceiling any motion net can reach."""
    out = tmp_path / "oracle.json"
    assert _load("motion_eval").main(["--oracle-motion", "--seeds", "1000", "--frames", "6", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["weights"] == "oracle motion"
    per_kind = result["per_kind"]
    for kind, row in per_kind.items():
        assert row["epe_px"] == pytest.approx(0.0, abs=1e-3), kind
        assert row["flagged_share"] == pytest.approx(row["observable_instances"] / max(row["instances"], 1)), kind
    assert per_kind["crossing"]["observable_instances"] + per_kind["oncoming"]["observable_instances"] > 0
    assert per_kind["parked"]["observable_instances"] == 0 and per_kind["background"]["pixel_share"] == 0
    # every crossing or oncoming instance the needed motion does not flag is listed, with why
    missed = [row for row in result["unobservable_instances"]]
    assert len(missed) == sum(per_kind[k]["instances"] - per_kind[k]["observable_instances"] for k in ("crossing", "oncoming"))
    assert all(row["kind"] in ("crossing", "oncoming") and row["median_depth_m"] > 0 for row in missed)
    # at RAFT's output grid the same motion is blurred: never above the exact ceiling, and EPE > 0
    grid = tmp_path / "grid.json"
    assert _load("motion_eval").main(["--oracle-motion", "grid", "--seeds", "1000", "--frames", "6", "--json", str(grid)]) == 0
    blurred = json.loads(grid.read_text())["per_kind"]
    assert blurred["oncoming"]["epe_px"] > 0.01 and blurred["crossing"]["flagged_share"] <= per_kind["crossing"]["flagged_share"]
    with pytest.raises(SystemExit):
        _load("motion_eval").main(["--oracle-motion", "--random-init", "--seeds", "3"])


def test_motion_in_stage1_probes_the_motion_net_that_model_motion_weights_names(tiny_stage1, tmp_path, capsys):
    """--init takes depth and pose from the checkpoint but the motion net from model.motion_weights:
    the probe before the first step scores exactly what motion_eval scores for those weights."""
    from mcdepth_train.networks.motion import MotionNet

    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    weights = tmp_path / "random_raft.pt"  # differs from the checkpoint's (shipped, frozen) motion net
    torch.save(MotionNet().raft.state_dict(), weights)
    config = tiny_stage1.parents[2] / "config.yaml"
    out = tmp_path / "probe_run"
    assert _load("motion_in_stage1").main([
        "--config", str(config), "--out", str(out), "--init", str(tiny_stage1), "--every", "1", "--seeds", "5",
        "--frames", "1", f"model.motion_weights={weights}", "stage1.epochs=1", "stage1.max_steps=1",
        "stage1.motion_lr_scale=1"]) == 0
    rows = json.loads((out / "motion_in_stage1.json").read_text())["rows"]
    assert [(r["step"], r["phase"]) for r in rows] == [(0, "start"), (1, "all")]
    reference = tmp_path / "eval.json"
    assert _load("motion_eval").main(["--weights", str(weights), "--config", str(config), "--seeds", "5",
                                      "--frames", "1", "--json", str(reference)]) == 0
    expected = json.loads(reference.read_text())["per_kind"]
    for kind, row in expected.items():
        assert rows[0]["per_kind"][kind] == pytest.approx(row, rel=1e-4, abs=1e-6), kind
    assert "step    0 start" in capsys.readouterr().out


def test_motion_in_stage1_refuses_init_without_motion_weights(tiny_stage1, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load("motion_in_stage1").main(["--config", str(tiny_stage1.parents[2] / "config.yaml"), "--out", str(tmp_path / "o"),
                                        "--init", str(tiny_stage1), "model.motion_weights="])
    assert exit_info.value.code == 2 and "motion_weights" in capsys.readouterr().err


def test_motion_eval_runs_the_masks_stage_dis_source_and_refuses_it_with_a_net(tiny_stage1, tmp_path):
    out = tmp_path / "dis.json"
    assert _load("motion_eval").main(["--seeds", "3", "--frames", "2", "--json", str(out), "data.synth_frames=6",
                                      "masks.motion_source=dis"]) == 0
    result = json.loads(out.read_text())
    _eval_layout_ok(result, [3])
    assert result["weights"] == "masks.motion_source=dis" and result["depth_and_pose"] == "exact"
    assert _load("motion_eval").main(["--checkpoint", str(tiny_stage1), "--seeds", "5", "--frames", "2", "--json", str(out),
                                      "masks.motion_source=dis"]) == 0
    assert json.loads(out.read_text())["weights"].startswith("masks.motion_source=dis on ")
    with pytest.raises(SystemExit):
        _load("motion_eval").main(["--random-init", "--seeds", "3", "masks.motion_source=dis"])
