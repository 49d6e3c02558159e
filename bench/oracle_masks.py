"""Stages 2-3 with oracle moving-object masks: DSA, pseudo labels and stage 3 without the motion net.

The method's later stages need the moving objects that stage 1's motion net finds. When that net
has not learned yet (short CPU runs: docs/stage1.md), this benchmark asks what the rest of the
method does with the masks it would get from a perfect one. It takes a finished stage 1 from a
``bench/accuracy.py`` run (its ``method`` folder) and, in a copy of it:

1. writes the generator's instance masks as the ``folder`` instance source (``masks.source=folder``);
2. replaces stage 1's dynamic evidence with the generator's moving-object masks (``--evidence
   stage1`` keeps stage 1's own: then only the instances are oracle, as from a perfect segmenter in
   the semantic-prior variant, and the shipped rules decide which objects move);
3. runs the real masks rules, object net, DSA, pseudo labels, stage 3 and self-training;
4. evaluates stage 1 and every stage-3 round on the held-out test sequences, and again on the
   training frames (self-supervised depth is often trained on the very bags it is used on).

Everything after step 2 is the shipped code. Ground truth enters only as those two mask inputs
(an oracle, marked as such in every output) and in the evaluation. Stage-1 depth, poses and
correspondences are the trained network's.

    python bench/accuracy.py --out runs/accuracy
    python bench/oracle_masks.py --stage1-run runs/accuracy/method --out runs/oracle_masks
    python bench/oracle_masks.py --stage1-run runs/accuracy/method --out runs/segmenter --evidence stage1
    python bench/oracle_masks.py --stage1-run runs/accuracy/method --out runs/oracle_seeds --seeds 0 1 2
    python bench/oracle_masks.py --stage1-run R --out OUT --evidence stage1 masks.contact_ratio=1.5 [--seeds 0 1 2]

``--seeds`` trains stage 3 once per ``stage3.seed`` on the same stage 1 and labels (each in
``OUT/seed_<S>``, which also redoes the deterministic masks, object net and DSA: about 8 minutes
at three drives) and writes the spread to ``OUT/oracle_masks_seeds.{md,json}``. (Before
2026-12-07 it set ``run.seed``, which stage 1's fingerprint reads: each seed retrained stage 1.)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def oracle_evidence(sample: dict, shape: tuple[int, int]) -> np.ndarray:
    """The generator's moving-object mask of a sample's frame 0 at ``shape`` (nearest)."""
    from mcdepth_train.data import keys

    if keys.DYNAMIC_MASK not in sample:
        raise ValueError("the data set has no dynamic_mask: the oracle needs the synthetic generator's ground truth")
    dyn = sample[keys.DYNAMIC_MASK].float()[None]
    return torch.nn.functional.interpolate(dyn, size=shape, mode="nearest")[0, 0].numpy() > 0.5


def oracle_instances(sample: dict) -> np.ndarray:
    """[N,H,W] bool: one mask per instance id in the sample's frame-0 instance map."""
    from mcdepth_train.data import keys

    if keys.INSTANCE_MAP not in sample:
        raise ValueError("the data set has no instance_map: the oracle needs the synthetic generator's ground truth")
    ids = sample[keys.INSTANCE_MAP][0].numpy()
    return np.stack([ids == k for k in np.unique(ids) if k > 0]) if (ids > 0).any() else np.zeros((0, *ids.shape), bool)


