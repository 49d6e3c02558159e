"""Evaluate a run's stage checkpoints on a ground-truth split and write the per-region report."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from ..config import Config
from ..data import keys
from ..engine.checkpoint import load_checkpoint
from ..networks.depth import build_depth_net
from .evaluate import evaluate_predictor
from .report import plot_error_by_stage, plot_error_histogram, plot_examples, write_tables


def run_checkpoints(run_dir: Path) -> dict[str, Path]:
    """The depth checkpoints a run holds, in pipeline order: stage 1, stage 3, self-training rounds.

    Uses each stage's selected checkpoint (``best.pt``, chosen by validation photometric loss,
    else ``last.pt``): never one chosen with ground truth.
    """
    run_dir = Path(run_dir)
    found: dict[str, Path] = {}
    candidates = [("stage 1", run_dir / "stage1")]
    stage3 = run_dir / "stage3"
    if stage3.is_dir():
        rounds = sorted((p for p in stage3.iterdir() if p.is_dir() and p.name.startswith("round")), key=lambda p: int(p.name.removeprefix("round")))
        for p in rounds:
            k = int(p.name.removeprefix("round"))
            candidates.append(("stage 3" if k == 0 else f"stage 3 + {k} self-training", p))
    for name, folder in candidates:
        for file in ("best.pt", "last.pt"):
            if (folder / "checkpoints" / file).is_file():
                found[name] = folder / "checkpoints" / file
                break
    return found


def evaluation_config(cfg: Config) -> Config:
    """The run config with the evaluation data set (``eval.dataset``/``eval.root``) in place of the training one."""
    if not cfg.eval.dataset:
        return cfg
    out = copy.deepcopy(cfg)
    out.data.dataset = cfg.eval.dataset
    out.data.root = cfg.eval.root
    return out


def depth_predictor(checkpoint: Path, device: str = "cpu"):
    """Rebuild a checkpoint's depth net; returns batch -> depth [B,1,H,W] of frame 0."""
    net, _ = build_depth_net(load_checkpoint(checkpoint))
    net.eval().to(device)

    def predict(batch: dict) -> torch.Tensor:
        return net.depth(batch[keys.color(0, 0)].to(device))

    return predict


def evaluate_run(cfg: Config, checkpoints: dict[str, Path], out_dir: Path, split: str = "test",
                 max_images: int = 0, dataset=None) -> dict:
    """Metrics of each checkpoint on ``split``; writes tables and plots to ``out_dir``."""
    if dataset is None:
        from ..data import build_dataset

        dataset = build_dataset(evaluation_config(cfg), split)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, per_image, examples = {}, {}, {}
    for name, path in checkpoints.items():
        metrics, ex = evaluate_predictor(
            depth_predictor(path, cfg.run.device), dataset, cfg.eval, max_images=max_images,
            keep_examples=4, progress=cfg.run.progress, desc=f"eval {name}", dataset_name=cfg.eval.dataset or cfg.data.dataset,
        )
        results[name] = metrics.mean()
        per_image[name] = metrics.per_image
        examples[name] = ex
        if metrics.unscaled is not None:
            results[f"{name} (unscaled)"] = metrics.unscaled.mean()
    notes = [s.lidar_text() for s in getattr(dataset, "extraction", []) if s.lidar_topic]  # how many frames had a scan
    paths = write_tables(results, out_dir)
    if notes:
        paths["md"].write_text(paths["md"].read_text() + "\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    paths["bars"] = plot_error_by_stage(results, out_dir / "error_by_stage.png")
    paths["histogram"] = plot_error_histogram(per_image, out_dir / "per_image_dynamic_absrel.png")
    if all(examples.values()):
        paths["examples"] = plot_examples(examples, out_dir / "examples.png", max_depth=cfg.eval.max_depth)
    return {"results": results, "paths": paths, "markdown": paths["md"].read_text(), "notes": notes}


def final_checkpoint_name(run_dir: Path, checkpoints: dict[str, Path]) -> str | None:
    """The name (as in ``checkpoints``) of the net stage 3 chose as final (``RUN/stage3/summary.json``), if any."""
    summary = Path(run_dir) / "stage3" / "summary.json"
    if not summary.is_file():
        return None
    final = Path(json.loads(summary.read_text())["final"]).resolve()
    return next((name for name, path in checkpoints.items() if Path(path).resolve() == final), None)


def run_eval(cfg: Config, run_dir: Path) -> dict:
    """The pipeline's eval stage: every stage's checkpoint on the held-out split -> ``RUN/eval/``,
    and which of them is the final (exported) net."""
    checkpoints = run_checkpoints(run_dir)
    report = evaluate_run(cfg, checkpoints, Path(run_dir) / "eval", split="test")
    final = final_checkpoint_name(run_dir, checkpoints)
    if final is not None:
        md = report["paths"]["md"]
        md.write_text(md.read_text() + f"\nFinal (exported) net: **{final}** (chosen by stage 3 without ground truth: "
                                       f"RUN/stage3/summary.json).\n")
    return {"results": report["results"], "final": final}
