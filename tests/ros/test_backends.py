"""Backends: ONNX Runtime against PyTorch, auto selection, the exported torch program, TensorRT's clear errors."""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from mcdepth_ros.backends import BackendUnavailable, create_backend
from mcdepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, choose_providers
from mcdepth_ros.contract import load_contract

from .conftest import MODEL_H, MODEL_W


HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def seeded_net():
    """The same weights make_model_dir exported (seed 0, built in the same order)."""
    import torch

    from mcdepth_train.networks.depth import DepthNet

    torch.manual_seed(0)
    return DepthNet("resnet18", min_depth=0.1, max_depth=100.0).eval()


def test_onnxruntime_matches_pytorch(model_dir):
    import torch

    from mcdepth_train.networks.depth import DepthInference

    x = np.random.default_rng(0).random((1, 3, MODEL_H, MODEL_W), dtype=np.float32)
    backend = OnnxRuntimeBackend(load_contract(model_dir), device="cpu")
    out = backend.infer(x)
    with torch.no_grad():
        ref = DepthInference(seeded_net())(torch.from_numpy(x)).numpy()
    assert out.shape == (1, 1, MODEL_H, MODEL_W) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"x: expected float32 \[1, 3, 64, 192\]"):
        backend.infer(x[:, :, :32])


def test_auto_picks_the_best_available_and_says_why(model_dir):
    backend, reason = create_backend("auto", load_contract(model_dir))
    if not HAS_TENSORRT:
        assert backend.name == "onnxruntime"
        assert "auto: best available" in reason and "tensorrt: not installed" in reason
    assert backend.infer(np.zeros((1, 3, MODEL_H, MODEL_W), np.float32)).shape == (1, 1, MODEL_H, MODEL_W)
    with pytest.raises(ValueError, match="backend: expected auto or one of"):
        create_backend("openvino", load_contract(model_dir))


def test_providers_by_device():
    assert choose_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("auto", ["CPUExecutionProvider", "CUDAExecutionProvider"]) == \
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match="device 'cuda' needs CUDAExecutionProvider"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def test_graph_names_must_match_model_json(model_dir, tmp_path):
    shutil.copy(model_dir / "model.onnx", tmp_path / "model.onnx")
    meta = json.loads((model_dir / "model.json").read_text())
    meta["input"]["name"] = "rgb"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BackendUnavailable, match="model.json names input 'rgb'"):
        OnnxRuntimeBackend(load_contract(tmp_path))


def test_torch_backend_runs_the_exported_program_and_agrees_with_onnxruntime(model_dir, tmp_path):
    from mcdepth_train.config import Config, config_to_dict
    from mcdepth_train.engine.checkpoint import save_checkpoint

    contract = load_contract(model_dir)
    assert contract.raw["torch_program"]["file"] == "model.pt2" and (model_dir / "model.pt2").is_file()
    backend, reason = create_backend("torch", contract, device="cpu")
    assert "torch (cpu, model.pt2)" in reason
    x = np.random.default_rng(1).random((1, 3, MODEL_H, MODEL_W), dtype=np.float32)
    np.testing.assert_allclose(backend.infer(x), OnnxRuntimeBackend(contract, device="cpu").infer(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(BackendUnavailable, match="exported program not found"):
        create_backend("torch", contract, checkpoint=str(tmp_path / "missing.pt2"))
    ckpt = save_checkpoint(tmp_path / "last.pt", stage="stage3", step=1, epoch=0, config=config_to_dict(Config()),
                           models={"depth": seeded_net()})
    with pytest.raises(BackendUnavailable, match="last.pt is not a torch.export program.*trainer checkpoint.*re-export"):
        create_backend("torch", contract, checkpoint=str(ckpt))


def test_torch_backend_refuses_a_folder_without_or_with_another_program(model_dir, tmp_path):
    for name in ("model.onnx", "model.pt2"):
        shutil.copy(model_dir / name, tmp_path / name)
    meta = json.loads((model_dir / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "torch_program": None}))
    with pytest.raises(BackendUnavailable, match="names no exported program.*re-export"):
        create_backend("torch", load_contract(tmp_path))
    (tmp_path / "model.json").write_text(json.dumps({**meta, "torch_program": {**meta["torch_program"], "sha256": "0" * 64}}))
    with pytest.raises(BackendUnavailable, match="does not match torch_program.sha256"):
        create_backend("torch", load_contract(tmp_path))


def test_torch_backend_needs_no_trainer_code(model_dir):
    """The vehicle may have torch but not mcdepth_train: the backend loads model.pt2 with torch alone."""
    import subprocess
    import sys

    code = (f"import sys; sys.modules['mcdepth_train'] = None\n"
            f"import numpy as np\nfrom mcdepth_ros.backends import create_backend\nfrom mcdepth_ros.contract import load_contract\n"
            f"b, _ = create_backend('torch', load_contract({str(model_dir)!r}), device='cpu')\n"
            f"print(b.infer(np.zeros((1, 3, {MODEL_H}, {MODEL_W}), np.float32)).shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"(1, 1, {MODEL_H}, {MODEL_W})"


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here; this checks the message when it is not")
def test_tensorrt_missing_is_a_clear_error(model_dir):
    with pytest.raises(BackendUnavailable, match="tensorrt is not installed.*backend:=onnxruntime"):
        create_backend("tensorrt", load_contract(model_dir))


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT 10 and a CUDA GPU (no machine here can install TensorRT)")
def test_tensorrt_builds_named_engine_and_matches_onnxruntime(model_dir, tmp_path):
    contract = load_contract(model_dir)
    backend, _ = create_backend("tensorrt", contract, precision="fp32", engine_dir=str(tmp_path))
    assert backend.engine_path.parent == tmp_path and backend.engine_path.name.endswith("_fp32.engine")
    x = np.random.default_rng(2).random((1, 3, MODEL_H, MODEL_W), dtype=np.float32)
    np.testing.assert_allclose(backend.infer(x), OnnxRuntimeBackend(contract).infer(x), rtol=1e-3, atol=1e-3)
    again, _ = create_backend("tensorrt", contract, precision="fp32", engine_dir=str(tmp_path))
    assert not again.built  # the cached engine is reused


def test_tensorrt_cuda_buffers_say_what_is_missing():
    import torch

    from mcdepth_ros.backends.tensorrt_backend import cuda_memory

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks the message when there is none")
    with pytest.raises(BackendUnavailable, match="needs CUDA buffers from cuda-python, cupy or torch; cuda-python: .*torch: "):
        cuda_memory()
