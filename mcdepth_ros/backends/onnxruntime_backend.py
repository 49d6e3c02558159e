"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers."""
from __future__ import annotations

import numpy as np

from ..contract import ModelContract
from .base import Backend, BackendUnavailable, ModelLoadError

# Best first; "auto" keeps those this onnxruntime build has.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``device`` ("auto", "cpu", "cuda", "tensorrt") among ``available``."""
    if device == "auto":
        wanted = PROVIDER_PREFERENCE
    elif device in DEVICE_PROVIDERS:
        wanted = DEVICE_PROVIDERS[device]
        if wanted[0] not in available:
            raise BackendUnavailable(
                f"onnxruntime: device '{device}' needs {wanted[0]}, this build has {', '.join(available)}"
            )
    else:
        raise ValueError(f"device: expected auto, cpu, cuda or tensorrt, got {device!r}")
    return [p for p in wanted if p in available]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, contract: ModelContract, device: str = "auto", threads: int = 0):
        """Args: device: "auto", "cpu", "cuda" or "tensorrt" (execution provider); threads: intra-op threads (0 = ORT default)."""
        super().__init__(contract)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from exc
        self.providers = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(contract.onnx_path), sess_options=options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise ModelLoadError(f"onnxruntime cannot load {contract.onnx_path}: {exc}") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if contract.input_name not in inputs or contract.output_name not in outputs:
            raise ModelLoadError(
                f"{contract.onnx_path}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
                f"model.json names input '{contract.input_name}' and output '{contract.output_name}'"
            )
        self.active_providers = self.session.get_providers()

    def infer(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.contract.output_name], {self.contract.input_name: self.check_input(x)})
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.active_providers)})"
