"""Checkpoints: one file holds everything needed to resume a stage or rebuild its networks.

Layout (a dict saved with ``torch.save``):
    format: "mcdepth-checkpoint-v1"
    stage: "stage1" | "objects" | "dsa" | "stage3" | ...
    step, epoch: progress counters (step = optimiser steps done)
    config: the resolved run config as a plain dict (``config_to_dict``)
    models: {name: state_dict}   e.g. "depth", "pose", "motion"
    optimizers, schedulers: {name: state_dict}
    rng: {"python", "numpy", "torch", "cuda"}: generator states at save time
    extra: anything a stage adds (best validation loss, ...)

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed
over the old one, so a crash mid-write never replaces a good checkpoint with a broken one.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import CheckpointError, atomic_write  # noqa: F401 - CheckpointError re-exported

FORMAT = "mcdepth-checkpoint-v1"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, stage: str, step: int, epoch: int, config: dict, models: dict,
                    optimizers: dict | None = None, schedulers: dict | None = None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically. ``models`` etc. map names to modules/optimisers or state dicts."""

    def states(objs: dict | None) -> dict:
        return {k: (v.state_dict() if hasattr(v, "state_dict") else v) for k, v in (objs or {}).items()}

    payload = {
        "format": FORMAT, "stage": stage, "step": int(step), "epoch": int(epoch), "config": config,
        "models": {k: unwrap(v).state_dict() if hasattr(v, "state_dict") else v for k, v in models.items()},
        "optimizers": states(optimizers), "schedulers": states(schedulers),
        "rng": capture_rng(), "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


def unwrap(module):
    """The module inside DistributedDataParallel / torch.compile wrappers (what a checkpoint stores)."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or getattr(module, "_orig_mod")
    return module


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint; a clear CheckpointError for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, pickle garbage, ...
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mcdepth checkpoint (expected format '{FORMAT}')")
    return payload
