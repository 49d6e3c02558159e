"""Would the ground tell which cars move? Stage 1's depth of each car against the road it stands on.

    python bench/contact_cue.py --run RUN [--synth DIR] [--json OUT]

Motion evidence finds only what no depth can explain: a car driving along the line of sight (an
oncoming or a lead car) is explained by the static-world loss with a wrong depth, so its residual
motion is small and the masks stage cannot flag it. But a car stands on the road: stage 1's depth
of its lowest pixels should equal the road's depth there (paper Obs. 2). This bench measures, on
a synthetic run's training frames (``RUN/masks/frames``: stage 1's depth and the masks stage's
ground mask) with the generator's own instance masks (an oracle segmenter), per instance:

    contact ratio = ground-plane depth under the car's bottom edge / stage 1's depth there

(``geometry.ground_contact.ground_contact_scale`` with the car's stage-1 depth as its shape: 1 = stands on the
road; 2 = stage 1 has it at half the road's depth), once with the car's lowest pixels ('bottom')
and once with its median depth ('body': a car's face is about upright, and a smooth depth net
blends the road into a car's lowest rows). Instances whose bottom edge has the ground in
view under fewer than half their columns (cut by the image's edge, ``geometry.ground_contact.ground_seen_below``)
are counted apart. Reported per kind of car: p10/p50/p90 of the ratio and the share off by more than
1.5x either way (the same 50% that ``masks.min_relative_motion`` uses for motion). Nothing here is
trained or tuned: it says whether a contact rule could separate movers from parked cars.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

KINDS = ("lead", "oncoming", "crossing", "parked")
OFF_FACTOR = 1.5
MIN_PIXELS = 30  # at 64x192: about a car 6 px wide and 5 px tall


def instance_contact_ratios(stage1_depth: np.ndarray, ground: np.ndarray, ids: np.ndarray, kinds: dict[int, str],
                            min_pixels: int = MIN_PIXELS, min_contact_share: float = 0.5, body: bool = False) -> list[tuple[str, float, bool]]:
    """(kind, contact ratio, contact in view) of every instance of one frame with at least ``min_pixels`` pixels.

    ``body=False``: the road's depth against stage 1's depth of the car's lowest pixel in each column;
    ``body=True``: against the median of stage 1's depth over the whole car.
    The ratio is NaN when the frame's ground gives no plane.
    """
    from mcdepth_train.geometry.ground_contact import fit_ground_plane, ground_contact_scale, ground_seen_below

    plane = fit_ground_plane(stage1_depth, ground)
    out = []
    for k in np.unique(ids):
        if k == 0 or int(k) not in kinds:
            continue
        mask = (ids == k) & ~ground
        if mask.sum() < min_pixels:
            continue
        if body:  # the car's median depth against the road under it: a car's face is about upright
            shape = np.full(stage1_depth.shape, float(np.median(stage1_depth[mask])))
        else:  # its own lowest pixels against the road there
            shape = stage1_depth
        ratio = ground_contact_scale(stage1_depth, ground, shape, mask, plane=plane)
        out.append((kinds[int(k)], ratio, ground_seen_below(ground, mask) >= min_contact_share))
    return out


def summarise(rows: list[tuple[str, float, bool]]) -> dict:
    """Per kind, for instances with the contact in view: count, ratio p10/p50/p90, share off by > 1.5x; and the count out of view."""
    out = {}
    for kind in KINDS:
        ratios = np.array([r for k, r, seen in rows if k == kind and seen and np.isfinite(r) and r > 0])
        hidden = sum(1 for k, _, seen in rows if k == kind and not seen)
        entry = {"instances": int(len(ratios)), "contact_out_of_view": int(hidden)}
        if len(ratios):
            off = np.abs(np.log(ratios)) > np.log(OFF_FACTOR)
            entry |= {"ratio_p10_p50_p90": np.percentile(ratios, [10, 50, 90]).tolist(), "off_share": float(off.mean()),
                      "too_near_share": float((ratios > OFF_FACTOR).mean())}
        out[kind] = entry
    return out


def evaluate_run(run: Path, synth: Path | None = None) -> dict:
    import cv2

    from masks_quality import default_synth, drive_folder, generator_truth
    from mcdepth_train.stages.frames import load_frame

    frames_dir = run / "masks" / "frames"
    paths = sorted(frames_dir.glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"{frames_dir}: no masks frames (run the masks stage first)")
    synth = synth or default_synth(run)
    rows: dict[str, list] = {"bottom": [], "body": []}
    for i in range(len(paths)):
        r = load_frame(frames_dir, i)
        ids, _, kinds, _ = generator_truth(drive_folder(synth, str(r["sequence"])), int(r["frame"]))
        depth = r["stage1_depth"].astype(np.float64)
        if ids.shape != depth.shape:
            ids = cv2.resize(ids.astype(np.float32), depth.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(np.int64)
        for name in rows:
            rows[name].extend(instance_contact_ratios(depth, r["ground"], ids, kinds, body=name == "body"))
    return {"run": str(run), "frames": len(paths), "off_factor": OFF_FACTOR, "per_kind": {name: summarise(v) for name, v in rows.items()}}


def format_table(result: dict) -> str:
    lines = [f"contact ratio = road depth under the car / stage 1's depth of the car ('bottom': its lowest pixels; "
             f"'body': its median); {result['frames']} frames",
             f"{'car depth':<10}{'kind':<10}{'instances':>10}{'p10':>7}{'p50':>7}{'p90':>7}{'off >' + str(result['off_factor']) + 'x':>10}{'too near':>10}{'out of view':>13}"]
    for name, kind, e in ((n, k, e) for n, per_kind in result["per_kind"].items() for k, e in per_kind.items()):
        if e["instances"]:
            p10, p50, p90 = e["ratio_p10_p50_p90"]
            lines.append(f"{name:<10}{kind:<10}{e['instances']:>10}{p10:>7.2f}{p50:>7.2f}{p90:>7.2f}{e['off_share']:>10.2f}{e['too_near_share']:>10.2f}{e['contact_out_of_view']:>13}")
        else:
            lines.append(f"{name:<10}{kind:<10}{0:>10}{'–':>7}{'–':>7}{'–':>7}{'–':>10}{'–':>10}{e['contact_out_of_view']:>13}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from masks_quality import synth_run_main

    return synth_run_main(argv, __doc__, evaluate_run, format_table, "a synthetic run with its masks stage done")


if __name__ == "__main__":
    sys.exit(main())
