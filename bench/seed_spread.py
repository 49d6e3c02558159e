"""The spread of a benchmark's results over training seeds (``run.seed``): one run is not a result.

Used by ``bench/accuracy.py --seeds`` and ``bench/oracle_masks.py --seeds``. Each seed's result is
the ``results`` dict of :func:`mcdepth_train.eval.run.evaluate_run` (row -> region -> metrics).
"""
from __future__ import annotations

import statistics

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
