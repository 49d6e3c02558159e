"""Read and validate the export contract (``model.onnx`` + ``model.json``, docs/contract.md).

The node and ``mcdepth-bag-depth`` read only these files. Every problem is a :class:`ContractError`
that names the file and the field, so a vehicle operator can fix the model folder without reading code.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "mcdepth-model-v1"
OUTPUT_KINDS = ("depth", "inv_depth")
SCALE_POLICIES = ("relative", "fixed", "camera_height")
COLOR_ORDERS = ("rgb", "bgr")
PRECISIONS = ("fp32", "fp16", "int8")


class ContractError(ValueError):
    """A model folder whose files are missing or whose model.json breaks the contract."""


@dataclass(frozen=True)
class ModelContract:
    """The parsed ``model.json`` of one model folder.

    Attributes:
        model_dir: the folder holding the files.
        input_name / output_name: graph tensor names.
        height / width: the static network input size in pixels.
        color_order: channel order the graph expects ("rgb" or "bgr").
        input_range: (lo, hi) the 0..1-normalised image is mapped to.
        mean / std: per-channel normalisation, applied by the node unless ``normalization_in_graph``.
        output_kind: "depth" or "inv_depth".
        units: "relative" or "metres".
        depth_range: (min, max) depth the model can output, in model units.
        scale_policy / scale_factor: the default scale policy and its factor.
        onnx_sha256: hash of model.onnx as recorded at export ("" when not recorded).
        precision: the TensorRT precision the exporter was asked for (default fp16).
        raw: the whole JSON, for fields the node does not interpret.
    """

    model_dir: Path
    input_name: str
    output_name: str
    height: int
    width: int
    color_order: str = "rgb"
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    normalization_in_graph: bool = True
    output_kind: str = "depth"
    units: str = "relative"
    depth_range: tuple[float, float] = (0.1, 100.0)
    scale_policy: str = "relative"
    scale_factor: float = 1.0
    onnx_sha256: str = ""
    precision: str = "fp16"
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def onnx_path(self) -> Path:
        return self.model_dir / "model.onnx"

    @property
    def json_path(self) -> Path:
        return self.model_dir / "model.json"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.height, self.width)


def _get(obj: dict, key: str, where: str, path: Path, kind=None):
    if not isinstance(obj, dict) or key not in obj:
        raise ContractError(f"{path}: missing field '{where}{key}'")
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        raise ContractError(f"{path}: field '{where}{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _floats(value, n: int, name: str, path: Path) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n or not all(isinstance(v, (int, float)) for v in value):
        raise ContractError(f"{path}: field '{name}' must be a list of {n} numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _shape(value, channels: int, name: str, path: Path) -> tuple[int, int]:
    ok = isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) and v > 0 for v in value)
    if not ok or value[0] != 1 or value[1] != channels:
        raise ContractError(f"{path}: field '{name}' must be [1, {channels}, H, W] with H, W > 0, got {value!r}")
    return value[2], value[3]


def parse_contract(data: dict, model_dir: Path, json_path: Path | None = None) -> ModelContract:
    """Validate a decoded ``model.json``. Raises ContractError naming the field that is wrong."""
    path = json_path or model_dir / "model.json"
    if not isinstance(data, dict):
        raise ContractError(f"{path}: expected a JSON object, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise ContractError(f"{path}: field 'format' must be '{FORMAT}', got {fmt!r}")
    inp = _get(data, "input", "", path, dict)
    out = _get(data, "output", "", path, dict)
    height, width = _shape(_get(inp, "shape", "input.", path), 3, "input.shape", path)
    out_h, out_w = _shape(_get(out, "shape", "output.", path), 1, "output.shape", path)
    if (out_h, out_w) != (height, width):
        raise ContractError(f"{path}: output.shape {out_h}x{out_w} differs from input.shape {height}x{width}")
    if inp.get("dtype", "float32") != "float32":
        raise ContractError(f"{path}: field 'input.dtype' must be 'float32', got {inp.get('dtype')!r}")
    color_order = inp.get("color_order", "rgb")
    if color_order not in COLOR_ORDERS:
        raise ContractError(f"{path}: field 'input.color_order' must be one of {COLOR_ORDERS}, got {color_order!r}")
    kind = out.get("kind", "depth")
    if kind not in OUTPUT_KINDS:
        raise ContractError(f"{path}: field 'output.kind' must be one of {OUTPUT_KINDS}, got {kind!r}")
    std = _floats(inp.get("std", [1.0, 1.0, 1.0]), 3, "input.std", path)
    if any(s == 0 for s in std):
        raise ContractError(f"{path}: field 'input.std' must not contain 0, got {list(std)}")
    depth_range = _floats(data.get("depth_range", [0.1, 100.0]), 2, "depth_range", path)
    if not 0 < depth_range[0] < depth_range[1]:
        raise ContractError(f"{path}: field 'depth_range' needs 0 < min < max, got {list(depth_range)}")
    scale = data.get("scale") or {}
    policy = scale.get("policy", "relative")
    if policy not in SCALE_POLICIES:
        raise ContractError(f"{path}: field 'scale.policy' must be one of {SCALE_POLICIES}, got {policy!r}")
    factor = scale.get("factor", 1.0)
    if not isinstance(factor, (int, float)) or not factor > 0:
        raise ContractError(f"{path}: field 'scale.factor' must be a positive number, got {factor!r}")
    precision = data.get("precision") or "fp16"
    if precision not in PRECISIONS:
        raise ContractError(f"{path}: field 'precision' must be one of {PRECISIONS}, got {precision!r}")
    return ModelContract(
        model_dir=model_dir,
        input_name=_get(inp, "name", "input.", path, str),
        output_name=_get(out, "name", "output.", path, str),
        height=height,
        width=width,
        color_order=color_order,
        input_range=_floats(inp.get("range", [0.0, 1.0]), 2, "input.range", path),
        mean=_floats(inp.get("mean", [0.0, 0.0, 0.0]), 3, "input.mean", path),
        std=std,
        normalization_in_graph=bool(inp.get("normalization_in_graph", True)),
        output_kind=kind,
        units=str(out.get("units", "relative")),
        depth_range=depth_range,
        scale_policy=policy,
        scale_factor=float(factor),
        onnx_sha256=str((data.get("onnx") or {}).get("sha256", "") or ""),
        precision=precision,
        raw=data,
    )


def load_contract(model_dir: str | Path, require_onnx: bool = True, verify_hash: bool = True) -> ModelContract:
    """Read ``model_dir/model.json`` (and check ``model.onnx`` exists when ``require_onnx``).

    With ``verify_hash``, a ``model.onnx`` whose SHA-256 differs from ``onnx.sha256`` is refused:
    it is not the model the JSON describes (a half-copied folder, or files from two exports).

    Raises:
        ContractError: the folder or a file is missing (all missing files are named at once), the
            JSON does not parse, a field breaks docs/contract.md, or the hash differs.
    """
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ContractError(f"model_dir: no such folder: {model_dir}")
    wanted = ["model.json"] + (["model.onnx"] if require_onnx else [])
    missing = [name for name in wanted if not (model_dir / name).is_file()]
    if missing:
        raise ContractError(
            f"model_dir {model_dir} lacks {', '.join(missing)} (export one with `mcdepth-train export CKPT --out DIR`)"
        )
    json_path = model_dir / "model.json"
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{json_path}: cannot be read as JSON ({exc})") from exc
    contract = parse_contract(data, model_dir, json_path)
    if verify_hash and contract.onnx_sha256 and contract.onnx_path.is_file():
        actual = file_sha256(contract.onnx_path)
        if actual.lower() != contract.onnx_sha256.lower():
            size = contract.onnx_path.stat().st_size
            why = f"it ({size} bytes) was truncated or modified after export, or the files come from different exports"
            raise ContractError(
                f"{contract.onnx_path}: SHA-256 {actual[:16]}... differs from onnx.sha256 {contract.onnx_sha256[:16]}... "
                f"in {json_path}: {why}"
            )
    return contract


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- engine names
HASH_CHARS = 16  # hex digits of the ONNX file's SHA-256 in an engine's file name
_ENGINE_RE = re.compile(
    r"^(?P<onnx_sha>[0-9a-f]{%d})_trt(?P<trt_version>[0-9A-Za-z.-]+)_(?P<gpu>[A-Za-z0-9.-]+)_(?P<precision>%s)\.engine$"
    % (HASH_CHARS, "|".join(PRECISIONS)))


class EngineMismatchError(ContractError):
    """An engine file built for another ONNX, TensorRT version, GPU or precision (or not an engine name)."""


def sanitize_gpu_name(name: str) -> str:
    """A GPU name as engine file names hold it: 'NVIDIA GeForce RTX 4090' -> 'NVIDIA-GeForce-RTX-4090'.

    Runs of characters other than ``A-Za-z0-9.`` become '-'. A name with nothing usable left is a
    ValueError rather than a placeholder: an engine named for "no GPU" could be loaded on another.
    """
    clean = re.sub(r"[^A-Za-z0-9.]+", "-", str(name).strip()).strip("-")
    if not clean:
        raise ValueError(f"gpu name: nothing usable in {name!r}")
    return clean


def _sanitize_version(trt_version: str) -> str:
    return re.sub(r"[^0-9A-Za-z.]+", "-", str(trt_version)).strip("-")


@dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT engine depends on; its file name is made from these and parsed back.

    ``<onnx_sha>_trt<trt_version>_<gpu>_<precision>.engine`` (docs/contract.md, "Engine file names").
    """

    onnx_sha: str  # first HASH_CHARS lowercase hex digits of the SHA-256 of the ONNX file it is built from
    trt_version: str  # tensorrt.__version__
    gpu: str  # sanitised GPU name
    precision: str

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not re.fullmatch(r"[0-9a-f]{%d}" % HASH_CHARS, self.onnx_sha):
            raise ValueError(f"onnx_sha: expected {HASH_CHARS} lowercase hex digits, got {self.onnx_sha!r}")

    @classmethod
    def create(cls, onnx_sha256: str, trt_version: str, gpu_name: str, precision: str) -> "EngineKey":
        """The key from a full (or >= HASH_CHARS digit) hex digest and the raw version and GPU name."""
        if not re.fullmatch(r"[0-9a-fA-F]{%d,}" % HASH_CHARS, onnx_sha256 or ""):
            raise ValueError(f"onnx_sha256: expected a hex digest, got {onnx_sha256!r}")
        return cls(onnx_sha256[:HASH_CHARS].lower(), _sanitize_version(trt_version), sanitize_gpu_name(gpu_name), precision)

    @classmethod
    def for_onnx(cls, onnx_path: str | Path, trt_version: str, gpu_name: str, precision: str) -> "EngineKey":
        return cls.create(file_sha256(onnx_path), trt_version, gpu_name, precision)

    @property
    def filename(self) -> str:
        return f"{self.onnx_sha}_trt{self.trt_version}_{self.gpu}_{self.precision}.engine"

    @classmethod
    def parse(cls, filename: str | Path) -> "EngineKey":
        match = _ENGINE_RE.match(Path(filename).name)
        if not match:
            raise EngineMismatchError(
                f"{Path(filename).name}: not an mcdepth engine name (<onnx sha256[:{HASH_CHARS}]>_trt<version>_<gpu>_<precision>.engine)")
        return cls(**match.groupdict())


def engine_file_name(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str) -> str:
    """``<onnxhash>_trt<ver>_<gpu>_<precision>.engine`` (docs/contract.md, "Engine file names").

    ``onnxhash`` is the first 16 hex digits of the SHA-256 of the ONNX file the engine is built
    from, ``ver`` is ``tensorrt.__version__``, ``gpu`` the sanitised device name
    ("NVIDIA GeForce RTX 4090" -> "NVIDIA-GeForce-RTX-4090").
    """
    return EngineKey.create(onnx_sha256, trt_version, gpu_name, precision).filename


def timing_cache_file_name(trt_version: str, gpu_name: str) -> str:
    """``trt<ver>_<gpu>.timing_cache``: tactic timings are per GPU and TensorRT version, not per model."""
    return f"trt{_sanitize_version(trt_version)}_{sanitize_gpu_name(gpu_name)}.timing_cache"