def object_tables(cfg, run_dir: Path, every: int = 3) -> tuple[dict, dict]:
    """(:func:`per_object_errors`, :func:`per_kind_objects`) from one pass over the training frames,
    so each frame's sample and stage records are read once."""
    from mcdepth_train.data import keys
    from mcdepth_train.geometry.ground_contact import fit_ground_plane, ground_contact_depth, ground_contact_scale
    from mcdepth_train.stages.frames import frames_dataset, load_frame

    dataset = frames_dataset(cfg)
    rows: dict[str, list[float]] = {k: [] for k in ("stage1", "dsa", "ground_contact", "true_scale",
                                                   "dsa_scale_error", "ground_contact_scale_error", "stage1_scale_error",
                                                   "ground_contact_depth_error")}
    kind_rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for i in range(0, len(dataset), every):
        sample = dataset[i]
        rec = load_frame(run_dir / "masks" / "frames", i)
        objects = load_frame(run_dir / "objects" / "frames", i)
        gt, ids = sample[keys.DEPTH_GT][0].numpy(), sample[keys.INSTANCE_MAP][0].numpy().astype(int)
        stage1 = rec["stage1_depth"].astype(np.float32)
        object_depth = objects["object_depth"].astype(np.float32)
        _kind_rows(kind_rows, dataset.scene_truth(i)["kinds"], rec, objects, object_depth, gt, ids, stage1)
        valid = gt > 0
        if gt.shape != stage1.shape or not valid.any():
            continue
        scales = load_frame(run_dir / "dsa" / "frames", i)["scales"]
        image_scale = np.median(gt[valid]) / np.median(stage1[valid])
        plane = fit_ground_plane(stage1, rec["ground"])
        for k in np.flatnonzero(rec["moving"] & rec["usable"]):
            m = rec["instances"][k] & valid
            if m.sum() < 10 or not np.isfinite(scales[k]):
                continue
            g, o = gt[m], object_depth[k][m]
            contact = ground_contact_scale(stage1, rec["ground"], object_depth[k], rec["instances"][k], plane)
            contact_depth = ground_contact_depth(plane, rec["instances"][k])
            if np.isfinite(contact_depth):
                rows["ground_contact_depth_error"].append(float(contact_depth * image_scale / np.median(g) - 1))
            candidates = {"stage1": stage1[m] * image_scale, "dsa": scales[k] * o * image_scale,
                          "true_scale": o * np.median(g) / np.median(o)}
            if np.isfinite(contact):
                candidates["ground_contact"] = contact * o * image_scale
            for name, pred in candidates.items():
                rows[name].append(float(np.mean(np.abs(pred - g) / g)))
                if name != "true_scale":
                    rows[f"{name}_scale_error"].append(float(np.median(pred) / np.median(g) - 1))
    per_object = {k: (float(np.median(v)) if v else None) for k, v in rows.items()}
    errors = rows["ground_contact_depth_error"]
    per_object["ground_contact_depth_error_p10_p90"] = [float(np.percentile(errors, q)) for q in (10, 90)] if errors else None
    per_object["objects"] = len(rows["stage1"])

    per_kind = {}
    for kind, values in sorted(kind_rows.items()):
        v = np.array(values)
        par = v[np.isfinite(v[:, 0]), 0]
        per_kind[kind] = {"objects": len(v), "object_shape_abs_rel": float(np.median(v[:, 1])),
                          "stage1_shape_abs_rel": float(np.median(v[:, 2])),
                          "parallax_px_p10_p50_p90": [float(np.percentile(par, q)) for q in (10, 50, 90)] if len(par) else None,
                          "below_min_parallax": float(np.mean(par < cfg.objects.min_parallax_px)) if len(par) else None,
                          "flagged_moving": float(np.mean(v[:, 3]))}
    return per_object, per_kind


def _kind_rows(rows: dict, kinds: dict, rec: dict, objects: dict, object_depth: np.ndarray, gt: np.ndarray,
               ids: np.ndarray, stage1: np.ndarray) -> None:
    """Append (parallax, stored shape error, stage-1 shape error, flagged moving) per usable object, by kind."""
    from mcdepth_train.eval.metrics import shape_abs_rel

    for k in np.flatnonzero(rec["usable"]):
        m = rec["instances"][k] & (gt > 0)
        if m.sum() < 10:
            continue
        values, counts = np.unique(ids[m], return_counts=True)
        kind = kinds.get(int(values[counts.argmax()]), "other")
        parallax = float(objects["parallax_px"][k]) if "parallax_px" in objects else float("nan")
        rows.setdefault(kind, []).append((parallax, shape_abs_rel(gt[m], object_depth[k][m]), shape_abs_rel(gt[m], stage1[m]),
                                          float(rec["moving"][k])))


def per_object_errors(cfg, run_dir: Path, every: int = 3) -> dict:
    """Moving objects of every ``every``-th training frame: medians of AbsRel (image median-scaled, as
    the evaluation) for stage 1, the DSA-scaled and ground-contact-scaled object depth and the object
    depth at its true scale; the median relative scale error of DSA, ground contact and stage 1; and
    the median relative error (with its 10th and 90th percentiles) of the ground-contact depth
    against the object's true median depth, which ``pseudo.max_ratio_to_ground`` vets labels with."""
    return object_tables(cfg, run_dir, every)[0]


