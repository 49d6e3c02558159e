"""Where do the pseudo labels' scales go wrong? Each moving object's scale against its true one, and why.

    python bench/label_scales.py --run RUN [--synth DIR] [--json OUT]

A pseudo label is the objects stage's shape o_k times one scale per object (DSA's, or with no
static objects its ground-contact fallback, ``stages/dsa/run.py``). For a synthetic run with its
masks, objects and DSA stages done, this bench takes every instance the masks stage calls moving
and the generator's depth for the same frame, scaled into stage 1's units by the frame's median
ratio (as the evaluation scales), g. Per instance, over the pixels o_k and g both cover:

    true scale = median(g) / median(o_k)        (the scale that gives the object its true depth)

and, each divided by the true scale (1 = right, below 1 = the object put too near):

* ``chosen``: the scale ``RUN/dsa/frames`` holds, the one the label uses;
* ``stage1_level``: the scale that gives the object stage 1's median depth (what the fallback keeps
  when the ground under the object is out of view);
* ``contact``: :func:`~mcdepth_train.geometry.ground_contact.ground_contact_scale`, the road plane
  fitted to stage 1's ground under the object's bottom edge over o_k there. Per column of the
  bottom edge it is the product of three factors, reported apart (medians over columns, so their
  product is near, not equal to, ``contact``):
  - ``plane``: the fitted plane against the plane through the *true* depth of the same ground
    pixels (is stage 1's road, as fitted, right where the object stands?);
  - ``bottom_edge``: that true plane under the mask's bottom edge against the object's true depth
    at its lowest pixel (does the mask end where the object meets the road?);
  - ``shape``: g over o_k at the lowest pixel, against the same over the whole object (is o_k's
    bottom as far, relative to its body, as the object's is?);
* ``generator_mask``: the same contact reading with the generator's own mask of the object (the id
  most of the mask's pixels carry) and its median depth as a flat shape, once on the fitted plane
  (``fitted``) and once on the true plane (``true_plane``: what any bottom-edge contact rule can
  reach at this resolution, with a perfect mask and a perfect road);
* ``ground_seen``: :func:`~mcdepth_train.geometry.ground_contact.ground_seen_below`, the share of
  the object's columns with ground in view under them (the fallback trusts the contact only from
  ``dsa.min_contact_share``).

Printed per kind of object (the generator's kind most of its pixels belong to; ``bg`` =
background) as p10 / p50 / p90 over instances, with the JSON. Ground truth is used for this
analysis only; nothing here is trained or tuned.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

COLUMNS = ("chosen", "stage1_level", "contact", "plane", "bottom_edge", "shape", "contact_flat", "bottom_offset_rows",
           "generator_mask_fitted", "generator_mask_true_plane", "ground_seen")
MIN_PIXELS = 5  # as masks_quality scores an instance
MAX_DEPTH = 80.0  # the evaluation's range


def _per_column(plane: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mcdepth_train.geometry.ground_contact import plane_under_bottom_edge

    return plane_under_bottom_edge(plane, mask)


def instance_scales(stage1: np.ndarray, ground: np.ndarray, object_depth: np.ndarray, mask: np.ndarray, chosen: float,
                    true_depth: np.ndarray, ids: np.ndarray) -> dict[str, float] | None:
    """One moving instance's columns (see the module doc), or None when it has under ``MIN_PIXELS``
    pixels with both o_k and ground truth, or the frame gives no road plane.

    Args:
        stage1: HxW stage-1 depth. ground: HxW bool, the masks stage's ground. object_depth: HxW o_k
            (0 outside the object). mask: HxW bool, the instance. chosen: its DSA scale.
        true_depth: HxW true depth already in stage 1's units (0 = none). ids: HxW generator instance ids.
    """
    from mcdepth_train.geometry.ground_contact import fit_ground_plane, ground_contact_scale, ground_seen_below

    stage1, o, g = (np.asarray(a, np.float64) for a in (stage1, object_depth, true_depth))
    mask, ground = np.asarray(mask, bool), np.asarray(ground, bool)
    valid = g > 0
    scored = mask & valid & (o > 0)
    fitted = fit_ground_plane(stage1, ground)
    exact = fit_ground_plane(g, ground & valid & (ids == 0))
    if scored.sum() < MIN_PIXELS or fitted is None or exact is None:
        return None
    true_scale = np.median(g[scored]) / np.median(o[scored])
    cols, bottoms, fitted_inverse = _per_column(fitted, mask)
    exact_inverse = _per_column(exact, mask)[2]
    edge = (fitted_inverse > 0) & (exact_inverse > 0) & (o[bottoms, cols] > 0) & valid[bottoms, cols]
    row = {"chosen": chosen / true_scale,
           "stage1_level": np.median(stage1[mask]) / np.median(o[mask]) / true_scale,
           "contact": ground_contact_scale(stage1, ground, o, mask, fitted) / true_scale,
           "contact_flat": ground_contact_scale(stage1, ground, np.full(o.shape, np.median(o[scored])), mask, fitted) / true_scale,
           "ground_seen": ground_seen_below(ground, mask)}
    if edge.any():
        c, b = cols[edge], bottoms[edge]
        row |= {"plane": np.median(exact_inverse[edge] / fitted_inverse[edge]),
                "bottom_edge": np.median(1.0 / exact_inverse[edge] / g[b, c]),
                "shape": np.median(g[b, c] / o[b, c]) / true_scale}
    ids_in = ids[mask & (ids > 0)]
    if ids_in.size:
        own = ids == np.bincount(ids_in).argmax()
        depth = np.median(g[own & valid]) if (own & valid).any() else np.nan
        own_cols, own_bottoms, _ = _per_column(exact, own)
        found_bottom = dict(zip(cols.tolist(), bottoms.tolist()))
        offsets = [found_bottom[c] - b for c, b in zip(own_cols.tolist(), own_bottoms.tolist()) if c in found_bottom]
        if offsets:
            row["bottom_offset_rows"] = np.median(offsets)
        row |= {"generator_mask_fitted": np.median(1.0 / np.clip(_per_column(fitted, own)[2], 1e-9, None)) / depth,
                "generator_mask_true_plane": np.median(1.0 / np.clip(_per_column(exact, own)[2], 1e-9, None)) / depth}
    return {k: float(v) for k, v in row.items()}


def summarise(rows: dict[str, list[dict[str, float]]]) -> dict:
    """Per kind: instance count and p10/p50/p90 of each column over the instances that have it."""
    out = {}
    for kind, items in sorted(rows.items()):
        entry = {"instances": len(items)}
        for column in COLUMNS:
            values = np.array([r[column] for r in items if column in r and np.isfinite(r[column])])
            entry[column] = np.percentile(values, [10, 50, 90]).tolist() if len(values) else None
        out[kind] = entry
    return out


def evaluate_run(run: Path, synth: Path) -> dict:
    from masks_quality import majority_kind, truth_in_stage1_units
    from mcdepth_train.stages.frames import frame_path, load_frame

    frames_dir, objects_dir, dsa_dir = (run / stage / "frames" for stage in ("masks", "objects", "dsa"))
    paths = sorted(frames_dir.glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"{frames_dir}: no masks frames (run the masks stage first)")
    rows: dict[str, list[dict[str, float]]] = {}
    for i in range(len(paths)):
        r = load_frame(frames_dir, i)
        if not r["moving"].any():
            continue
        if not (frame_path(objects_dir, i).is_file() and frame_path(dsa_dir, i).is_file()):
            raise FileNotFoundError(f"{run}: frame {i} has moving objects but no objects/dsa frame (run up to dsa first)")
        ids, kind_of, true_depth = truth_in_stage1_units(synth, r, MAX_DEPTH)
        stage1 = r["stage1_depth"].astype(np.float64)
        object_depth = load_frame(objects_dir, i)["object_depth"]
        scales = load_frame(dsa_dir, i)["scales"]
        for k in np.flatnonzero(r["moving"]):
            mask = r["instances"][k].astype(bool)
            row = instance_scales(stage1, r["ground"], object_depth[k], mask, float(scales[k]), true_depth, ids)
            if row is not None:
                rows.setdefault(majority_kind(ids, mask, kind_of), []).append(row)
    return {"run": str(run), "frames": len(paths), "per_kind": summarise(rows)}


def format_table(result: dict) -> str:
    header = ["kind", "n"] + list(COLUMNS)
    lines = [f"scale / true scale per instance called moving, p10 / p50 / p90 ({result['frames']} frames); "
             "contact ~ plane x bottom_edge x shape", "  ".join(header)]
    for kind, e in result["per_kind"].items():
        cells = [kind, str(e["instances"])]
        cells += ["/".join(f"{x:.2f}" for x in e[c]) if e[c] else "-" for c in COLUMNS]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from masks_quality import synth_run_main

    return synth_run_main(argv, __doc__, evaluate_run, format_table, "a synthetic run with its masks, objects and dsa stages done",
                          print_json=False)


if __name__ == "__main__":
    sys.exit(main())
