"""Per-region report, Table-2 shaped: Markdown + JSON + CSV, and PNG plots."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .metrics import METRIC_NAMES, REGIONS, ROAD_REGIONS

TABLE_METRICS = ("abs_rel", "sq_rel", "a1")


def table_regions(results: dict[str, dict]) -> list[str]:
    """dynamic, static and all (the shape of the paper's Table 2, a dash where a region is missing),
    then ground and objects (LiDAR road regions) and any other region some row has."""
    seen = dict.fromkeys(r for per_region in results.values() for r, v in per_region.items() if v and r not in REGIONS)
    return [*REGIONS, *(r for r in ROAD_REGIONS if r in seen), *(r for r in seen if r not in ROAD_REGIONS)]


def markdown_table(results: dict[str, dict]) -> str:
    """Rows: settings (stage / round); columns: AbsRel, SqRel, delta<1.25 for dynamic, static and all
    (and ground, objects with LiDAR road regions)."""
    regions = table_regions(results)
    header = "| setting | " + " | ".join(f"{r} {m}" for r in regions for m in TABLE_METRICS) + " | images (dyn/all) |"
    rule = "|---|" + "---|" * (len(regions) * len(TABLE_METRICS)) + "---|"
    lines = [header, rule]
    for name, per_region in results.items():
        cells = []
        for region in regions:
            values = per_region.get(region)
            cells += [f"{values[m]:.3f}" if values else "–" for m in TABLE_METRICS]
        dyn = (per_region.get("dynamic") or {}).get("images", 0)
        total = (per_region.get("all") or {}).get("images", 0)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {dyn}/{total} |")
    return "\n".join(lines) + "\n"


def write_tables(results: dict[str, dict], out_dir: str | Path, stem: str = "metrics") -> dict[str, Path]:
    """Write ``stem.md``, ``stem.json`` and ``stem.csv``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{stem}.md", "json": out_dir / f"{stem}.json", "csv": out_dir / f"{stem}.csv"}
    paths["md"].write_text(markdown_table(results))
    paths["json"].write_text(json.dumps(results, indent=2))
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "region", *METRIC_NAMES, "images"])
        for name, per_region in results.items():
            for region in table_regions(results):
                values = per_region.get(region)
                if values:
                    writer.writerow([name, region, *[f"{values[m]:.6f}" for m in METRIC_NAMES], values.get("images", "")])
    return paths


def plot_error_by_stage(results: dict[str, dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names)), 3.5))
    for k, region in enumerate(REGIONS):
        vals = [(results[n].get(region) or {}).get("abs_rel", np.nan) for n in names]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=region)
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylabel("AbsRel (median-scaled)")
    ax.legend()
    ax.set_title("Error by stage and region")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_error_histogram(per_image: dict[str, list[dict]], path: str | Path, region: str = "dynamic") -> Path:
    """Histogram of per-image AbsRel in ``region`` for each setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in per_image.items():
        vals = [r[region] for r in rows if r.get(region) is not None]
        if vals:
            ax.hist(vals, bins=20, alpha=0.5, label=name)
    ax.set_xlabel(f"per-image AbsRel ({region})")
    ax.set_ylabel("images")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_examples(examples: dict[str, list[dict]], path: str | Path, max_rows: int = 4, max_depth: float = 80.0) -> Path:
    """Grid: image | GT | each setting's depth | each setting's |error| / gt, one row per example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(examples)
    rows = min(max_rows, min(len(v) for v in examples.values())) if names else 0
    cols = 2 + 2 * len(names)
    fig, axes = plt.subplots(max(rows, 1), cols, figsize=(2.6 * cols, 1.2 * max(rows, 1) + 0.6), squeeze=False)
    for r in range(rows):
        first = examples[names[0]][r]
        gt = first["gt"]
        valid = gt > 0
        panels = [("image", first["image"], None), ("GT", np.where(valid, gt, np.nan), "turbo_r")]
        panels += [(n, examples[n][r]["pred"], "turbo_r") for n in names]
        panels += [(f"err {n}", np.where(valid, np.abs(examples[n][r]["pred"] - gt) / np.maximum(gt, 1e-6), np.nan), "magma") for n in names]
        for c, (title, img, cmap) in enumerate(panels):
            ax = axes[r, c]
            if cmap is None:
                ax.imshow(np.clip(img, 0, 1))
            elif title.startswith("err"):
                ax.imshow(img, cmap=cmap, vmin=0, vmax=0.5)
            else:
                ax.imshow(np.clip(img, 0, max_depth), cmap=cmap, vmin=0, vmax=min(max_depth, np.nanpercentile(gt[valid], 95) if valid.any() else max_depth))
            if r == 0:
                ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
