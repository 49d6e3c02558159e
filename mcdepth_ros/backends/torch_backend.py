"""PyTorch backend: rebuilds the depth net from a trainer checkpoint (the node's only tie to mcdepth_train)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contract import ModelContract
from .base import Backend, BackendUnavailable


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, contract: ModelContract, checkpoint: str | Path = "", device: str = "auto"):
        """Args: checkpoint: a ``.pt`` from the trainer ("" = ``source.checkpoint`` in model.json,
        relative to the model folder); device: "auto", "cpu", "cuda", ..."""
        super().__init__(contract)
        try:
            import torch

            from mcdepth_train.engine.checkpoint import build_depth_net, load_checkpoint
            from mcdepth_train.networks.depth import DepthInference
        except ImportError as exc:
            raise BackendUnavailable(f"torch backend needs torch and mcdepth_train ({exc})") from exc
        path = Path(checkpoint or (contract.raw.get("source") or {}).get("checkpoint") or "")
        if not str(path) or str(path) == ".":
            raise BackendUnavailable("torch backend: no checkpoint given and model.json names none (source.checkpoint)")
        if not path.is_absolute() and not path.is_file():
            path = contract.model_dir / path
        if not path.is_file():
            raise BackendUnavailable(f"torch backend: checkpoint not found: {path}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch = torch
        self.device = torch.device(device)
        net, _ = build_depth_net(load_checkpoint(path, map_location="cpu"))
        self.model = DepthInference(net).to(self.device).eval()
        self.checkpoint = path

    def infer(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(self.check_input(x)).to(self.device))
        depth = out.float().cpu().numpy()
        # DepthInference outputs depth; honour a contract that promises inverse depth.
        return 1.0 / depth if self.contract.output_kind == "inv_depth" else depth

    def describe(self) -> str:
        return f"torch ({self.device}, {self.checkpoint.name})"
