"""Contract reader, pre/post-processing, scale policy and diagnostics helpers (pure numpy)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mcdepth_ros.contract import ContractError, load_contract, parse_contract
from mcdepth_ros.diagnostics import FrameStats, RateLimitedLog, RateMeter
from mcdepth_ros.postprocess import colorize, depth_to_points, raw_to_depth, resize_depth, scale_intrinsics
from mcdepth_ros.preprocess import prepare_input
from mcdepth_ros.scale import DepthScaler, fit_ground_plane

from .conftest import write_model_json


@pytest.fixture
def contract_dir(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a real graph")
    write_model_json(tmp_path, 32, 64)
    return tmp_path


def test_contract_reads_the_documented_example(contract_dir):
    c = load_contract(contract_dir)
    assert (c.height, c.width, c.input_name, c.output_name) == (32, 64, "image", "depth")
    assert c.output_kind == "depth" and c.scale_policy == "relative" and c.depth_range == (0.1, 100.0)
    assert c.input_shape == (1, 3, 32, 64) and len(c.onnx_sha256) == 64


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(format="other"), "field 'format' must be 'mcdepth-model-v1'"),
    (lambda d: d["input"].pop("name"), "missing field 'input.name'"),
    (lambda d: d["input"].update(shape=[1, 3, 32]), "'input.shape' must be \\[1, 3, H, W\\]"),
    (lambda d: d["output"].update(shape=[1, 1, 16, 64]), "output.shape 16x64 differs from input.shape 32x64"),
    (lambda d: d["output"].update(kind="disparity"), "'output.kind' must be one of"),
    (lambda d: d["scale"].update(policy="magic"), "'scale.policy' must be one of"),
    (lambda d: d.update(depth_range=[5.0, 1.0]), "'depth_range' needs 0 < min < max"),
    (lambda d: d["input"].update(std=[1.0, 0.0, 1.0]), "'input.std' must not contain 0"),
    (lambda d: d.update(precision="fp8"), "'precision' must be one of"),
])
def test_contract_errors_name_the_field(contract_dir, edit, message):
    data = json.loads((contract_dir / "model.json").read_text())
    edit(data)
    with pytest.raises(ContractError, match=message):
        parse_contract(data, contract_dir)


def test_contract_refuses_an_onnx_of_another_export(contract_dir):
    assert load_contract(contract_dir).precision == "fp16"
    (contract_dir / "model.onnx").write_bytes(b"another graph")
    with pytest.raises(ContractError, match="differs from onnx.sha256 .* the files come from different exports"):
        load_contract(contract_dir)
    assert load_contract(contract_dir, verify_hash=False).height == 32


def test_contract_missing_files_and_bad_json(tmp_path):
    with pytest.raises(ContractError, match="no such folder"):
        load_contract(tmp_path / "nope")
    with pytest.raises(ContractError, match="lacks model.json, model.onnx"):
        load_contract(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "model.json").write_text("{broken")
    with pytest.raises(ContractError, match="model.json: cannot be read as JSON"):
        load_contract(tmp_path)


def test_prepare_input_resizes_scales_and_orders(contract_dir):
    c = load_contract(contract_dir)
    rgb = np.zeros((64, 128, 3), np.uint8)
    rgb[..., 0] = 255
    x = prepare_input(rgb, c)
    assert x.shape == (1, 3, 32, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 5, 5], [1.0, 0.0, 0.0])
    x16 = prepare_input(np.full((32, 64, 3), 65535, np.uint16), c)
    np.testing.assert_allclose(x16, 1.0)
    from dataclasses import replace

    bgr_norm = replace(c, color_order="bgr", normalization_in_graph=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(prepare_input(rgb, bgr_norm)[0, :, 5, 5], [-1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r"rgb: expected \[H,W,3\]"):
        prepare_input(np.zeros((4, 4), np.uint8), c)


def test_raw_to_depth_inverts_and_marks_invalid():
    raw = np.array([[[[2.0, 0.0], [np.inf, -1.0]]]], np.float32)
    depth = raw_to_depth(raw, "depth")
    assert depth[0, 0] == 2.0 and np.isnan(depth[0, 1]) and np.isnan(depth[1, 0]) and np.isnan(depth[1, 1])
    inv = raw_to_depth(raw, "inv_depth")
    assert inv[0, 0] == 0.5 and np.isnan(inv[0, 1])


def test_resize_depth_and_colorize():
    depth = np.array([[1.0, 3.0]], np.float32)
    assert resize_depth(depth, 1, 2) is depth
    wide = resize_depth(depth, 2, 4)
    assert wide.shape == (2, 4) and wide.min() >= 1.0 and wide.max() <= 3.0
    bgr = colorize(np.array([[0.5, 50.0, np.nan]], np.float32), 0.5, 50.0)
    assert bgr.dtype == np.uint8 and bgr.shape == (1, 3, 3)
    assert bgr[0, 0, 2] > bgr[0, 0, 0] and bgr[0, 1, 0] > bgr[0, 1, 2]  # near red, far blue
    assert (bgr[0, 2] == 0).all()
    with pytest.raises(ValueError, match="far > near"):
        colorize(depth, 5.0, 5.0)


def test_scale_intrinsics_by_hand():
    k = [[100.0, 0, 79.5], [0, 100.0, 23.5], [0, 0, 1]]
    p = [[100.0, 0, 79.5, -10.0], [0, 100.0, 23.5, 0], [0, 0, 1, 0]]
    k2, p2 = scale_intrinsics(k, p, (48, 160), (96, 320))
    np.testing.assert_allclose(k2, [[200.0, 0, 159.5], [0, 200.0, 47.5], [0, 0, 1]])
    assert p2[0, 3] == -20.0 and p2[2, 2] == 1.0


def test_depth_to_points_back_projects_and_packs_rgb():
    k = np.array([[2.0, 0, 1.0], [0, 2.0, 1.0], [0, 0, 1]])
    depth = np.full((3, 3), 4.0, np.float32)
    depth[0, 0] = np.nan
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[2, 2] = (255, 0, 1)
    pts = depth_to_points(depth, k, stride=1, rgb=rgb)
    assert pts.size == 8
    last = pts[-1]
    assert (last["x"], last["y"], last["z"]) == (2.0, 2.0, 4.0)
    assert np.array([last["rgb"]], np.float32).view(np.uint32)[0] == 0xFF0001
    assert depth_to_points(depth, k, stride=2).size == 3


def ground_depth(h=96, w=256, height=1.5, f=120.0, units=1.0, noise=0.0, seed=0):
    """Depth of a flat road a camera at ``height`` sees, in units of ``units`` metres; sky is NaN."""
    k = np.array([[f, 0, w / 2], [0, f, h / 2 - 10.0], [0, 0, 1]])
    v = np.arange(h)[:, None].repeat(w, 1).astype(np.float64)
    with np.errstate(divide="ignore"):
        z = np.where(v > k[1, 2] + 1, height * f / (v - k[1, 2]), np.nan)
    z *= 1.0 + noise * np.random.default_rng(seed).standard_normal(z.shape)
    return (z / units).astype(np.float32), k


def test_fit_ground_plane_finds_height_with_an_obstacle():
    depth, k = ground_depth(noise=0.002)
    depth[70:, 100:140] = 3.0  # a box standing on the road
    fit = fit_ground_plane(depth, k)
    assert fit is not None and fit.distance == pytest.approx(1.5, rel=0.02)
    assert fit.normal[1] < -0.98 and 0.5 < fit.inlier_fraction <= 1.0
    assert fit_ground_plane(np.full_like(depth, np.nan), k) is None


def test_camera_height_scaler_converges_and_is_smoothed():
    depth, k = ground_depth(units=4.0)  # model units: a quarter of a metre
    scaler = DepthScaler("camera_height", factor=1.0, camera_height=1.5, smoothing=0.5)
    first = scaler.update(depth, k)
    assert 1.0 < first < 4.0  # smoothed towards 4, not there in one frame
    for _ in range(12):
        scaler.update(depth, k)
    assert scaler.factor == pytest.approx(4.0, rel=0.02)
    np.testing.assert_allclose(scaler.apply(depth, k)[-1], depth[-1] * scaler.factor, rtol=1e-5)
    assert scaler.status()["ground_fits_used"] == "14"
    fixed = DepthScaler("fixed", factor=2.0)
    assert fixed.apply(depth, k)[-1, 0] == pytest.approx(depth[-1, 0] * 2)
    assert DepthScaler("relative", factor=7.0).factor == 1.0
    with pytest.raises(ValueError, match="scale_mode"):
        DepthScaler("metric")


def test_frame_stats_rate_and_rate_limited_log():
    clock = iter(np.arange(0, 100, 0.1)).__next__
    meter = RateMeter(window_s=5.0, clock=clock)
    for _ in range(11):
        meter.tick()
    assert meter.rate() == pytest.approx(10.0, rel=0.1)
    stats = FrameStats()
    stats.on_received(), stats.on_received(), stats.on_dropped(), stats.on_published(0.05, 0.04)
    stats.on_error("conversion", "bad")
    snap = stats.snapshot()
    assert snap["frames_received"] == "2" and snap["frames_dropped"] == "1" and snap["errors_conversion"] == "1"
    assert snap["latency_p50_ms"] == "50.00"
    lines, t = [], [0.0]
    log = RateLimitedLog(lines.append, period_s=5.0, clock=lambda: t[0])
    assert log("a", "one") and not log("a", "two") and log("b", "other")
    t[0] = 6.0
    assert log("a", "three") and lines[-1] == "three (1 more like this since the last report)"


def test_lost_frames_counted_from_stamp_gaps_with_jitter_restart_and_pause():
    from mcdepth_ros.diagnostics import StampGapCounter

    rng = np.random.default_rng(0)
    counter = StampGapCounter()
    kept = [i for i in range(200) if rng.random() > 0.75]  # 75% lost, from the start
    for i in kept:
        counter.add(i * 0.1 + rng.uniform(-0.005, 0.005))  # 10 Hz, +-5 ms stamp jitter
    missing = kept[-1] - kept[0] + 1 - len(kept)
    assert abs(counter.lost - missing) <= 0.02 * missing, (counter.lost, missing)  # jitter on long gaps: +-1 frame
    assert counter.period() == pytest.approx(0.1, abs=0.005)
    lost = counter.lost
    counter.add(5.0)  # backwards: a bag restarted; measurement restarts, nothing counted
    for i in range(1, 8):
        counter.add(5.0 + i * 0.1)
    counter.add(5.7 + 60.0)  # a minute's pause of the publisher is not 600 lost frames
    counter.add(5.7 + 60.0)  # the same stamp again
    assert counter.lost == lost


def test_build_pipeline_takes_the_scale_policy_from_model_json_when_not_set(tmp_path):
    from mcdepth_ros.pipeline import build_pipeline

    from .conftest import make_constant_model_dir

    model = make_constant_model_dir(tmp_path / "m", np.full((8, 16), 5.0, np.float32))
    write_model_json(model, 8, 16, policy="fixed", factor=2.0)
    pipeline, reason = build_pipeline(model, backend="onnxruntime", device="cpu")
    assert (pipeline.scaler.mode, pipeline.scaler.factor) == ("fixed", 2.0) and "onnxruntime" in reason
    np.testing.assert_allclose(pipeline.run(np.zeros((8, 16, 3), np.uint8)).depth, 10.0)
    pipeline, _ = build_pipeline(model, backend="onnxruntime", scale_mode="relative")
    assert (pipeline.scaler.mode, pipeline.scaler.factor) == ("relative", 1.0)
