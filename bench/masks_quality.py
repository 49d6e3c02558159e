"""How good are a run's moving-object masks and pseudo labels? Scored against the synthetic generator's truth.

    python bench/masks_quality.py --run RUN [--synth DIR] [--json OUT]

For a run trained on a synthetic drive (``mcdepth-train demo``, ``run`` on ``mcdepth-train synth``
output, or ``run`` with ``data.dataset=synthetic``; ``--synth`` names the dataset folder, default
``RUN/data`` or else the run's generated ``RUN/cache/synthetic-*``), reads the masks stage's frames
(``RUN/masks/frames``) and the pseudo labels (``RUN/pseudo``, when present), and the generator's
instance maps, kinds and depth for the same frames. Reports:

* ``masks``: the moving-object mask (union of the instances the masks stage calls moving) against
  the generator's moving pixels: IoU, precision, recall; per kind of region (``crossing``,
  ``oncoming``, ``lead``, ``parked``, ``background``) the share of its pixels called moving and, for
  cars, the share of instances (seen at >= 0.5% of the image) at least half covered;
* ``labels``: median-scaled AbsRel (one ratio per frame, stage 1's, over all valid pixels, so the
  label and stage 1 are scaled alike) of the pseudo label and of stage 1's depth on the truly
  moving pixels the mask covers (``hit``), on the moving pixels it misses (``missed``: the label is
  stage 1's depth there) and on the pixels it wrongly calls moving (``false``);
* ``object_shape``: over the instances called moving (``RUN/objects/frames``, when present), the
  median ``shape_abs_rel`` (AbsRel after scaling to the true median, as ``bench/oracle_masks.py``
  scores shapes) of the objects stage's depth o_k and of stage 1's depth: the shape the
  labels take from o_k, against the shape stage 1 already had;
* ``hit_depth_ratio`` (per frame) and ``hit_depth_ratio_by_kind`` (per instance called moving,
  by the kind most of its pixels belong to): the median depth ratio, scaled / true, of the label
  and of stage 1 on the moving pixels found: whether the label's scale (DSA, or its ground-contact
  fallback) brings a car stage 1 has too near or too far to its depth;
* ``road_by_row``: per image row, the median depth ratio (scaled / true) of the road plane the
  ground-contact scale reads (``fit_ground_plane`` on stage 1's ground) and of stage 1 itself, on
  the ground pixels that are truly road;
* ``moving_instances``: the instances called moving, by the generator's kind most of their pixels
  belong to (``bg`` = background), with the 10th/50th/90th percentile over instances of their
  median :func:`~mcdepth_train.stages.masks.rules.relative_motion` (from ``RUN/masks/stage1``; the
  ratio ``masks.min_relative_motion`` thresholds).

This is what stage 3 is trained on: a false region with a worse label than stage 1 teaches stage 3
an error. Ground truth is used for this analysis only. Prints a table and the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcdepth_train.data.synthetic_motion import REGION_KINDS  # noqa: E402

MIN_INSTANCE_FRACTION = 0.005  # the masks stage's default masks.min_instance_fraction
LABEL_REGIONS = ("hit", "missed", "false")


def generator_truth(drive: Path, frame: int) -> tuple[np.ndarray, np.ndarray, dict[int, str], dict[int, bool]]:
    """(instance ids HxW, depth HxW metres (0 = none), kind per id, dynamic per id) of one frame of a written drive."""
    name = f"{frame:010d}.png"
    ids = cv2.imread(str(drive / "instances" / "image_02" / name), cv2.IMREAD_UNCHANGED)
    depth = cv2.imread(str(drive / "proj_depth" / "groundtruth" / "image_02" / name), cv2.IMREAD_UNCHANGED)
    if ids is None or depth is None:
        raise FileNotFoundError(f"{drive}: no instance map or depth for frame {frame} (is it a `mcdepth-train synth` drive?)")
    kinds, dynamic = _drive_objects(drive)
    return ids.astype(np.int64), depth.astype(np.float64) / 256.0, kinds, dynamic


@lru_cache(maxsize=None)
def _drive_objects(drive: Path) -> tuple[dict[int, str], dict[int, bool]]:
    """Kind and dynamic flag per instance id of a drive (its objects.json, read once)."""
    objects = json.loads((drive / "objects.json").read_text())["instances"]
    return {int(o["id"]): o["kind"] for o in objects}, {int(o["id"]): bool(o["dynamic"]) for o in objects}


def drive_folder(synth: Path, sequence: str) -> Path:
    """The written drive of a masks-frame sequence name: ``synth_drive_0000`` (a written data set's
    name) or ``synth/synth_drive_0000_sync/image_02`` (the generated data set's, a KITTI-style path)."""
    parts = Path(sequence).parts
    drive = next((p for p in parts if p.endswith("_sync")), f"{parts[-1]}_sync")
    return synth / "synth" / drive


def default_synth(run: Path) -> Path:
    """RUN/data when it holds the drives, else the one synthetic folder the run generated in RUN/cache."""
    if (run / "data" / "synth").is_dir():
        return run / "data"
    generated = sorted((run / "cache").glob("synthetic-*/synth"))
    return generated[0].parent if len(generated) == 1 else run / "data"


def record_motion(record: dict, far_explains: bool = False):
    """(residual motion per source, relative motion [1,1,H,W]) of a masks-stage stage-1 record
    (``RUN/masks/stage1``), as torch tensors, computed as the masks stage computes them."""
    import torch

    from mcdepth_train.stages.masks.rules import relative_motion

    flows = [torch.from_numpy(f.astype(np.float32))[None] for f in record["flows"]]
    poses = [torch.from_numpy(p.astype(np.float32))[None] for p in record["poses"]]
    depth = torch.from_numpy(record["stage1_depth"].astype(np.float32))[None, None]
    K = torch.from_numpy(record["K"].astype(np.float32))[None]
    return flows, relative_motion(flows, depth, K, poses, far_explains=far_explains)


def instance_relative_motion(record: dict, far_explains: bool = False) -> np.ndarray:
    """HxW relative motion of a masks-stage stage-1 record (``RUN/masks/stage1``), as the masks stage computes it."""
    return record_motion(record, far_explains)[1][0, 0].numpy()


def mask_scores(pred_moving: np.ndarray, ids: np.ndarray, kinds: dict[int, str], dynamic: dict[int, bool]) -> dict:
    """Pixel counts of one frame: intersection/union/pred/true, and per kind pixels and covered pixels,
    instances and instances at least half covered."""
    true_moving = np.isin(ids, [k for k, d in dynamic.items() if d])
    out = {"inter": int((pred_moving & true_moving).sum()), "union": int((pred_moving | true_moving).sum()),
           "pred": int(pred_moving.sum()), "true": int(true_moving.sum()), "kinds": {}}
    for kind in REGION_KINDS:
        out["kinds"][kind] = {"pixels": 0, "covered": 0, "instances": 0, "found": 0}
    for k in np.unique(ids):
        area = ids == k
        kind = "background" if k == 0 else kinds.get(int(k), "other")
        row = out["kinds"].setdefault(kind, {"pixels": 0, "covered": 0, "instances": 0, "found": 0})
        covered = int((area & pred_moving).sum())
        row["pixels"] += int(area.sum())
        row["covered"] += covered
        if k != 0 and area.sum() >= MIN_INSTANCE_FRACTION * ids.size:
            row["instances"] += 1
            row["found"] += int(covered >= 0.5 * area.sum())
    return out


def add_mask_scores(totals: dict, kinds: dict, scores: dict) -> None:
    """Add one frame's :func:`mask_scores` to running totals (``totals``: inter/union/pred/true; ``kinds``: per kind)."""
    for key in ("inter", "union", "pred", "true"):
        totals[key] = totals.get(key, 0) + scores[key]
    for kind, row in scores["kinds"].items():
        acc = kinds.setdefault(kind, {"pixels": 0, "covered": 0, "instances": 0, "found": 0})
        for key in acc:
            acc[key] += row[key]


def mask_summary(totals: dict, kinds: dict) -> dict:
    """IoU, precision, recall and per-kind coverage of summed :func:`mask_scores`."""
    return {"iou": totals["inter"] / max(totals["union"], 1), "precision": totals["inter"] / max(totals["pred"], 1),
            "recall": totals["inter"] / max(totals["true"], 1),
            "true_moving_pixel_share": totals["true"] / max(1, sum(k["pixels"] for k in kinds.values())),
            "per_kind": {k: {"pixel_share_called_moving": v["covered"] / max(v["pixels"], 1), "instances": v["instances"],
                             "instances_found": v["found"] / max(v["instances"], 1) if v["instances"] else None}
                         for k, v in kinds.items()}}


def mask_table(masks: dict, frames: int) -> list[str]:
    """The lines of :func:`format_table` for a :func:`mask_summary`."""
    lines = [f"moving mask vs generator, {frames} frames: IoU {masks['iou']:.3f}  precision {masks['precision']:.3f}  "
             f"recall {masks['recall']:.3f}  (true moving pixels {100 * masks['true_moving_pixel_share']:.1f}%)",
             f"{'kind':<12}{'px called moving':>18}{'instances':>11}{'found':>8}"]
    for kind, row in masks["per_kind"].items():
        found = "-" if row["instances_found"] is None else f"{row['instances_found']:.2f}"
        lines.append(f"{kind:<12}{100 * row['pixel_share_called_moving']:>17.1f}%{row['instances']:>11}{found:>8}")
    return lines


def truth_in_stage1_units(synth: Path, record: dict, max_depth: float = 80.0) -> tuple[np.ndarray, dict[int, str], np.ndarray]:
    """(instance ids, kind per id, true depth) of a masks-stage frame record at its stage-1 size, the
    depth scaled into stage 1's units by the frame's median ratio (as the evaluation scales; 0 =
    none or beyond ``max_depth``)."""
    ids, gt, kind_of, _ = generator_truth(drive_folder(synth, str(record["sequence"])), int(record["frame"]))
    stage1 = record["stage1_depth"].astype(np.float64)
    if ids.shape != stage1.shape:
        ids = cv2.resize(ids.astype(np.float32), stage1.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(np.int64)
        gt = cv2.resize(gt, stage1.shape[::-1], interpolation=cv2.INTER_NEAREST)
    valid = (gt > 1e-3) & (gt < max_depth)
    return ids, kind_of, np.where(valid, gt * np.median(stage1[valid]) / np.median(gt[valid]), 0.0)


def majority_kind(ids: np.ndarray, mask: np.ndarray, kind_of: dict[int, str]) -> str:
    """The generator's kind most of a mask's pixels belong to (``bg`` = background)."""
    return Counter("bg" if k == 0 else kind_of.get(int(k), "other") for k in ids[mask]).most_common(1)[0][0]


def add_road_rows(rows: dict, stage1: np.ndarray, ground: np.ndarray, ids: np.ndarray, gt: np.ndarray, min_pixels: int = 3) -> None:
    """Per image row, the median depth ratio (scaled / true, the frame's median scaling) of the
    frame's fitted road plane and of stage 1 itself on the ground pixels that are truly road: is
    the plane the contact scale reads as right as the depth it was fitted to?"""
    from mcdepth_train.geometry.ground_contact import fit_ground_plane

    plane = fit_ground_plane(stage1, ground)
    scored = (gt > 1e-3) & (gt < 80.0)
    if plane is None or not scored.any():
        return
    scale = np.median(gt[scored]) / np.median(stage1[scored])
    ys, xs = np.mgrid[0:stage1.shape[0], 0:stage1.shape[1]]
    inverse = plane[0] * (xs + 0.5) + plane[1] * (ys + 0.5) + plane[2]
    road = ground & (ids == 0) & scored & (inverse > 0)
    for y in np.flatnonzero(road.sum(1) >= min_pixels):
        sel = road[y]
        rows.setdefault(int(y), []).append((float(np.median(scale / inverse[y][sel] / gt[y][sel])),
                                            float(np.median(scale * stage1[y][sel] / gt[y][sel]))))


def label_regions(pred_moving: np.ndarray, ids: np.ndarray, dynamic: dict[int, bool]) -> dict[str, np.ndarray]:
    true_moving = np.isin(ids, [k for k, d in dynamic.items() if d])
    return {"hit": pred_moving & true_moving, "missed": ~pred_moving & true_moving, "false": pred_moving & ~true_moving}


def median_depth_ratio(scaled: np.ndarray, gt: np.ndarray, region: np.ndarray | None, min_pixels: int = 1) -> float | None:
    """Median of scaled depth / true depth over the region's pixels with ground truth in the eval's
    range (below 1 = too near); None with fewer than ``min_pixels`` of them."""
    if region is None:
        return None
    sel = region & (gt > 1e-3) & (gt < 80.0)
    return float(np.median(scaled[sel] / gt[sel])) if sel.sum() >= max(1, min_pixels) else None


def evaluate_run(run: Path, synth: Path) -> dict:
    from mcdepth_train.eval.metrics import evaluate_image, shape_abs_rel
    from mcdepth_train.geometry.ground_contact import fit_ground_plane, height_over_camera
    from mcdepth_train.stages.frames import frame_path, load_frame

    frames_dir = run / "masks" / "frames"
    paths = sorted(frames_dir.glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"{frames_dir}: no masks frames (run the masks stage first)")
    store = None
    if (run / "pseudo" / "manifest.json").is_file():
        from mcdepth_train.stages.pseudo.labels import PseudoLabelStore

        store = PseudoLabelStore.open(run / "pseudo")
    far_explains = _run_far_explains(run)
    totals = {"inter": 0, "union": 0, "pred": 0, "true": 0}
    kinds: dict[str, dict] = {}
    errors = {(source, region): [] for source in ("label", "stage1") for region in LABEL_REGIONS}
    moving_ratios: dict[str, list[float]] = {}
    moving_heights: dict[str, list[float]] = {}  # height over the camera's if it stood on the road (inf: above the horizon)
    stage1_records = run / "masks" / "stage1"
    objects_dir = run / "objects" / "frames"
    shapes: list[tuple[float, float]] = []
    hit_ratios: list[tuple[float, float]] = []  # per frame with found movers: (label, stage 1) median depth ratio
    hit_by_kind: dict[str, list[tuple[float, float]]] = {}  # per moving instance with found pixels, by its kind: the same
    road_rows: dict[int, list[tuple[float, float]]] = {}  # per image row: (plane, stage 1) median depth ratio on the true road
    for i in range(len(paths)):
        r = load_frame(frames_dir, i)
        sequence, frame = str(r["sequence"]), int(r["frame"])
        ids, gt, kind_of, dynamic = generator_truth(drive_folder(synth, sequence), frame)
        stage1 = r["stage1_depth"].astype(np.float64)
        if ids.shape != stage1.shape:
            ids = cv2.resize(ids.astype(np.float32), stage1.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(np.int64)
            gt = cv2.resize(gt, stage1.shape[::-1], interpolation=cv2.INTER_NEAREST)
        pred_moving = r["instances"][r["moving"]].any(0) if r["moving"].any() else np.zeros(ids.shape, bool)
        add_mask_scores(totals, kinds, mask_scores(pred_moving, ids, kind_of, dynamic))
        if "ground" in r:
            add_road_rows(road_rows, stage1, r["ground"].astype(bool), ids, gt)
        moving_masks = r["instances"][r["moving"]]
        moving_kinds = [majority_kind(ids, mask, kind_of) for mask in moving_masks]
        if r["moving"].any() and frame_path(objects_dir, i).is_file():
            object_depth = load_frame(objects_dir, i)["object_depth"].astype(np.float64)
            for k in np.flatnonzero(r["moving"]):
                scored = r["instances"][k] & (object_depth[k] > 0) & (gt > 1e-3) & (gt < 80.0)
                if scored.sum() >= 5:  # an object the objects stage gave a depth, with ground truth under it
                    shapes.append((shape_abs_rel(gt[scored], object_depth[k][scored]), shape_abs_rel(gt[scored], stage1[scored])))
        if r["moving"].any():
            ratio = (instance_relative_motion(load_frame(stage1_records, i), far_explains)
                     if frame_path(stage1_records, i).is_file() else None)
            plane = fit_ground_plane(stage1, r["ground"].astype(bool)) if "ground" in r else None
            for mask, kind in zip(moving_masks, moving_kinds):
                moving_ratios.setdefault(kind, []).append(float(np.median(ratio[mask])) if ratio is not None else float("nan"))
                moving_heights.setdefault(kind, []).append(height_over_camera(plane, mask))
        if store is None:
            continue
        label, _ = store.read(f"{sequence}/{frame:06d}")
        regions = label_regions(pred_moving, ids, dynamic)
        stage1_errors, ratio = evaluate_image(stage1, gt, regions=regions)
        label_scaled, stage1_scaled = np.where(label > 0, label, stage1) * ratio, stage1 * ratio
        label_errors, _ = evaluate_image(label_scaled, gt, median_scaling=False, regions=regions)
        scored = (gt > 1e-3) & (gt < 80.0)  # evaluate_image's default range
        hit_label = median_depth_ratio(label_scaled, gt, regions["hit"] & (label > 0), min_pixels=5)
        if hit_label is not None:
            hit_ratios.append((hit_label, median_depth_ratio(stage1_scaled, gt, regions["hit"] & (label > 0), min_pixels=5)))
        for mask, kind in zip(moving_masks, moving_kinds):  # the same per instance, by kind: does the label's scale fix the car?
            found = mask & regions["hit"] & (label > 0)
            instance_label = median_depth_ratio(label_scaled, gt, found, min_pixels=5)
            if instance_label is not None:
                hit_by_kind.setdefault(kind, []).append((instance_label, median_depth_ratio(stage1_scaled, gt, found, min_pixels=5)))
        for region in LABEL_REGIONS:
            if stage1_errors[region] is not None:
                count = int((regions[region] & scored).sum())
                errors[("stage1", region)].append((stage1_errors[region]["abs_rel"], count))
                errors[("label", region)].append((label_errors[region]["abs_rel"], count))
    result = {"run": str(run), "frames": len(paths), "masks": mask_summary(totals, kinds)}
    if road_rows:
        result["road_by_row"] = {str(y): {"frames": len(v), "plane": float(np.median([a for a, _ in v])),
                                          "stage1": float(np.median([b for _, b in v]))} for y, v in sorted(road_rows.items())}
    result["moving_instances"] = {kind: {"count": len(v), "relative_motion_p10_p50_p90": np.nanpercentile(v, [10, 50, 90]).tolist()
                                         if np.isfinite(v).any() else None,
                                         **_height_summary(moving_heights[kind])} for kind, v in moving_ratios.items()}
    if shapes:
        result["object_shape"] = {"instances": len(shapes), "object_depth": float(np.median([a for a, _ in shapes])),
                                  "stage1": float(np.median([b for _, b in shapes]))}
    if store is not None:
        # Pixel-weighted over frames: a frame with a large region counts for more, as it does in training.
        result["labels"] = {region: {source: _weighted(errors[(source, region)]) for source in ("label", "stage1")}
                            | {"pixels": sum(n for _, n in errors[("stage1", region)])} for region in LABEL_REGIONS}
        if hit_ratios:
            result["hit_depth_ratio"] = {"frames": len(hit_ratios),
                                         **{f"{source}_p10_p50_p90": np.percentile([r[j] for r in hit_ratios], [10, 50, 90]).tolist()
                                            for j, source in enumerate(("label", "stage1"))}}
        result["hit_depth_ratio_by_kind"] = {
            kind: {"instances": len(rows), **{f"{source}_p10_p50_p90": np.percentile([r[j] for r in rows], [10, 50, 90]).tolist()
                                              for j, source in enumerate(("label", "stage1"))}}
            for kind, rows in sorted(hit_by_kind.items())}
    return result


def _height_summary(heights: list[float]) -> dict:
    """Median and largest height over camera height of a kind's moving instances, and how many exceed
    1, 3 (``masks.max_height_ratio``'s suggested value) and the horizon (inf); NaN = no ground plane."""
    h = np.asarray(heights, dtype=np.float64)
    judged = h[~np.isnan(h)]
    finite = judged[np.isfinite(judged)]
    return {"height_over_camera_median": float(np.median(judged)) if len(judged) else None,
            "height_over_camera_max_finite": float(finite.max()) if len(finite) else None,
            "height_over_camera_above": {"1": int((judged > 1).sum()), "3": int((judged > 3).sum()), "inf": int(np.isinf(judged).sum())},
            "height_over_camera_not_judged": int(np.isnan(h).sum())}


def _run_far_explains(run: Path) -> bool:
    """The run's ``masks.far_explains`` (RUN/config.yaml; False without one), so the relative motion
    reported is the one its masks stage judged."""
    if not (run / "config.yaml").is_file():
        return False
    from mcdepth_train.config import load_config

    return load_config([run / "config.yaml"]).masks.far_explains


def _weighted(rows: list[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in rows)
    return sum(e * n for e, n in rows) / total if total else None


def format_table(result: dict) -> str:
    lines = mask_table(result["masks"], result["frames"])
    for kind, row in result["moving_instances"].items():
        spread = "-" if row["relative_motion_p10_p50_p90"] is None else " / ".join(f"{x:.2f}" for x in row["relative_motion_p10_p50_p90"])
        above = row["height_over_camera_above"]
        median = "-" if row["height_over_camera_median"] is None else f"{row['height_over_camera_median']:.2f}"
        lines.append(f"called moving, mostly {kind}: {row['count']} instances, relative motion p10/p50/p90 {spread}; "
                     f"height over camera median {median}, > 1: {above['1']}, > 3: {above['3']} (above the horizon: {above['inf']})")
    if "object_shape" in result:
        o = result["object_shape"]
        lines.append(f"shape of the {o['instances']} moving instances (AbsRel at the true median): "
                     f"object depth o_k {o['object_depth']:.3f}, stage 1 {o['stage1']:.3f}")
    if "labels" in result:
        lines.append(f"{'pixels':<12}{'count':>10}{'label AbsRel':>14}{'stage1 AbsRel':>15}")
        for region, row in result["labels"].items():
            cells = ["-" if row[s] is None else f"{row[s]:.3f}" for s in ("label", "stage1")]
            lines.append(f"{region:<12}{row['pixels']:>10}{cells[0]:>14}{cells[1]:>15}")
    if "hit_depth_ratio" in result:
        h = result["hit_depth_ratio"]
        label, stage1 = (" / ".join(f"{x:.2f}" for x in h[f"{k}_p10_p50_p90"]) for k in ("label", "stage1"))
        lines.append(f"depth ratio (scaled / true, p10/p50/p90 over the {h['frames']} frames with found movers) on the moving "
                     f"pixels found: label {label}, stage 1 {stage1}")
    if "road_by_row" in result:
        cells = [f"{y}: {r['plane']:.2f}/{r['stage1']:.2f}" for y, r in result["road_by_row"].items()]
        lines.append("road plane / stage 1 over the true road, by image row (scaled / true): " + ", ".join(cells))
    for kind, h in result.get("hit_depth_ratio_by_kind", {}).items():
        label, stage1 = (" / ".join(f"{x:.2f}" for x in h[f"{k}_p10_p50_p90"]) for k in ("label", "stage1"))
        lines.append(f"  per instance called moving, mostly {kind} ({h['instances']}): label {label}, stage 1 {stage1}")
    return "\n".join(lines)


def synth_run_main(argv: list[str] | None, description: str, evaluate, table, run_help: str, print_json: bool = False) -> int:
    """The command line of a bench that scores a synthetic run against its generator (this one,
    ``depth_by_kind.py``, ``contact_cue.py``): ``--run RUN [--synth DIR] [--json OUT]``;
    ``evaluate(run, synth) -> dict``, ``table(result) -> str``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help=run_help)
    parser.add_argument("--synth", type=Path, default=None, help="the synthetic dataset it trained on (default: RUN/data, else RUN/cache/synthetic-*)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    synth = args.synth or default_synth(args.run)
    if not (synth / "synth").is_dir():
        parser.error(f"--synth: {synth} has no synth/ folder (a `mcdepth-train synth --format both` output)")
    try:
        result = evaluate(args.run, synth)
    except (FileNotFoundError, KeyError) as exc:
        parser.error(f"--run {args.run}: {exc}")
    print(table(result))
    if print_json:
        print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return synth_run_main(argv, __doc__, evaluate_run, format_table, "a run folder with masks/ (and pseudo/)", print_json=True)


if __name__ == "__main__":
    sys.exit(main())
