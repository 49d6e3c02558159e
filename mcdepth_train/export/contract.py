"""``model.json``: the contract between the exporter and the ROS node (format in docs/contract.md).

The node reads only ``model.onnx`` (or an engine built from it) and this file, so every fact it
needs to preprocess an image and interpret the output is written here. Field names follow
docs/contract.md exactly; the format name, the choices and the error class are imported from
``mcdepth_ros.contract``, which reads what this writes.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# The contract's constants and its error have one home, on the vehicle side (stdlib only).
from mcdepth_ros.contract import FORMAT, OUTPUT_KINDS, SCALE_POLICIES, ContractError  # noqa: F401 - re-exported
from mcdepth_ros.files import write_bytes_atomic

REQUIRED_KEYS = ("format", "input", "output", "depth_range", "scale", "source", "onnx", "int8")


def git_commit(repo_dir: str | Path | None = None) -> str:
    """The commit of the code doing the export, '+dirty' when it has uncommitted changes; 'unknown' outside git."""
    repo_dir = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def build_contract(
    *,
    height: int,
    width: int,
    min_depth: float,
    max_depth: float,
    checkpoint: str,
    checkpoint_sha256: str,
    stage: str,
    opset: int,
    onnx_sha256: str,
    git_commit: str = "unknown",
    input_name: str = "image",
    output_name: str = "depth",
    output_kind: str = "depth",
    scale_policy: str = "relative",
    scale_factor: float = 1.0,
    precision: str = "fp32",
    parity: dict | None = None,
    int8: dict | None = None,
    torch_program: dict | None = None,
) -> dict[str, Any]:
    """The model.json dict for a depth graph taking RGB [0,1] with ImageNet normalisation inside.

    Args:
        height, width: the static input size (pixels).
        min_depth, max_depth: the range the depth head can output (model units).
        scale_policy: 'relative' (model units), 'fixed' (multiply by ``scale_factor``) or
            'camera_height' (the node fits the ground plane; ``scale_factor`` is its starting value).
        precision: the precision the engine should be built in ('fp32', 'fp16' or 'int8').
        parity: ONNX Runtime vs PyTorch check (``max_rel_diff``, ``images``), kept under ``onnx``.
        int8: the INT8 QDQ model's description and measured accuracy cost, or None.
        torch_program: the ``torch.export`` file for the torch backend (``file``, ``sha256``, ...), or None.
    """
    if scale_policy not in SCALE_POLICIES:
        raise ContractError(f"scale_policy: expected one of {SCALE_POLICIES}, got {scale_policy!r}")
    if not scale_factor > 0:
        raise ContractError(f"scale_factor: must be > 0, got {scale_factor}")
    if output_kind not in OUTPUT_KINDS:
        raise ContractError(f"output_kind: expected one of {OUTPUT_KINDS}, got {output_kind!r}")
    onnx_info: dict[str, Any] = {"opset": int(opset), "sha256": onnx_sha256}
    if parity is not None:
        onnx_info["parity"] = parity
    return {
        "format": FORMAT,
        "input": {"name": input_name, "shape": [1, 3, int(height), int(width)], "dtype": "float32",
                  "color_order": "rgb", "range": [0.0, 1.0],
                  "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                  "normalization_in_graph": True},
        "output": {"name": output_name, "shape": [1, 1, int(height), int(width)], "kind": output_kind,
                   # The graph's own output is always in model units; the node applies ``scale``.
                   "units": "relative"},
        "depth_range": [float(min_depth), float(max_depth)],
        "scale": {"policy": scale_policy, "factor": float(scale_factor)},
        "source": {"checkpoint": str(checkpoint), "checkpoint_sha256": checkpoint_sha256,
                   "git_commit": git_commit, "stage": stage},
        "onnx": onnx_info,
        "precision": precision,
        "int8": int8,
        "torch_program": torch_program,
    }


def write_json_atomic(path: str | Path, data: dict) -> Path:
    return write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def read_contract(model_dir_or_json: str | Path) -> dict[str, Any]:
    """Read and check a model.json (or the one inside a model folder)."""
    path = Path(model_dir_or_json)
    if path.is_dir():
        path = path / "model.json"
    if not path.is_file():
        raise ContractError(f"model.json not found: {path} (export the model first: mcdepth-train export CKPT --out DIR)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ContractError(f"{path}: not an mcdepth model contract (expected format '{FORMAT}')")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ContractError(f"{path}: missing keys {missing}")
    shape = data["input"].get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and shape[:2] == [1, 3]):
        raise ContractError(f"{path}: input.shape must be [1, 3, H, W], got {shape}")
    return data
