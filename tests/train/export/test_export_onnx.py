"""Export to ONNX + model.json: pinned opset, contract fields, TensorRT op allow-list, parity, bad input."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO
from tests.train.export.export_helpers import HEIGHT, KITTI_FRAMES, WIDTH, make_checkpoint

from mcdepth_train.engine.checkpoint import CheckpointError
from mcdepth_train.export import onnx_export
from mcdepth_train.io import file_sha256
from mcdepth_train.export.contract import read_contract
from mcdepth_train.export.images import folder_images, synthetic_images, to_network_input
from mcdepth_train.export.onnx_export import (ExportError, check_onnx_input_size, check_ops, export_onnx,
                                              graph_op_types, load_allowed_ops, load_depth_checkpoint,
                                              ort_session, parity)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(root / "ckpt.pt")
    paths = export_onnx(ckpt, root / "trt_engines" / "tiny", height=HEIGHT, width=WIDTH)
    return ckpt, paths


def test_export_writes_files_with_pinned_opset_and_static_shape(exported):
    ckpt, paths = exported
    assert paths["onnx"].is_file() and paths["json"].is_file() and "int8_onnx" not in paths
    model = onnx.load(str(paths["onnx"]))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "image" and out.name == "depth"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 3, HEIGHT, WIDTH]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, 1, HEIGHT, WIDTH]
    assert not list(paths["dir"].parent.glob(".*partial*")), "the staging folder must be removed"


def test_contract_fields(exported):
    ckpt, paths = exported
    c = read_contract(paths["dir"])
    assert c["format"] == "mcdepth-model-v1"
    assert c["input"] == {"name": "image", "shape": [1, 3, HEIGHT, WIDTH], "dtype": "float32", "color_order": "rgb",
                          "range": [0.0, 1.0], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                          "normalization_in_graph": True}
    assert c["output"] == {"name": "depth", "shape": [1, 1, HEIGHT, WIDTH], "kind": "depth", "units": "relative"}
    assert c["depth_range"] == [0.1, 100.0]
    assert c["scale"] == {"policy": "relative", "factor": 1.0}
    assert c["source"]["checkpoint_sha256"] == file_sha256(ckpt)
    assert c["source"]["stage"] == "stage3" and c["source"]["checkpoint"] == str(ckpt)
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", c["source"]["git_commit"])
    assert c["onnx"]["opset"] == 17 and c["onnx"]["sha256"] == file_sha256(paths["onnx"])
    assert c["onnx"]["parity"]["max_rel_diff"] <= 1e-3 and c["onnx"]["parity"]["images"] >= 2
    assert c["precision"] == "fp32" and c["int8"] is None
    program = c["torch_program"]
    assert program["file"] == "model.pt2" and program["sha256"] == file_sha256(paths["torch_program"])
    assert program["parity"]["max_rel_diff"] <= 1e-3 and program["torch_version"]


def _key_paths(value, prefix=""):
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out |= {f"{prefix}{k}"} | _key_paths(v, f"{prefix}{k}.")
        return out
    return set()


def test_contract_has_every_field_of_docs_contract_md(exported):
    """The ROS node is written against docs/contract.md: every key shown there must be written."""
    text = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    written = json.loads(exported[1]["json"].read_text(encoding="utf-8"))
    missing = _key_paths(example) - _key_paths(written)
    assert not missing, f"model.json lacks keys documented in docs/contract.md: {sorted(missing)}"


def test_graph_ops_are_in_the_tensorrt_allow_list(exported):
    allowed = load_allowed_ops()
    ops = graph_op_types(onnx.load(str(exported[1]["onnx"])))
    assert {"Conv", "Resize", "Pad", "Sigmoid"} <= ops
    assert ops <= allowed, f"ops outside the allow-list: {sorted(ops - allowed)}"
    for banned in ("GridSample", "If", "Loop", "Scan", "NonZero"):
        assert banned not in allowed


def test_check_ops_rejects_grid_sample():
    h = onnx.helper
    graph = h.make_graph([h.make_node("GridSample", ["x", "g"], ["y"]), h.make_node("Relu", ["y"], ["z"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4]),
                          h.make_tensor_value_info("g", onnx.TensorProto.FLOAT, [1, 4, 4, 2])],
                         [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 1, 4, 4])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    assert graph_op_types(model) == {"GridSample", "Relu"}
    with pytest.raises(ExportError, match="GridSample"):
        check_ops(model)


def test_parity_onnxruntime_vs_pytorch_on_real_and_synthetic_images(exported, shared_data):
    ckpt, paths = exported
    net, _, _ = load_depth_checkpoint(ckpt)
    images = list(folder_images(shared_data / KITTI_FRAMES, 3)) + synthetic_images(HEIGHT, WIDTH, 2)
    inputs = [to_network_input(im, HEIGHT, WIDTH) for im in images]
    assert inputs[0].shape == (1, 3, HEIGHT, WIDTH) and inputs[0].dtype == np.float32
    session = ort_session(paths["onnx"])
    result = parity(net, session, inputs)
    print(f"parity: max relative difference {result['max_rel_diff']:.3g} over {result['images']} images")
    assert result["images"] == 5
    assert result["max_rel_diff"] <= 1e-3
    depth = session.run(None, {"image": inputs[0]})[0]
    assert depth.shape == (1, 1, HEIGHT, WIDTH)
    assert 0.1 <= depth.min() and depth.max() <= 100.0 and depth.std() > 0  # a real, varying depth map
    with torch.no_grad():
        other = net.depth(torch.from_numpy(inputs[3])).numpy()
    assert np.abs(session.run(None, {"image": inputs[3]})[0] - other).max() / other.min() <= 1e-3


def test_check_onnx_input_size_names_both_sizes(exported):
    path = exported[1]["onnx"]
    assert check_onnx_input_size(path, HEIGHT, WIDTH) == (HEIGHT, WIDTH)
    with pytest.raises(ExportError, match=rf"takes {HEIGHT}x{WIDTH} images but 192x640 was requested"):
        check_onnx_input_size(path, 192, 640)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "out")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        export_onnx(tmp_path / "junk.pt", tmp_path / "out")
    # resnet50 weights under a config that says resnet18
    ckpt = make_checkpoint(tmp_path / "r50.pt", encoder="resnet50", config_encoder="resnet18")
    with pytest.raises(CheckpointError, match="do not fit a resnet18 depth net"):
        export_onnx(ckpt, tmp_path / "out")
    ckpt = make_checkpoint(tmp_path / "pose_only.pt", models={"pose": torch.nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match="has no 'depth' network"):
        export_onnx(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_arguments_and_failed_export_keep_good_artefacts(exported, monkeypatch):
    ckpt, paths = exported
    before = {p: p.read_bytes() for p in (paths["onnx"], paths["json"])}
    with pytest.raises(ExportError, match="multiples of 32"):
        export_onnx(ckpt, paths["dir"], height=65, width=WIDTH)
    with pytest.raises(ExportError, match="precision"):
        export_onnx(ckpt, paths["dir"], precision="int4")
    with pytest.raises(ExportError, match="scale: policy"):
        export_onnx(ckpt, paths["dir"], scale_policy="lidar")
    with pytest.raises(ExportError, match="calibration images"):
        export_onnx(ckpt, paths["dir"], precision="int8")
    # A real export that fails its final check (parity) after writing its files to staging.
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="nothing was written"):
        export_onnx(ckpt, paths["dir"], height=HEIGHT, width=WIDTH)
    assert {p: p.read_bytes() for p in before} == before
    assert not list(paths["dir"].parent.glob(".*partial*"))


def test_to_network_input_accepts_loader_tensors_and_rejects_bad_shapes():
    chw = torch.rand(3, 32, 96)
    x = to_network_input(chw, 32, 96)
    assert x.shape == (1, 3, 32, 96) and np.allclose(x[0], chw.numpy())
    assert to_network_input(np.full((40, 100, 3), 255, np.uint8), 32, 96).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="image: expected HxWx3"):
        to_network_input(np.zeros((32, 96)), 32, 96)
    with pytest.raises(ValueError, match=r"RGB in \[0,1\]"):
        to_network_input(np.full((32, 96, 3), 200.0), 32, 96)
