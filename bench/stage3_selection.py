"""Which net would ``stage3.keep_better`` keep in finished runs, and what is its held-out error?

    python bench/stage3_selection.py RUN [RUN ...] [--json OUT]

For each run: the validation photometric loss (whole val split, no ground truth;
``stages.stage3.validation_photometric``) of stage 1 and of each stage-3 round's checkpoint, the
net the rule keeps (a round is adopted only if it beats the net it started from), and that net's
held-out dynamic / static AbsRel from ``RUN/eval/metrics.json``, next to the last round's (what
the pipeline kept before the rule). The rounds of these runs were each trained from the previous
round, so for a run where the rule rejects a round and would have started the next one elsewhere,
the later rounds are read as they are (said in the table's ``note``). Means over the runs at the end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def keep_better(scores: list[float]) -> tuple[int, bool]:
    """Index of the kept net in ``scores`` (0 = stage 1, k = round k-1) under the sequential rule,
    and whether a rejected round was followed by another (trained from the rejected one here)."""
    kept, displaced = 0, False
    for i in range(1, len(scores)):
        if scores[i] < scores[kept]:
            kept = i
        elif i < len(scores) - 1:
            displaced = True  # round i+1 was trained from this rejected round, not from the kept net
    return kept, displaced


def evaluate(run: Path) -> dict:
    from mcdepth_train.config import load_config
    from mcdepth_train.eval.run import run_checkpoints
    from mcdepth_train.stages.stage1 import training_sets
    from mcdepth_train.stages.stage3 import validation_photometric

    metrics_path = run / "eval" / "metrics.json"
    if not (run / "config.yaml").is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{run}: not a finished run (needs config.yaml and eval/metrics.json)")
    cfg = load_config([run / "config.yaml"])
    cfg.run.out_dir = str(run)
    _, val_set = training_sets(cfg)
    found = run_checkpoints(run)  # the eval's names and checkpoints: stage 1, then each round
    if "stage 1" not in found or len(found) < 2:
        raise FileNotFoundError(f"{run}: needs stage 1 and at least one stage-3 round checkpoint")
    names, checkpoints = list(found), list(found.values())
    scores = [validation_photometric(cfg, c, val_set, cfg.stage3.batch_size) for c in checkpoints]
    kept, displaced = keep_better(scores)
    metrics = json.loads(metrics_path.read_text())

    def errors(name):
        return {region: metrics[name][region]["abs_rel"] for region in ("dynamic", "static")}

    return {"run": str(run), "val_photometric": dict(zip(names, scores)), "kept": names[kept], "kept_abs_rel": errors(names[kept]),
            "last": names[-1], "last_abs_rel": errors(names[-1]), "note": "later rounds trained from a rejected one" if displaced else ""}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished runs (stage 1, stage 3 rounds, eval)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print("| run | val photometric: stage 1 / rounds | kept | kept: dynamic / static | last round: dynamic / static | note |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        try:
            r = evaluate(run)
        except (FileNotFoundError, KeyError) as exc:
            parser.error(str(exc))
        rows.append(r)
        vals = " / ".join(f"{v:.5f}" for v in r["val_photometric"].values())
        k, last = r["kept_abs_rel"], r["last_abs_rel"]
        print(f"| {run.name} | {vals} | {r['kept']} | {k['dynamic']:.3f} / {k['static']:.3f} | "
              f"{last['dynamic']:.3f} / {last['static']:.3f} | {r['note']} |", flush=True)
    mean = {which: {region: statistics.fmean(r[f"{which}_abs_rel"][region] for r in rows) for region in ("dynamic", "static")}
            for which in ("kept", "last")}
    print(f"\nmean over {len(rows)} runs: kept {mean['kept']['dynamic']:.3f} / {mean['kept']['static']:.3f}, "
          f"last round {mean['last']['dynamic']:.3f} / {mean['last']['static']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": rows, "mean": mean}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
