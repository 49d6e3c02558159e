"""Train stage 1 and record static-region AbsRel (median-scaled, ground truth) over training.

    python bench/learning_curve.py --config CFG [overrides] --every 200 --out docs/stage1_curve.png
    python bench/learning_curve.py --tiny-scene --every 20 run.out_dir=/tmp/curve stage1.max_steps=200

Ground truth is used here to *report* a curve only; stage 1 chooses its checkpoints by the
validation photometric loss. The dataset comes from ``mcdepth_train.data.build_dataset`` (train
and val splits), or, with ``--tiny-scene``, the ray-cast test scene of tests/train/scenes.py.
Writes the PNG and a JSON of the points beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcdepth_train.commands.common import add_config_arguments, config_from_args  # noqa: E402


def curve_points(summary: dict) -> list[dict]:
    """(step, phase, validation photometric loss, static/all/dynamic AbsRel) per validation."""
    points = []
    for v in summary.get("validation", []):
        points.append({
            "step": v["step"], "phase": v.get("phase", ""), "val_photometric": v.get("val/photometric"),
            "static_abs_rel": v.get("gt/static/abs_rel"), "all_abs_rel": v.get("gt/all/abs_rel"),
            "dynamic_abs_rel": v.get("gt/dynamic/abs_rel"),
        })
    return points


def plot(points: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("static_abs_rel", "static"), ("all_abs_rel", "all"), ("dynamic_abs_rel", "dynamic")):
        ys = [p[key] for p in points]
        if any(y is not None for y in ys):
            ax1.plot([s for s, y in zip(steps, ys) if y is not None], [y for y in ys if y is not None], marker="o", label=label)
    ax1.set_xlabel("optimiser step")
    ax1.set_ylabel("AbsRel (median-scaled)")
    ax1.set_title("depth error vs ground truth (report only)")
    ax1.legend()
    ax2.plot(steps, [p["val_photometric"] for p in points], marker="o", color="C3")
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("validation photometric loss")
    ax2.set_title("checkpoint selection signal")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--every", type=int, default=100, help="validate (and measure) every this many steps")
    parser.add_argument("--out", default="docs/stage1_learning_curve.png", help="PNG to write (JSON beside it)")
    parser.add_argument("--tiny-scene", action="store_true", help="train on tests/train/scenes.py's ray-cast scene")
    parser.add_argument("--tiny-samples", type=int, default=24, help="tiny scene: training samples")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    cfg.stage1.val_every = args.every
    train_set = val_set = None
    if args.tiny_scene:
        sys.path.insert(0, str(ROOT / "tests" / "train"))
        from scenes import TinyScene, register_tiny_encoder

        register_tiny_encoder()
        size = dict(height=cfg.data.height, width=cfg.data.width, frame_ids=cfg.data.frame_ids, num_scales=cfg.data.num_scales)
        train_set = TinyScene(args.tiny_samples, **size)
        # validation: a later stretch of the drive than any training frame
        val_set = TinyScene(4, **size, first_frame=args.tiny_samples + 4)
    else:
        from mcdepth_train.data import build_dataset

        train_set, val_set = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    from mcdepth_train.stages.stage1 import train_stage1

    summary = train_stage1(cfg, train_set, val_set, eval_gt=True)
    points = curve_points(summary)
    out = Path(args.out)
    title = (f"stage 1 on {'tiny scene' if args.tiny_scene else cfg.data.dataset} {cfg.data.height}x{cfg.data.width}, "
             f"{summary['steps']} steps, encoder {cfg.model.encoder}")
    plot(points, out, title)
    out.with_suffix(".json").write_text(json.dumps({"title": title, "points": points}, indent=2))
    for p in points:
        print(f"step {p['step']:>6}  {p['phase']:<10}  val photometric {p['val_photometric']:.4f}  "
              f"static AbsRel {p['static_abs_rel'] if p['static_abs_rel'] is None else round(p['static_abs_rel'], 4)}")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
