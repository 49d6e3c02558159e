"""Accuracy benchmark: the paper's Table 2 on synthetic scenes, trained and tested on different seeds.

Rows: photometric only (stage 1 with the motion net never switched on), stage 1 (pixel-wise
motion), stage 3 (+ pseudo depth), stage 3 + one self-training round. Columns: AbsRel, SqRel and
delta<1.25 on the dynamic (moving-object), static and all regions, median-scaled per image.
Training uses the synthetic training sequences (seeds synth_seed..); evaluation the held-out test
sequences (seeds synth_seed + 1000..), with exact depth and moving-object masks. Ground truth is
used for evaluation only.

Goal reported against: dynamic-region AbsRel at least 25% below stage 1 with static-region AbsRel
no worse than +2%.

usage: python bench/accuracy.py [--out runs/accuracy] [--config FILE] [--seeds S [S ...]] [KEY=VALUE ...]
       (defaults: mcdepth_train/configs/demo.yaml; e.g. data.synth_sequences=3 stage1.epochs=20 for a larger run)
Prints a Markdown table and JSON; writes OUT/accuracy.{md,json}. With --seeds, trains once per
training seed (run.seed; the data stay the same) in OUT/seed_<S>/ and also writes the spread over
the seeds to OUT/accuracy_seeds.{md,json}.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mcdepth_train.commands.demo_cmd import DEMO_CONFIG  # noqa: E402
from mcdepth_train.config import load_config, save_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/accuracy", help="benchmark folder (resumable)")
    parser.add_argument("--config", action="append", default=[], help="YAML over the demo config (repeatable)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train once per run.seed, each in OUT/seed_<S>, and report the spread (default: one run in OUT)")
    args = parser.parse_args(argv)

    from mcdepth_train.data.synthetic_folder import MANIFEST, params_from_config, write_synthetic

    out = Path(args.out)
    # Ground-truth metrics at each stage-1 validation give the learning curve (reported, never used to select).
    cfg = load_config([DEMO_CONFIG, *args.config], ["stage1.report_gt=true", *args.overrides])
    started = time.monotonic()
    data = out / "data"
    if not (data / MANIFEST).is_file():
        d = cfg.data
        write_synthetic(data, params_from_config(d), d.synth_seed, d.synth_sequences, d.synth_test_sequences,
                        formats=("kitti",), progress=cfg.run.progress)
    cfg.data.dataset, cfg.data.root = "synthetic", str(data)
    cfg.eval.dataset, cfg.eval.root = "synthetic", str(data)
    command = " ".join(["python bench/accuracy.py", *(argv if argv is not None else sys.argv[1:])])
    if args.seeds is None:
        run_once(cfg, out, started, command)
        return 0
    from seed_spread import summarise, summary_text

    per_seed = {}
    for seed in args.seeds:
        seeded = copy.deepcopy(cfg)
        seeded.run.seed = seed
        per_seed[seed] = run_once(seeded, out / f"seed_{seed}", time.monotonic(), command)["results"]
    summary = summarise(per_seed, "stage 1 (pixel motion)", "stage 3 (pseudo depth)")
    summary.update(minutes=(time.monotonic() - started) / 60, command=command)
    text = summary_text(summary)
    (out / "accuracy_seeds.md").write_text(text)
    (out / "accuracy_seeds.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nover seeds {args.seeds}:\n" + text)
    return 0


def run_once(cfg, out: Path, started: float, command: str) -> dict:
    """Photometric baseline, the method, the evaluation on the held-out drives: OUT/accuracy.{md,json}."""
    from mcdepth_train.eval.report import markdown_table
    from mcdepth_train.eval.run import evaluate_run
    from mcdepth_train.stages.frames import stage_checkpoint
    from mcdepth_train.stages.workflow import method_pipeline

    # Photometric-only baseline: the same stage 1 with the motion net never switched on.
    baseline = copy.deepcopy(cfg)
    baseline.run.out_dir = str(out / "photometric_only")
    baseline.stage1.depth_pose_epochs = baseline.stage1.epochs
    save_config(baseline, out / "photometric_only" / "config.yaml")
    method_pipeline(with_eval=False, with_export=False).run(baseline, out / "photometric_only", until_stage="stage1")

    cfg.run.out_dir = str(out / "method")
    save_config(cfg, out / "method" / "config.yaml")
    method_pipeline(with_eval=False, with_export=False).run(cfg, out / "method")

    checkpoints = {
        "photometric only": stage_checkpoint(out / "photometric_only", "stage1"),
        "stage 1 (pixel motion)": stage_checkpoint(out / "method", "stage1"),
        "stage 3 (pseudo depth)": stage_checkpoint(out / "method", "stage3/round0"),
    }
    for k in range(1, cfg.stage3.self_training_rounds + 1):
        checkpoints[f"stage 3 + {k} self-training"] = stage_checkpoint(out / "method", f"stage3/round{k}")
    report = evaluate_run(cfg, checkpoints, out / "eval", split="test")
    results = report["results"]

    s1, s3 = results["stage 1 (pixel motion)"], results["stage 3 (pseudo depth)"]
    goal = {}
    if s1["dynamic"] and s3["dynamic"]:
        dyn = (s3["dynamic"]["abs_rel"] - s1["dynamic"]["abs_rel"]) / s1["dynamic"]["abs_rel"]
        sta = (s3["static"]["abs_rel"] - s1["static"]["abs_rel"]) / s1["static"]["abs_rel"]
        goal = {"dynamic_abs_rel_change": dyn, "static_abs_rel_change": sta, "met": dyn <= -0.25 and sta <= 0.02}
    masks = json.loads((out / "method" / "masks" / "summary.json").read_text())
    dsa = json.loads((out / "method" / "dsa" / "summary.json").read_text())
    pseudo = json.loads((out / "method" / "pseudo" / "summary.json").read_text())
    summary = {"results": results, "goal": goal, "masks": masks, "dsa": dsa, "pseudo_labels": pseudo.get("label_vs_gt"),
               "minutes": (time.monotonic() - started) / 60, "command": command}
    from learning_curve import curve_points, plot

    curves = {}
    for name, folder in (("photometric_only", out / "photometric_only"), ("method", out / "method")):
        points = curve_points(json.loads((folder / "stage1" / "summary.json").read_text()))
        curves[name] = points
        plot(points, out / f"stage1_curve_{name}.png", f"stage 1 ({name.replace('_', ' ')}) on synthetic scenes, validation frames")
    summary["stage1_curves"] = curves
    table = markdown_table(results)
    text = table
    if goal:
        text += (f"\nstage 3 vs stage 1: dynamic AbsRel {100 * goal['dynamic_abs_rel_change']:+.1f}% (goal <= -25%), "
                 f"static AbsRel {100 * goal['static_abs_rel_change']:+.1f}% (goal <= +2%): "
                 f"{'met' if goal['met'] else 'not met'}\n")
    (out / "accuracy.md").write_text(text)
    (out / "accuracy.json").write_text(json.dumps(summary, indent=2, default=str))
    print(text)
    print(json.dumps({k: summary[k] for k in ("goal", "masks", "dsa", "pseudo_labels", "minutes")}, indent=2, default=str))
    return summary


if __name__ == "__main__":
    sys.exit(main())
