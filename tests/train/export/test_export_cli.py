"""`mcdepth-train export` and `build-engine` from the command line, including their bad-input errors."""
from __future__ import annotations

import importlib.util
import json

import pytest
from tests.train.export.export_helpers import HEIGHT, KITTI_FRAMES, WIDTH, make_checkpoint

from mcdepth_train.cli import main

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("cli")
    ckpt = make_checkpoint(root / "ckpt.pt", seed=1)
    out = root / "trt_engines" / "cli"
    rc = main(["export", str(ckpt), "--out", str(out), "--parity-dir", str(shared_data / KITTI_FRAMES),
               "--scale-policy", "camera_height", "--scale-factor", "1.5"])
    return rc, ckpt, out


def test_export_command_writes_the_model_folder(cli_export, capsys):
    rc, ckpt, out = cli_export
    assert rc == 0
    contract = json.loads((out / "model.json").read_text())
    assert contract["input"]["shape"] == [1, 3, HEIGHT, WIDTH]  # the checkpoint's export size by default
    assert contract["scale"] == {"policy": "camera_height", "factor": 1.5}
    assert contract["onnx"]["parity"]["images"] == 6  # 2 synthetic + 4 KITTI frames
    assert (out / "model.onnx").is_file()


def test_export_command_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    ckpt = make_checkpoint(tmp_path / "c.pt")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "o"), "--height", "100"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--out", str(tmp_path / "o"), "--precision", "int8",
                 "--calib-dir", str(tmp_path / "no_frames")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_build_engine_checks_the_model_before_tensorrt(cli_export, capsys):
    _, _, out = cli_export
    assert main(["build-engine", str(out), "--height", "96"]) == 2
    assert f"describes {HEIGHT}x{WIDTH} input but 96x{WIDTH} was requested" in capsys.readouterr().err
    assert main(["build-engine", str(out), "--precision", "int8"]) == 2
    assert "no INT8 model" in capsys.readouterr().err
    assert main(["build-engine", str(out.parent / "missing")]) == 2
    assert "model.json not found" in capsys.readouterr().err


def test_build_engine_refuses_an_onnx_the_contract_does_not_describe(tmp_path, cli_export, capsys):
    _, _, out = cli_export
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.json").write_bytes((out / "model.json").read_bytes())
    (copy / "model.onnx").write_bytes((out / "model.onnx").read_bytes() + b"\0")
    assert main(["build-engine", str(copy)]) == 2
    assert "does not match" in capsys.readouterr().err


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here; this checks the message shown without it")
def test_build_engine_without_tensorrt_says_how_to_install(cli_export, capsys):
    _, _, out = cli_export
    assert main(["build-engine", str(out), "--precision", "fp16"]) == 3
    err = capsys.readouterr().err
    assert "TensorRT's Python bindings are not installed" in err and "Jetson" in err and "pip install tensorrt" in err
    assert not list(out.glob("*.engine"))


def test_int8_calibrates_from_the_data_loaders_and_measures_its_cost(tmp_path, capsys):
    """Without --calib-dir the frames come from build_dataset (train split), the accuracy from val."""
    ckpt = make_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "o"
    data = ["data.height=64", "data.width=192", "data.synth_sequences=1", "data.synth_frames=8", "run.progress=false"]
    assert main(["export", str(ckpt), *data, "--out", str(out), "--precision", "int8", "--calib-count", "3",
                 "--calib-method", "minmax", "--height", str(HEIGHT), "--width", str(WIDTH)]) == 0
    int8 = json.loads((out / "model.json").read_text())["int8"]
    assert int8["calibration_images"] == 3 and (out / int8["file"]).is_file()
    acc = int8["accuracy"]
    # measured on validation frames with ground truth, not on the calibration frames
    assert acc["gt_images"] >= 1 and not acc["eval_on_calibration_images"]
    assert 0 < acc["abs_rel_fp32"] < 10 and abs(acc["abs_rel_change"]) < 0.5
    assert "AbsRel vs ground truth" in capsys.readouterr().out
