"""The method as one resumable pipeline: which stages, in which order, reading which config sections.

    stage1 -> masks -> objects -> dsa -> pseudo -> stage3 (+ self-training rounds) -> eval -> export

``mcdepth-train run`` executes :func:`method_pipeline` with :class:`~mcdepth_train.pipeline.Pipeline`;
the single-stage commands (``mcdepth-train masks --run RUN`` ...) call the same functions.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import Config
from ..pipeline import Pipeline, Stage
from . import stage2
from .frames import frames_dataset, load_stage1_model, stage_checkpoint

TRAIN_SECTIONS = ("data", "model", "loss", "run.seed", "run.deterministic")


def _stage1(cfg: Config, run_dir: Path) -> dict:
    from .stage1 import train_stage1

    return train_stage1(cfg)


def self_training_labels(cfg: Config, run_dir: Path, k: int, previous_checkpoint: Path):
    """Round k's labels: round k-1's depth on every training frame, with stage 2's moving-object masks."""
    from .pseudo import PseudoLabelStore

    first = PseudoLabelStore.open(Path(run_dir) / stage2.PSEUDO_DIR)
    store = PseudoLabelStore(Path(run_dir) / f"{stage2.PSEUDO_DIR}_round{k}", cfg.pseudo.storage,
                             expected=list(first.expected), source={"depth": str(previous_checkpoint)})
    todo = set(store.missing(verify=False))
    if todo:
        model, _ = load_stage1_model(previous_checkpoint, cfg.run.device)
        frames = frames_dataset(cfg)
        from ..data import keys
        from .pseudo import frame_key

        for index in tqdm(range(len(frames)), desc=f"round {k} labels", disable=not cfg.run.progress):
            sample = frames[index]
            key = frame_key(sample[keys.SEQUENCE], int(sample[keys.FRAME]))
            if key not in todo:
                continue
            with torch.no_grad():
                depth = model.depth.depth(sample[keys.color(0, 0)][None].to(cfg.run.device))[0, 0].cpu().numpy()
            store.write(key, depth.astype(np.float32), first.read(key)[1])
        store.save_manifest()
    return store


def run_stage3(cfg: Config, run_dir: Path) -> dict:
    """Stage 3 (round 0) and ``stage3.self_training_rounds`` more rounds, each from the last."""
    from .pseudo import PseudoLabelStore
    from .stage3 import round_stage, train_stage3_round

    run_dir = Path(run_dir)
    labels = PseudoLabelStore.open(run_dir / stage2.PSEUDO_DIR)
    init = stage_checkpoint(run_dir, "stage1")
    rounds = []
    for k in range(1 + cfg.stage3.self_training_rounds):
        if k > 0:
            labels = self_training_labels(cfg, run_dir, k, init)
        summary = train_stage3_round(cfg, run_dir, k, labels, init)
        rounds.append({"round": k, "init": str(init), **{key: summary.get(key) for key in ("steps", "best", "seconds")}})
        init = stage_checkpoint(run_dir, round_stage(k))
    out = {"rounds": rounds, "final": str(init)}
    (run_dir / "stage3" / "summary.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def _eval(cfg: Config, run_dir: Path) -> dict:
    from ..evaluation_run import evaluate_run, run_checkpoints

    report = evaluate_run(cfg, run_checkpoints(run_dir), Path(run_dir) / "eval", split="test")
    return {"results": report["results"]}


def _export(cfg: Config, run_dir: Path) -> dict:
    from ..export.onnx_export import export_onnx

    final = json.loads((Path(run_dir) / "stage3" / "summary.json").read_text())["final"]
    e = cfg.export
    return {k: str(v) for k, v in export_onnx(final, Path(run_dir) / "export", e.height, e.width, e.opset, e.precision).items()}


def method_pipeline(with_eval: bool = True, with_export: bool = True) -> Pipeline:
    stages = [
        Stage("stage1", _stage1, sections=TRAIN_SECTIONS + ("stage1",), outputs=("stage1/summary.json",),
              folders=("stage1",)),
        Stage("masks", stage2.run_masks, sections=("masks",), needs=("stage1",), outputs=("masks/summary.json",),
              folders=("masks",)),
        Stage("objects", stage2.run_objects, sections=("objects",), needs=("masks",), outputs=("objects/summary.json",),
              folders=("objects",)),
        Stage("dsa", stage2.run_dsa, sections=("dsa",), needs=("objects",), outputs=("dsa/summary.json",),
              folders=("dsa",)),
        Stage("pseudo", stage2.run_pseudo, sections=("pseudo",), needs=("dsa",), outputs=("pseudo/summary.json", "pseudo/manifest.json"),
              folders=("pseudo",)),
        Stage("stage3", run_stage3, sections=("stage3",), needs=("pseudo",), outputs=("stage3/summary.json",),
              folders=("stage3", "pseudo_round*")),
    ]
    if with_eval:
        stages.append(Stage("eval", _eval, sections=("eval",), needs=("stage3",), outputs=("eval/metrics.json",),
                            folders=("eval",)))
    if with_export:
        stages.append(Stage("export", _export, sections=("export",), needs=("stage3",), outputs=("export/model.onnx", "export/model.json"),
                            folders=("export",)))
    return Pipeline(stages)


def with_run_dir(cfg: Config, run_dir: str | Path | None) -> Config:
    """The config with ``run.out_dir`` set to ``run_dir`` (when given)."""
    if run_dir is None:
        return cfg
    out = copy.deepcopy(cfg)
    out.run.out_dir = str(run_dir)
    return out
