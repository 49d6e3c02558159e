"""The method as one resumable pipeline: which stages, in which order, reading which config sections.

    stage1 -> masks -> objects -> dsa -> pseudo -> stage3 (+ self-training rounds) -> eval -> export

Each stage of the method is one module (or folder) of ``mcdepth_train.stages`` with the same small
interface, a function ``(cfg, run_dir) -> summary dict`` that reads the earlier stages' outputs
under ``run_dir`` and writes its own there. ``mcdepth-train run`` executes :func:`method_pipeline`
with :class:`~mcdepth_train.stages.pipeline.Pipeline`; the single-stage commands
(``mcdepth-train masks --run RUN`` ...) call the same functions.
"""
from __future__ import annotations

from ..eval.run import run_eval
from ..export.onnx_export import export_run
from . import stage1, stage3
from .dsa.run import run_dsa
from .masks.run import run_masks
from .objects.run import run_objects
from .pipeline import Pipeline, Stage
from .pseudo.run import run_pseudo

TRAIN_SECTIONS = ("data", "model", "loss", "run.seed", "run.deterministic")


def method_pipeline(with_eval: bool = True, with_export: bool = True) -> Pipeline:
    stages = [
        Stage("stage1", stage1.run, sections=TRAIN_SECTIONS + ("stage1",), outputs=("stage1/summary.json",),
              folders=("stage1",)),
        Stage("masks", run_masks, sections=("masks",), needs=("stage1",), outputs=("masks/summary.json",),
              folders=("masks",)),
        Stage("objects", run_objects, sections=("objects",), needs=("masks",), outputs=("objects/summary.json",),
              folders=("objects",)),
        Stage("dsa", run_dsa, sections=("dsa",), needs=("objects",), outputs=("dsa/summary.json",),
              folders=("dsa",)),
        Stage("pseudo", run_pseudo, sections=("pseudo",), needs=("dsa",), outputs=("pseudo/summary.json", "pseudo/manifest.json"),
              folders=("pseudo",)),
        Stage("stage3", stage3.run, sections=("stage3",), needs=("pseudo",), outputs=("stage3/summary.json",),
              folders=("stage3", "pseudo_round*")),
    ]
    if with_eval:
        stages.append(Stage("eval", run_eval, sections=("eval",), needs=("stage3",), outputs=("eval/metrics.json",),
                            folders=("eval",)))
    if with_export:
        stages.append(Stage("export", export_run, sections=("export",), needs=("stage3",), outputs=("export/model.onnx", "export/model.json"),
                            folders=("export",)))
    return Pipeline(stages)

