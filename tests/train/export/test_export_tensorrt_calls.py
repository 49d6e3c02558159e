"""The TensorRT builder's calls, against a recording stand-in for the `tensorrt` module.

TensorRT cannot be installed on these machines, so the real build is tested only where it is
(test_export_tensorrt.py::test_build_fp16_engine_on_a_gpu). This stand-in implements the few
TensorRT 10 Python API members build_engine uses, with their real names and signatures, and
records what it is asked; it checks our side of the calls: flags, workspace limit, timing
cache, calibrator, file names, staleness and the CLI, not TensorRT. The stand-in replaces
``tensorrt`` in sys.modules for each test, so these checks run also where real TensorRT is
installed (they check our calls, which a real build does not show).
"""
from __future__ import annotations

import json
import sys
import types

import onnx
import pytest
from tests.train.export.export_helpers import HEIGHT, KITTI_FRAMES, WIDTH, make_checkpoint

from mcdepth_train.cli import main
from mcdepth_train.export import tensorrt as trt_build
from mcdepth_train.export.images import folder_images
from mcdepth_train.export.onnx_export import export_onnx


def make_recording_tensorrt(calls: dict) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            calls["logger"] = severity

    class LayerType:
        QUANTIZE, OTHER = "QUANTIZE", "OTHER"

    class Layer:
        def __init__(self, kind):
            self.type = kind

    class Input:
        def __init__(self, shape):
            self.shape = shape

    class Network:
        def __init__(self):
            self.layers, self.inputs = [], []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

        def get_input(self, i):
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            model = onnx.load(path)
            self.network.inputs.append(Input(tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)))
            self.network.layers = [Layer(LayerType.QUANTIZE if n.op_type == "QuantizeLinear" else LayerType.OTHER)
                                   for n in model.graph.node]
            calls["parsed"] = path
            return True

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"timing:" + self.data

    class BuilderConfig:
        def __init__(self):
            self.flags, self.int8_calibrator, self.cache = set(), None, None

        def set_memory_pool_limit(self, pool, size):
            calls["pool"] = (pool, size)

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, data):
            calls["timing_cache_in"] = bytes(data)
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return Network()

        def create_builder_config(self):
            return BuilderConfig()

        def build_serialized_network(self, network, config):
            calls["flags"] = sorted(config.flags)
            calls["calibrator"] = config.int8_calibrator
            return json.dumps({"flags": sorted(config.flags)}).encode()

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    trt.Logger, trt.LayerType, trt.OnnxParser, trt.Builder = Logger, LayerType, OnnxParser, Builder
    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    return trt


@pytest.fixture
def calls(monkeypatch):
    recorded: dict = {}
    monkeypatch.setitem(sys.modules, "tensorrt", make_recording_tensorrt(recorded))
    return recorded


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("trt")
    frames = list(folder_images(shared_data / KITTI_FRAMES, 4))
    export_onnx(make_checkpoint(root / "c.pt", seed=5), root / "m", precision="int8",
                calibration_images=frames, calibrate_method="minmax")
    return root / "m"


def test_fp16_build_sets_flags_workspace_and_timing_cache(calls, model_dir, tmp_path):
    cache = tmp_path / "t.timing_cache"
    cache.write_bytes(b"old")
    engine = trt_build.build_engine(model_dir / "model.onnx", tmp_path / "e.engine", "fp16", workspace_mib=256,
                                    timing_cache=cache, expected_hw=(HEIGHT, WIDTH), log=lambda m: None)
    assert json.loads(engine.read_bytes()) == {"flags": ["FP16"]}
    assert calls["pool"] == ("WORKSPACE", 256 << 20) and calls["network_flags"] == 0
    assert calls["timing_cache_in"] == b"old" and cache.read_bytes() == b"timing:old"
    with pytest.raises(trt_build.EngineMismatchError, match="expected H×W"):
        trt_build.build_engine(model_dir / "model.onnx", tmp_path / "f.engine", "fp16", expected_hw=(96, 320),
                               log=lambda m: None)
    assert not (tmp_path / "f.engine").exists()


def test_int8_is_explicit_from_qdq_and_calibrated_from_float(calls, model_dir, tmp_path, shared_data):
    trt_build.build_engine(model_dir / "model.int8.onnx", tmp_path / "q.engine", "int8", log=lambda m: None)
    assert calls["flags"] == ["FP16", "INT8"] and calls["calibrator"] is None
    with pytest.raises(ValueError, match="needs calibration images"):
        trt_build.build_engine(model_dir / "model.onnx", tmp_path / "c.engine", "int8", log=lambda m: None)
    batcher = trt_build.CalibrationBatcher(folder_images(shared_data / KITTI_FRAMES, 2), HEIGHT, WIDTH)
    made = trt_build.make_entropy_calibrator(trt_build.import_tensorrt(), batcher, tmp_path / "c.calib_cache")
    trt_build.build_engine(model_dir / "model.onnx", tmp_path / "c.engine", "int8", calibrator=made, log=lambda m: None)
    calibrator = calls["calibrator"]
    assert calibrator is made and calls["flags"] == ["FP16", "INT8"]
    assert calibrator.get_batch_size() == 1 and calibrator.read_calibration_cache() is None
    calibrator.write_calibration_cache(b"scales")
    assert calibrator.read_calibration_cache() == b"scales"