def per_kind_objects(cfg, run_dir: Path, every: int = 3) -> dict:
    """Usable objects of every ``every``-th training frame, grouped by the generator's kind of car:
    the object net's parallax (10th/50th/90th percentile, px), the fraction below
    ``objects.min_parallax_px``, the median shape error (AbsRel after scaling each object's depth
    to its true median) of the stored object depth and of stage 1's depth, and the fraction the
    masks stage flagged as moving (for a parked car, a false mover; for the others, recall)."""
    return object_tables(cfg, run_dir, every)[1]


def bench_config(stage1_run: Path, out: Path, progress: bool, seed: int | None = None, overrides: list[str] | None = None):
    """Stage 1's config for the later stages in ``out``: ``overrides`` applied, ``seed`` as
    ``stage3.seed`` (``run.seed`` stays: stage 1's fingerprint reads it, and a copied stage 1 must
    stay up to date), instances from the oracle folder."""
    from mcdepth_train.config import load_config

    cfg = load_config([stage1_run / "config.yaml"], list(overrides or []))
    cfg.run.out_dir, cfg.run.progress = str(out), progress
    if seed is not None:
        cfg.stage3.seed = seed
    cfg.masks.source, cfg.masks.instance_folder = "folder", str(out / "oracle_instances")
    return cfg


def prepare(stage1_run: Path, out: Path, progress: bool, evidence: str = "oracle", seed: int | None = None,
            overrides: list[str] | None = None) -> "object":
    """Copy stage 1, write the oracle instance folder (and, with ``evidence="oracle"``, the oracle
    dynamic evidence; with "stage1", stage 1's own motion evidence is kept); the config for the rest
    (:func:`bench_config`)."""
    from tqdm import tqdm

    from mcdepth_train.config import save_config
    from mcdepth_train.stages.pipeline import load_manifest, save_manifest
    from mcdepth_train.stages.frames import frames_dataset, load_frame, save_frame
    from mcdepth_train.stages.masks.instances import write_folder_instances
    from mcdepth_train.stages.masks.run import MASKS_DIR, stage1_pass

    cfg = bench_config(stage1_run, out, progress, seed, overrides)
    folder = Path(cfg.masks.instance_folder)
    if not (out / "stage1").is_dir():
        shutil.copytree(stage1_run / "stage1", out / "stage1")
        # Only stage 1's entry: the later stages are new here (a changed entry would make the
        # pipeline move the oracle records written below aside as superseded).
        manifest = load_manifest(stage1_run)
        manifest["stages"] = {"stage1": manifest["stages"]["stage1"]}
        save_manifest(out, manifest)
    save_config(cfg, out / "config.yaml")
    dataset = frames_dataset(cfg)
    oracle = ["instances", "dynamic_evidence"] if evidence == "oracle" else ["instances"]
    done = out / "oracle_ready.json"
    if not done.is_file():
        stage1_dir = stage1_pass(cfg, out, dataset)  # the trained stage 1's depth, poses and motion
        for i in tqdm(range(len(dataset)), desc="oracle masks", disable=not progress):
            sample, record = dataset[i], load_frame(stage1_dir, i)
            write_folder_instances(folder, str(record["sequence"]), int(record["frame"]), oracle_instances(sample))
            if evidence == "oracle":
                record["dynamic_evidence"] = oracle_evidence(sample, record["dynamic_evidence"].shape)
                save_frame(stage1_dir, i, **record)
        shutil.rmtree(out / MASKS_DIR / "frames", ignore_errors=True)
        done.write_text(json.dumps({"frames": len(dataset), "oracle": oracle}))
    elif json.loads(done.read_text()).get("oracle") != oracle:
        raise SystemExit(f"{out} was prepared with other --evidence; use another --out")
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage1-run", required=True, type=Path, help="a run folder with a finished stage 1 and config.yaml "
                        "on synthetic data (bench/accuracy.py's OUT/method)")
    parser.add_argument("--out", default="runs/oracle_masks", type=Path, help="benchmark folder (resumable)")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--evidence", choices=("oracle", "stage1"), default="oracle",
                        help="moving-pixel evidence: the generator's (default), or stage 1's own motion net's, so only the "
                             "instances are oracle (a perfect segmenter, the semantic-prior variant) and the shipped rules "
                             "(>= 50%% moving pixels, central strip) decide which objects move")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train stage 3 once per stage3.seed (the same stage 1 and labels), each in OUT/seed_<S>, and "
                             "report the spread (default: one run in OUT with stage 1's seed)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE for stages 2-3 (not stage 1, which is copied), e.g. masks.contact_ratio=1.5; "
                        "before --seeds, which takes every number after it")
    args = parser.parse_args(argv)
    from mcdepth_train.stages.workflow import TRAIN_SECTIONS

    stage1_reads = (*TRAIN_SECTIONS, "stage1")  # what stage 1's fingerprint reads: a change would retrain it
    for override in args.overrides:
        key = override.split("=", 1)[0]
        if any(key == s or key.startswith(s + ".") for s in stage1_reads):
            parser.error(f"overrides: {key} is read by stage 1, which is copied from --stage1-run "
                         f"(not here: {', '.join(stage1_reads)})")
    if not (args.stage1_run / "config.yaml").is_file() or not (args.stage1_run / "stage1").is_dir():
        parser.error(f"--stage1-run {args.stage1_run}: needs config.yaml and a stage1/ folder")

    command = " ".join(["python bench/oracle_masks.py", *(argv if argv is not None else sys.argv[1:])])
    if args.seeds is None:
        run_once(args, args.out, None, command)
        return 0
    from seed_spread import summarise, summary_text

    started = time.monotonic()
    tag = "oracle masks" if args.evidence == "oracle" else "oracle instances"
    per_seed = {seed: run_once(args, args.out / f"seed_{seed}", seed, command)["results"] for seed in args.seeds}
    summary = summarise(per_seed, "stage 1", f"stage 3 ({tag})")
    summary.update(stage1_run=str(args.stage1_run), minutes=(time.monotonic() - started) / 60, command=command)
    text = summary_text(summary)
    (args.out / "oracle_masks_seeds.md").write_text(text)
    (args.out / "oracle_masks_seeds.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nover stage-3 seeds {args.seeds} (one stage 1 and one set of labels):\n" + text)
    return 0


