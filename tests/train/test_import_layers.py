"""The import graph has layers (docs/architecture.md): every mcdepth_train import goes downwards.

Function-level imports count too (they are how a circle hides). A new edge upwards, or a module
that is in no layer, fails here: put the code where its layer allows, or change the rule in
docs/architecture.md and here together.
"""
from __future__ import annotations

import ast

from conftest import REPO

# Lowest first. Entries of one layer do not import each other.
LAYERS = [
    # the vehicle side the trainer may use: the model contract and atomic writes (stdlib only), the engine builder
    ("mcdepth_ros.contract", "mcdepth_ros.files", "mcdepth_ros.engine_build"),
    ("mcdepth_train.config", "mcdepth_train.checks", "mcdepth_train.io"),
    ("mcdepth_train.geometry",),
    ("mcdepth_train.losses", "mcdepth_train.networks", "mcdepth_train.data"),
    ("mcdepth_train.engine",),
    ("mcdepth_train.eval",),
    ("mcdepth_train.export",),
    ("mcdepth_train.stages",),
    ("mcdepth_train.commands",),
    ("mcdepth_train.cli",),
]


def _unit(module: str) -> str:
    """The layer entry a module belongs to: its first two dotted parts (mcdepth_train.data.kitti -> mcdepth_train.data)."""
    return ".".join(module.split(".")[:2])


def _imports(path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names] if target == "mcdepth_train" else [target]
            else:
                names = [node.module or ""]
            found |= {n for n in names if n.startswith("mcdepth")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mcdepth")}
    return found


def test_every_mcdepth_train_import_goes_to_a_lower_layer():
    rank = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    upward, unplaced = [], set()
    for path in sorted((REPO / "mcdepth_train").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        src = _unit(module)
        if module == "mcdepth_train":
            continue
        if src not in rank:
            unplaced.add(src)
            continue
        for target in _imports(path, module):
            dst = _unit(target)
            if dst == src or target == "mcdepth_train":
                continue
            if dst not in rank:
                unplaced.add(dst)
            elif rank[dst] >= rank[src]:
                upward.append(f"{module} imports {target}")
    assert not unplaced, f"modules in no layer of docs/architecture.md: {sorted(unplaced)}"
    assert not upward, "imports against the layers:\n  " + "\n  ".join(upward)


def test_the_vehicle_side_imports_no_trainer_code():
    """mcdepth_ros never imports mcdepth_train (the torch backend runs the exported model.pt2)."""
    offenders = [f"{path.relative_to(REPO)} imports {target}"
                 for path in sorted((REPO / "mcdepth_ros").rglob("*.py"))
                 for target in _imports(path, ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"))
                 if target.startswith("mcdepth_train")]
    assert offenders == []