def test_build_engine_command_names_reuses_and_prunes_engines(calls, model_dir, capsys):
    args = ["build-engine", str(model_dir), "--precision", "fp16", "--gpu-name", "NVIDIA GeForce RTX 4090"]
    assert main(args) == 0
    (engine,) = model_dir.glob("*.engine")
    key = trt_build.EngineKey.parse(engine)
    contract = json.loads((model_dir / "model.json").read_text())
    assert key.onnx_sha == contract["onnx"]["sha256"][:16]
    assert (key.trt_version, key.gpu, key.precision) == ("10.3.0", "NVIDIA-GeForce-RTX-4090", "fp16")
    assert (model_dir / "trt10.3.0_NVIDIA-GeForce-RTX-4090.timing_cache").is_file()
    capsys.readouterr()
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["build-engine", str(model_dir), "--precision", "int8", "--gpu-name", "Orin"]) == 0
    int8_engine = model_dir / trt_build.EngineKey.for_onnx(model_dir / "model.int8.onnx", "10.3.0", "Orin", "int8").filename
    assert int8_engine.is_file() and json.loads(int8_engine.read_bytes())["flags"] == ["FP16", "INT8"]
    assert f"{engine.name} is for another" in capsys.readouterr().out
    assert main(["build-engine", str(model_dir), "--precision", "int8", "--gpu-name", "Orin", "--prune"]) == 0
    assert sorted(model_dir.glob("*.engine")) == [int8_engine]


def test_a_refused_timing_cache_is_left_out_and_the_engine_still_builds(calls, model_dir, tmp_path, monkeypatch):
    import tensorrt

    def refuse(self, data):
        raise RuntimeError("timing cache from another TensorRT")

    config_type = type(tensorrt.Builder(None).create_builder_config())
    monkeypatch.setattr(config_type, "create_timing_cache", refuse)
    messages = []
    engine = trt_build.build_engine(model_dir / "model.onnx", tmp_path / "e.engine", "fp32",
                                    timing_cache=tmp_path / "t.timing_cache", log=messages.append)
    assert json.loads(engine.read_bytes()) == {"flags": []}
    assert not (tmp_path / "t.timing_cache").exists() and any("not used" in m for m in messages)


def test_the_node_and_build_engine_share_one_builder_and_one_naming():
    from mcdepth_ros import contract, engine_build
    from mcdepth_ros.backends import tensorrt_backend

    assert trt_build.build_engine is engine_build.build_engine is tensorrt_backend.engine_build.build_engine
    assert trt_build.EngineKey is contract.EngineKey and tensorrt_backend.EngineKey is contract.EngineKey
    assert trt_build.import_tensorrt is engine_build.import_tensorrt


def test_the_node_backend_builds_a_missing_engine_with_the_shared_builder(calls, model_dir, tmp_path, monkeypatch):
    """Our side of the node's build: the contract's engine name, a 2048 MiB workspace, the timing cache."""
    import tensorrt

    from mcdepth_ros.backends import BackendUnavailable, tensorrt_backend
    from mcdepth_ros.contract import load_contract

    class GpuName:  # stands in for the CUDA buffers; building needs only the GPU's name
        def gpu_name(self):
            return "NVIDIA GeForce RTX 4090"

    class Runtime:  # refuses the (recorded) engine: the backend stops right after building it
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            calls["deserialized"] = bytes(data)

    monkeypatch.setattr(tensorrt_backend, "cuda_memory", GpuName)
    monkeypatch.setattr(tensorrt, "Runtime", Runtime, raising=False)
    with pytest.raises(BackendUnavailable, match="cannot deserialize"):
        tensorrt_backend.TensorRTBackend(load_contract(model_dir), precision="fp16", engine_dir=tmp_path)
    key = trt_build.EngineKey.for_onnx(model_dir / "model.onnx", "10.3.0", "NVIDIA GeForce RTX 4090", "fp16")
    engine = tmp_path / key.filename
    assert json.loads(engine.read_bytes()) == {"flags": ["FP16"]} and calls["deserialized"] == engine.read_bytes()
    assert calls["pool"] == ("WORKSPACE", 2048 << 20) and calls["parsed"] == str(model_dir / "model.onnx")
    assert (tmp_path / "trt10.3.0_NVIDIA-GeForce-RTX-4090.timing_cache").read_bytes() == b"timing:"
