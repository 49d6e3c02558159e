"""The one small interface every inference backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..contract import ModelContract


class BackendUnavailable(RuntimeError):
    """The backend's library, hardware or files are not there; the message says which."""


class ModelLoadError(BackendUnavailable):
    """The backend's library is there but the model file fails to load (truncated, corrupt, wrong graph).

    ``create_backend("auto")`` skips a backend whose library is missing, never one whose model is
    broken: falling back would silently run a different model (e.g. torch on ``model.pt2`` when ``model.onnx`` is broken).
    A subclass of BackendUnavailable so callers that stop on that also stop on this.
    """


class Backend(ABC):
    """Runs the exported depth graph: [1,3,H,W] float32 in, [1,1,H,W] float32 out (model units).

    Subclasses import their library inside ``__init__`` (never at module level) and raise
    :class:`BackendUnavailable` when it is missing.
    """

    name: str = "base"

    def __init__(self, contract: ModelContract):
        self.contract = contract

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """x: [1,3,H,W] float32 as prepared by ``preprocess.prepare_input``. Returns [1,1,H,W] float32."""

    def describe(self) -> str:
        """One line for logs and diagnostics: what runs where."""
        return self.name

    def close(self) -> None:
        """Free the session/engine and device buffers."""

    def check_input(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.contract.input_shape or x.dtype != np.float32:
            raise ValueError(f"x: expected float32 {list(self.contract.input_shape)}, got {x.dtype} {list(x.shape)}")
        return np.ascontiguousarray(x)
