"""Reading network weights from local files (nothing is ever downloaded)."""
from __future__ import annotations

from pathlib import Path

import torch


def read_state_dict(path: str | Path, option: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file, bare or wrapped under "model" / "state_dict".

    Args:
        path: the file. option: the config key that named it, so errors say what to fix.
    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or no dict of tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{option}: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, pickle garbage, ...
        raise ValueError(f"{option}: {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{option}: {path} holds no state dict")
    return state
