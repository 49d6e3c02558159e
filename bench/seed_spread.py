"""The spread of a benchmark's results over training seeds (``run.seed``): one run is not a result.

Used by ``bench/accuracy.py --seeds`` and ``bench/oracle_masks.py --seeds``. Each seed's result is
the ``results`` dict of :func:`mcdepth_train.eval.run.evaluate_run` (row -> region -> metrics).
On its own it summarises finished runs (e.g. ``mcdepth-train demo --out R run.seed=S`` per seed)
from their ``RUN/eval/metrics.json``:

    python bench/seed_spread.py RUN [RUN ...] [--base "stage 1"] [--row "stage 3"] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REGIONS = ("dynamic", "static", "all")


def spread(per_seed: dict[int, dict], metric: str = "abs_rel", regions: tuple[str, ...] = REGIONS) -> dict:
    """{row: {region: {"mean", "std", "min", "max", "values"}}} of ``metric`` over the seeds.

    A row or region missing from some seed (e.g. no dynamic pixels) is summarised over the seeds
    that have it; ``values`` lists them in seed order so nothing is hidden.
    """
    if not per_seed:
        raise ValueError("per_seed: no results")
    rows = list(dict.fromkeys(row for results in per_seed.values() for row in results))
    out: dict = {}
    for row in rows:
        out[row] = {}
        for region in regions:
            values = [results[row][region][metric] for results in per_seed.values()
                      if results.get(row) and results[row].get(region)]
            if values:
                out[row][region] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values),
                                    "min": min(values), "max": max(values), "values": values}
    return out


def relative_change(per_seed: dict[int, dict], base: str, row: str, region: str, metric: str = "abs_rel") -> dict:
    """Per seed (row - base) / base of ``metric`` in ``region``, and their mean, min and max."""
    changes = {seed: (r[row][region][metric] - r[base][region][metric]) / r[base][region][metric]
               for seed, r in per_seed.items() if r.get(row, {}).get(region) and r.get(base, {}).get(region)}
    values = list(changes.values())
    return {"per_seed": changes, "mean": statistics.fmean(values) if values else None,
            "min": min(values) if values else None, "max": max(values) if values else None}


def spread_table(summary: dict, metric: str = "abs_rel") -> str:
    """Markdown: one row per result row, mean (min-max) of ``metric`` per region."""
    regions = [r for r in REGIONS if any(r in cells for cells in summary.values())]
    lines = [f"| {metric}: mean (min–max) over seeds | " + " | ".join(regions) + " |",
             "|---|" + "---|" * len(regions)]
    for row, cells in summary.items():
        text = [f"{c['mean']:.3f} ({c['min']:.3f}–{c['max']:.3f})" if (c := cells.get(r)) else "–" for r in regions]
        lines.append(f"| {row} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def summarise(per_seed: dict[int, dict], base: str, row: str) -> dict:
    """The spread of every row, and ``row``'s change against ``base`` on the dynamic and static regions."""
    return {"seeds": list(per_seed), "abs_rel": spread(per_seed),
            "change": {region: relative_change(per_seed, base, row, region) for region in ("dynamic", "static")},
            "change_of": f"{row} vs {base}"}


def summary_text(summary: dict) -> str:
    """:func:`spread_table` and a line per region for the change, each seed's value listed."""
    text = spread_table(summary["abs_rel"])
    for region, change in summary["change"].items():
        if change["mean"] is not None:
            text += (f"{summary['change_of']}, {region} AbsRel: mean {100 * change['mean']:+.1f}% "
                     f"(seeds {', '.join(f'{100 * c:+.1f}%' for c in change['per_seed'].values())})\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with eval/metrics.json, one per seed")
    parser.add_argument("--base", default="stage 1", help="the row the change is measured against")
    parser.add_argument("--row", default="stage 3", help="the row whose change is reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    per_seed = {}
    for run in args.runs:
        path = run / "eval" / "metrics.json"
        if not path.is_file():
            parser.error(f"{run}: no eval/metrics.json (run `mcdepth-train eval --run {run}` first)")
        per_seed[str(run)] = json.loads(path.read_text())
    missing = [str(r) for r, results in per_seed.items() if args.base not in results or args.row not in results]
    if missing:
        parser.error(f"--base {args.base!r} / --row {args.row!r}: not in the results of {', '.join(missing)}")
    summary = summarise(per_seed, args.base, args.row)
    print(summary_text(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
