"""What ``launch/depth.launch.py`` hands the node, as plain Python (no ``launch`` import; tested without ROS launch).

The rule: the params file gives the node's parameters; a launch argument overrides one only when the
user set it on the command line (every overriding argument defaults to '' = "not set"). A relative
``model_dir`` (from the command line or from the params file) is resolved against the folder of the
params file, never against the shell's working directory.
"""
from __future__ import annotations

from pathlib import Path

import yaml

# Launch arguments that override the node parameter of the same name when set, with its type.
OVERRIDE_ARGUMENTS: dict[str, type] = {
    "model_dir": str, "backend": str, "device": str, "precision": str, "image_transport": str,
    "scale_mode": str, "camera_height": float, "publish_colored": bool, "publish_points": bool,
}
NOT_SET = ""


def parse_value(name: str, text: str):
    """A launch argument's text as the node parameter's type. Raises ValueError naming the argument."""
    kind = OVERRIDE_ARGUMENTS[name]
    if kind is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")
        return lowered == "true"
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"launch argument {name}: expected a number, got {text!r}") from None
    return text


def model_dir_in_params_file(params_file: str | Path) -> str:
    """The ``model_dir`` a ROS 2 params file sets (first node entry that has one), or ''."""
    data = yaml.safe_load(Path(params_file).read_text(encoding="utf-8")) or {}
    for entry in data.values() if isinstance(data, dict) else ():
        params = (entry or {}).get("ros__parameters") if isinstance(entry, dict) else None
        if isinstance(params, dict) and params.get("model_dir"):
            return str(params["model_dir"])
    return ""


def resolve_model_dir(model_dir: str, params_file: str | Path) -> str:
    """An absolute ``model_dir``: a relative one is taken from the params file's folder."""
    path = Path(model_dir).expanduser()
    if path.is_absolute():
        return str(path)
    return str((Path(params_file).expanduser().resolve().parent / path).resolve())


def node_overrides(arguments: dict[str, str], params_file: str | Path) -> dict:
    """Typed parameter overrides from the launch arguments the user set ('' = not set).

    ``model_dir`` is made absolute (against the params file's folder) whether it comes from the
    arguments or from the params file itself.
    """
    overrides = {name: parse_value(name, text) for name, text in arguments.items()
                 if name in OVERRIDE_ARGUMENTS and text != NOT_SET}
    model_dir = overrides.get("model_dir") or model_dir_in_params_file(params_file)
    if model_dir:
        overrides["model_dir"] = resolve_model_dir(model_dir, params_file)
    return overrides
