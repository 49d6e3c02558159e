"""PyTorch backend: runs the ``model.pt2`` that ``mcdepth-train export`` writes with ``torch.export``.

The file is the exported ``DepthInference`` (RGB [1,3,H,W] in [0,1] -> depth), loaded with
``torch.export.load`` alone: no trainer code, config or checkpoint format is needed on the
vehicle, only torch. model.json names it under ``torch_program`` (with its SHA-256); an export
from before that field, or a trainer checkpoint given instead, is a BackendUnavailable that says
what to do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contract import ModelContract, file_sha256
from .base import Backend, BackendUnavailable, ModelLoadError

REEXPORT = "re-export the model (`mcdepth-train export CKPT --out DIR` writes model.pt2), or use backend:=onnxruntime"


def program_path(contract: ModelContract, checkpoint: str | Path = "") -> Path:
    """The exported program to run: ``checkpoint`` when given, else model.json's ``torch_program.file``."""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        return path if path.is_absolute() or path.is_file() else contract.model_dir / path
    entry = contract.raw.get("torch_program") or {}
    if not entry.get("file"):
        raise BackendUnavailable(f"torch backend: {contract.json_path} names no exported program (torch_program.file); {REEXPORT}")
    return contract.model_dir / entry["file"]


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, contract: ModelContract, checkpoint: str | Path = "", device: str = "auto"):
        """Args: checkpoint: a ``torch.export`` .pt2 file ("" = ``torch_program.file`` in model.json,
        checked against its ``sha256``); device: "auto", "cpu", "cuda", ..."""
        super().__init__(contract)
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"torch backend needs torch ({exc})") from exc
        path = program_path(contract, checkpoint)
        if not path.is_file():
            raise BackendUnavailable(f"torch backend: exported program not found: {path}; {REEXPORT}")
        expected = (contract.raw.get("torch_program") or {}).get("sha256", "")
        if not checkpoint and expected and file_sha256(path) != expected:
            raise ModelLoadError(f"torch backend: {path} does not match torch_program.sha256 in {contract.json_path} "
                                 f"(truncated, modified, or from a different export); {REEXPORT}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch = torch
        self.device = torch.device(device)
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # a trainer checkpoint (a pickled dict) or a truncated file
            raise ModelLoadError(f"torch backend: {path} is not a torch.export program ({type(exc).__name__}); "
                                 f"a trainer checkpoint cannot be run here: {REEXPORT}") from exc
        if self.device.type != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, self.device)
        # Exported in eval mode (batch-norm statistics fixed); an exported module has no .eval().
        self.model = program.module()
        self.checkpoint = path

    def infer(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(self.check_input(x)).to(self.device))
        depth = out.float().cpu().numpy()
        # DepthInference outputs depth; honour a contract that promises inverse depth.
        return 1.0 / depth if self.contract.output_kind == "inv_depth" else depth

    def describe(self) -> str:
        return f"torch ({self.device}, {self.checkpoint.name})"