def run_once(args, out: Path, seed: int | None, command: str) -> dict:
    """Stages 2-3 on the oracle masks in OUT, evaluated on the held-out and the training frames."""
    from mcdepth_train.eval.report import markdown_table
    from mcdepth_train.eval.run import evaluate_run
    from mcdepth_train.stages.frames import stage_checkpoint
    from mcdepth_train.stages.workflow import method_pipeline

    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = prepare(args.stage1_run, out, args.progress, args.evidence, seed, args.overrides)
    except ValueError as exc:  # a bad override: ConfigError names the key
        raise SystemExit(f"oracle_masks: {exc}")
    method_pipeline(with_eval=False, with_export=False).run(cfg, out)

    tag = "oracle masks" if args.evidence == "oracle" else "oracle instances"
    checkpoints = {"stage 1": stage_checkpoint(out, "stage1"), f"stage 3 ({tag})": stage_checkpoint(out, "stage3/round0")}
    for k in range(1, cfg.stage3.self_training_rounds + 1):
        checkpoints[f"stage 3 + {k} self-training ({tag})"] = stage_checkpoint(out, f"stage3/round{k}")
    results = evaluate_run(cfg, checkpoints, out / "eval", split="test")["results"]
    # The same nets on the frames they trained on: the fleet case of training on the bags one deploys on.
    results_train = evaluate_run(cfg, checkpoints, out / "eval_train", split="train")["results"]
    s1, s3 = results["stage 1"], results[f"stage 3 ({tag})"]
    change = {region: (s3[region]["abs_rel"] - s1[region]["abs_rel"]) / s1[region]["abs_rel"]
              for region in ("dynamic", "static", "all") if s1.get(region) and s3.get(region)}
    read = lambda name: json.loads((out / name / "summary.json").read_text())  # noqa: E731
    per_object, per_kind = object_tables(cfg, out)
    oracle = ("instances and moving-object masks from the generator" if args.evidence == "oracle" else
              "instances from the generator; which move, from stage 1's motion evidence and the central-strip rule")
    summary = {"oracle": oracle + "; everything else trained",
               "results": results, "stage3_vs_stage1_abs_rel_change": change, "results_training_frames": results_train,
               "masks": read("masks"), "dsa": read("dsa"), "pseudo_labels": read("pseudo").get("label_vs_gt"),
               "per_moving_object": per_object, "per_kind": per_kind,
               "minutes": (time.monotonic() - started) / 60,
               "command": command}
    text = markdown_table(results)
    text += "\nstage 3 vs stage 1 (AbsRel): " + ", ".join(f"{r} {100 * c:+.1f}%" for r, c in change.items()) + "\n"
    text += "\non the training frames (the same nets):\n" + markdown_table(results_train)
    labels = summary["pseudo_labels"]
    if labels and labels["pseudo_label"].get("dynamic") and labels["stage1"].get("dynamic"):
        text += (f"training frames, dynamic region: pseudo label AbsRel {labels['pseudo_label']['dynamic']['abs_rel']:.3f} "
                 f"vs stage 1 {labels['stage1']['dynamic']['abs_rel']:.3f}\n")
    objects = read("objects")
    why = ("objects.shape_source=stage1" if objects.get("shape_source") == "stage1"
           else f"parallax below objects.min_parallax_px={cfg.objects.min_parallax_px}")
    kept = objects.get("depth_from_stage1", objects.get("depth_from_stage1_low_parallax"))  # the key's name before 2026-12-06
    text += f"object net: {objects.get('objects')} objects, {kept} kept stage 1's shape ({why})\n"
    dsa = summary["dsa"]
    text += (f"DSA: {dsa.get('method')}, {dsa.get('static_objects')} static objects, held-out median relative "
             f"scale error {dsa.get('held_out_median_rel_error')}\n")
    po = summary["per_moving_object"]
    if po["objects"]:
        text += (f"per moving object (medians over {po['objects']}, every third training frame): AbsRel stage 1 "
                 f"{po['stage1']:.3f}, DSA-scaled {po['dsa']:.3f}, ground-contact-scaled {po['ground_contact']:.3f}, "
                 f"true-scaled object depth {po['true_scale']:.3f}; scale error DSA {100 * po['dsa_scale_error']:+.1f}%, "
                 f"ground contact {100 * po['ground_contact_scale_error']:+.1f}%, stage 1 {100 * po['stage1_scale_error']:+.1f}%\n")
    if po.get("ground_contact_depth_error") is not None:
        p10, p90 = po["ground_contact_depth_error_p10_p90"]
        text += (f"ground-contact depth vs the object's true depth: median {100 * po['ground_contact_depth_error']:+.1f}% "
                 f"(10th-90th percentile {100 * p10:+.1f}%..{100 * p90:+.1f}%)\n")
    text += ("\nby kind of car (usable objects): parallax px p10/p50/p90, share below objects.min_parallax_px, "
             "shape AbsRel stored / stage 1, share flagged moving\n")
    for kind, row in summary["per_kind"].items():
        par = "/".join(f"{x:.2f}" for x in row["parallax_px_p10_p50_p90"]) if row["parallax_px_p10_p50_p90"] else "-"
        below = f"{row['below_min_parallax']:.2f}" if row["below_min_parallax"] is not None else "-"
        text += (f"  {kind:<9} {row['objects']:>5}  {par:>16}  {below:>5}  "
                 f"{row['object_shape_abs_rel']:.3f} / {row['stage1_shape_abs_rel']:.3f}  {row['flagged_moving']:.2f}\n")
    guard = read("pseudo").get("scale_guard")
    if guard:
        text += (f"ground check (pseudo.max_ratio_to_ground={cfg.pseudo.max_ratio_to_ground}): {guard['left_out_off_ground']} of "
                 f"{guard['moving_objects']} moving objects left out of the labels\n")
    (out / "oracle_masks.md").write_text(text)
    (out / "oracle_masks.json").write_text(json.dumps(summary, indent=2, default=str))
    print(text)
    print(json.dumps({k: summary[k] for k in ("stage3_vs_stage1_abs_rel_change", "masks", "dsa", "pseudo_labels",
                                             "per_moving_object", "minutes")},
                     indent=2, default=str))
    return summary


if __name__ == "__main__":
    sys.exit(main())
