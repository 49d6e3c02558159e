"""Does the motion net find the moving cars? Per kind of region, on held-out synthetic drives.

    python bench/motion_eval.py [--weights FILE | --checkpoint STAGE1_CKPT | --oracle-motion [grid]] --seeds S [S ...] [--json OUT]

Renders the drives of the given seeds at the demo's size and scene parameters
(``mcdepth_train/configs/demo.yaml``; with ``--checkpoint``, the checkpoint's), and runs the motion
net on its real stage-1 input (``Stage1Model.predict_motion``: the reference forward-splatted into
each source view, RAFT, splat validity, the mean-magnitude rule, back to the reference view, the
two-sided rule):

* ``--weights FILE`` (default: the shipped pre-trained weights): with the exact depth (sky at
  infinity) and the exact camera poses, so the needed motion is the cars' own;
* ``--checkpoint CKPT``: with the checkpoint's own depth, poses and motion net (``--motion-weights
  FILE``: that motion net instead, e.g. the pre-trained one on a depth+pose-only stage 1).

The motion net is measured whatever ``masks.motion_source`` a config or checkpoint names; the
override ``masks.motion_source=dis`` on the command line (before ``--seeds``) runs the masks stage's
classical source, OpenCV's DIS flow on the same input, in its place (with ``--checkpoint``: on its
depth and poses).

Per kind (``crossing``, ``oncoming``, ``lead``, ``parked``, ``background``), over every pixel of
every instance of that kind in every evaluated frame: ``mean_motion_px`` (predicted motion,
averaged over the sources), ``epe_px`` (end-point error against the needed motion: the true
source position minus the rigid projection through the depth and pose used), ``pixel_share``
(the masks stage's dynamic evidence: mean motion >= ``masks.motion_threshold_px`` and at least
``masks.min_relative_motion`` of the translational flow) and ``flagged_share``: the share of
instances (one per frame it is seen in, at least ``masks.min_instance_fraction`` of the image) that
the masks stage's own rule (``stages.masks.moving_fraction`` >= ``masks.dynamic_fraction``, before
the central-strip rule) flags as moving; for the background, the share of frames.
``observable_instances``: the instances the same rule flags when fed the needed motion itself
(exact depth and pose, whatever the motion source): what a perfect motion net could find. A far
oncoming car near the focus of expansion, or a lead car at the ego speed, moves less than the
threshold and is not observable; ``flagged_share_observable`` is the share of those found.

Goals (pass/fail in the JSON): crossing and oncoming flagged_share_observable >= 0.8 with EPE < 1 px; parked
flagged_share <= 0.05; background pixel_share < 1%. Ground truth is used for this analysis only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcdepth_train.data.synthetic_motion import REGION_KINDS, rigid_source_pixels, true_source_pixels  # noqa: E402
from mcdepth_train.networks.motion import SHIPPED_MOTION_WEIGHTS as SHIPPED_WEIGHTS  # noqa: E402

DEMO_CONFIG = ROOT / "mcdepth_train" / "configs" / "demo.yaml"
SKY_DEPTH_M = 1e4  # "exact" depth for sky pixels: far enough that the rigid model moves them by rotation only
GOALS = {"crossing": ("flagged_share_observable", ">=", 0.8), "oncoming": ("flagged_share_observable", ">=", 0.8),
         "crossing_epe": ("epe_px", "<", 1.0), "oncoming_epe": ("epe_px", "<", 1.0),
         "parked": ("flagged_share", "<=", 0.05), "background": ("pixel_share", "<", 0.01)}


def frame_batch(frames: dict, K: np.ndarray) -> dict:
    """A stage-1 sample batch (B=1) of rendered frames {frame id: SyntheticFrame}: colours (unaugmented = augmented) and K."""
    from mcdepth_train.data import keys

    batch = {}
    for f, frame in frames.items():
        image = torch.from_numpy(frame.image).permute(2, 0, 1).float()[None] / 255.0
        batch[keys.color(f, 0)] = batch[keys.color(f, 0, augmented=True)] = image
    K_t = torch.from_numpy(K).float()[None]
    batch[keys.intrinsics(0)], batch[keys.intrinsics(0, inverse=True)] = K_t, torch.linalg.inv(K_t)
    return batch


def goal_results(per_kind: dict) -> dict:
    """{goal: True/False/None (kind not seen)} for :data:`GOALS`."""
    out = {}
    for goal, (key, op, bound) in GOALS.items():
        row = per_kind.get(goal.split("_")[0])
        if not row or not row["instances"] or (key == "flagged_share_observable" and not row["observable_instances"]):
            out[goal] = None
            continue
        v = row[key]
        out[goal] = bool(v >= bound if op == ">=" else v <= bound if op == "<=" else v < bound)
    return out


class _Tally:
    """Pixel sums and instance counts per kind."""

    def __init__(self):
        self.rows = {k: {"pixels": 0, "motion": 0.0, "epe": 0.0, "above": 0, "instances": 0, "flagged": 0,
                         "observable": 0, "flagged_observable": 0} for k in REGION_KINDS}

    def add(self, kind: str, sel: np.ndarray, motion: np.ndarray, epe: np.ndarray, evidence: np.ndarray, flagged: bool,
            observable: bool) -> None:
        row = self.rows[kind]
        row["pixels"] += int(sel.sum())
        row["motion"] += float(motion[sel].sum())
        row["epe"] += float(epe[sel].sum())
        row["above"] += int(evidence[sel].sum())
        row["instances"] += 1
        row["flagged"] += int(flagged)
        row["observable"] += int(observable)
        row["flagged_observable"] += int(flagged and observable)

    def result(self) -> dict:
        out = {}
        for kind, r in self.rows.items():
            n = max(r["pixels"], 1)
            out[kind] = {"mean_motion_px": r["motion"] / n, "epe_px": r["epe"] / n, "pixel_share": r["above"] / n,
                         "flagged_share": r["flagged"] / max(r["instances"], 1), "instances": r["instances"],
                         "observable_instances": r["observable"],
                         "flagged_share_observable": r["flagged_observable"] / max(r["observable"], 1)}
        return out


def at_feature_grid(flow: torch.Tensor) -> torch.Tensor:
    """``flow`` [1,2,H,W] as RAFT could at best output it: averaged over its 1/8-resolution feature
    cells (of the :func:`raft_input_size` image) and bilinearly upsampled, as RAFT-small does."""
    import torch.nn.functional as F

    from mcdepth_train.networks.motion import raft_input_size

    h, w = flow.shape[-2:]
    rh, rw = raft_input_size(h, w)
    cells = F.interpolate(flow, size=(rh // 8, rw // 8), mode="area")
    return F.interpolate(cells, size=(h, w), mode="bilinear", align_corners=True)


def evaluate(model, cfg, seeds: list[int], frames: int, exact: bool, oracle_motion: str = "",
             unobservable: list | None = None) -> dict:
    """The per-kind table (see the module docstring) over ``frames`` reference frames of each seed.

    ``oracle_motion``: "exact" = the needed motion (exact depth and pose) in place of the net's:
    every observable instance is flagged, the ceiling of the masks stage's rules; "grid" = that
    motion at RAFT's output resolution (:func:`at_feature_grid`). ``unobservable``: a list that
    gets one row per crossing or oncoming instance the needed motion does not flag.
    """
    from mcdepth_train.data.synthetic import SyntheticScene
    from mcdepth_train.data.synthetic_folder import params_from_config
    from mcdepth_train.data.synthetic_motion import scene_truth
    from mcdepth_train.stages.masks.rules import dynamic_evidence, moving_fraction, relative_motion

    def evidence_of(flows: dict, depth: np.ndarray, poses: dict) -> np.ndarray:
        """The masks stage's dynamic evidence [H,W] for per-source reference-view motion ``flows``."""
        K_t = torch.from_numpy(scene.K).float()[None]
        relative = relative_motion([flows[f] for f in sources], torch.from_numpy(depth).float()[None, None], K_t,
                                   [torch.from_numpy(poses[f]).float()[None] for f in sources],
                                   far_explains=cfg.masks.far_explains)
        return dynamic_evidence([flows[f] for f in sources], cfg.masks.motion_threshold_px, relative,
                                cfg.masks.min_relative_motion)[0, 0].numpy()

    params = params_from_config(cfg.data)
    sources = model.source_ids
    reach = max(abs(f) for f in sources)
    min_pixels = max(int(cfg.masks.min_instance_fraction * params.height * params.width), 1)
    tally = _Tally()
    for seed in seeds:
        scene = SyntheticScene(params, seed)
        kinds = {i.id: i.kind for i in scene.instances}
        refs = np.unique(np.linspace(reach, params.num_frames - 1 - reach, frames).round().astype(int))
        for ref in refs:
            rendered = {f: scene.render(int(ref) + f) for f in [0, *sources]}
            batch = frame_batch(rendered, scene.K)
            instance_map = rendered[0].instance_map
            gt = rendered[0].depth
            exact_depth = np.where(gt > 0, gt, SKY_DEPTH_M).astype(np.float64)
            exact_poses = {f: np.linalg.inv(scene.cam_pose(int(ref) + f)) @ scene.cam_pose(int(ref)) for f in sources}
            truth = {f: true_source_pixels(gt, instance_map, scene.K, scene_truth(scene, int(ref), int(ref) + f), f) for f in sources}
            # where a perfect motion net would show evidence: the cars' own motion through the same rules
            # (a far oncoming car near the focus of expansion moves < 1 px: no motion net can flag it)
            exact_needed_np = {f: truth[f] - rigid_source_pixels(exact_depth, scene.K, exact_poses[f]) for f in sources}
            exact_needed = {f: torch.from_numpy(v).float()[None] for f, v in exact_needed_np.items()}
            observable = evidence_of(exact_needed, exact_depth, exact_poses)
            with torch.no_grad():
                if oracle_motion:
                    depth, poses = exact_depth, exact_poses
                    flows = exact_needed if oracle_motion == "exact" else {f: at_feature_grid(v) for f, v in exact_needed.items()}
                elif exact:
                    depth, poses = exact_depth, exact_poses
                    flows, _ = model.predict_motion(batch, torch.from_numpy(depth).float()[None, None],
                                                    {f: torch.from_numpy(p).float()[None] for f, p in poses.items()})
                else:
                    out = model.infer(batch)
                    flows, depth = out["flow"], out["depth"][0, 0].double().numpy()
                    poses = {f: out["poses"][f][0].double().numpy() for f in sources}
            evidence = evidence_of(flows, depth, poses)
            motion = np.mean([flows[f][0].norm(dim=0).numpy() for f in sources], axis=0)
            epe = np.zeros_like(motion)
            for f in sources:
                needed = exact_needed_np[f] if depth is exact_depth else truth[f] - rigid_source_pixels(depth, scene.K, poses[f])
                epe += np.linalg.norm(flows[f][0].double().numpy() - needed, axis=0) / len(sources)
            background = instance_map == 0
            tally.add("background", background, motion, epe, evidence,
                      bool(moving_fraction(background[None], evidence)[0] >= cfg.masks.dynamic_fraction), False)
            for k in np.unique(instance_map):
                sel = instance_map == k
                if k == 0 or sel.sum() < min_pixels or kinds.get(int(k)) not in REGION_KINDS:
                    continue
                flagged = bool(moving_fraction(sel[None], evidence)[0] >= cfg.masks.dynamic_fraction)
                seen = bool(moving_fraction(sel[None], observable)[0] >= cfg.masks.dynamic_fraction)
                tally.add(kinds[int(k)], sel, motion, epe, evidence, flagged, seen)
                if unobservable is not None and not seen and kinds[int(k)] in ("crossing", "oncoming"):
                    own = np.mean([np.linalg.norm(exact_needed_np[f], axis=0) for f in sources], axis=0)
                    unobservable.append({"seed": seed, "frame": int(ref), "kind": kinds[int(k)], "pixels": int(sel.sum()),
                                         "median_depth_m": float(np.median(gt[sel])), "median_needed_motion_px": float(np.median(own[sel]))})
    return tally.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, default=None, help=f"motion-net weights (default: {SHIPPED_WEIGHTS.relative_to(ROOT)})")
    source.add_argument("--checkpoint", type=Path, default=None, help="a stage-1 checkpoint: its own depth, poses and motion net")
    parser.add_argument("--random-init", action="store_true", help="a randomly initialised motion net (the baseline)")
    parser.add_argument("--oracle-motion", nargs="?", const="exact", default="", choices=("exact", "grid"),
                        help="the needed motion itself in place of a net's (exact depth and pose): the rules' ceiling; "
                             "'grid': that motion at RAFT's 1/8-resolution output (cell means, bilinear upsampling)")
    parser.add_argument("--motion-weights", type=Path, default=None, help="with --checkpoint: replace its motion net by these weights")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002], help="drives to render (held out: pre-training uses seeds >= 10**7)")
    parser.add_argument("--frames", type=int, default=24, help="reference frames per drive, evenly spread")
    parser.add_argument("--config", type=Path, default=None, help=f"scene and mask parameters (default: {DEMO_CONFIG.relative_to(ROOT)}; with --checkpoint, its config)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides (data.height=..., masks.motion_threshold_px=...)")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames: expected >= 1, got {args.frames}")
    if args.random_init and (args.weights or args.checkpoint):
        parser.error("--random-init: not with --weights or --checkpoint")
    if args.oracle_motion and (args.checkpoint or args.weights or args.random_init):
        parser.error("--oracle-motion: not with --weights, --checkpoint or --random-init (no net is run)")
    if args.motion_weights is not None and args.checkpoint is None:
        parser.error("--motion-weights: only with --checkpoint")

    from mcdepth_train.config import ConfigError, apply_overrides, config_from_dict, load_config, validate
    from mcdepth_train.engine.checkpoint import load_checkpoint
    from mcdepth_train.stages.frames import load_stage1_model
    from mcdepth_train.stages.masks.run import with_masks_motion
    from mcdepth_train.stages.stage1 import Stage1Model

    torch.manual_seed(0)
    try:
        if args.checkpoint is not None:
            model, _ = load_stage1_model(args.checkpoint, "cpu")
            if args.motion_weights is not None:
                from mcdepth_train.networks.motion import load_raft_state, trained_input_scale

                model.motion.raft.load_state_dict(load_raft_state(args.motion_weights, model.motion.name, model.motion.raft))
                # run the net at the input scale it was trained at (its card), not the checkpoint's
                model.motion.input_scale = trained_input_scale(args.motion_weights) or model.motion.input_scale
            cfg = config_from_dict(load_checkpoint(args.checkpoint)["config"])
            if args.config is not None:
                cfg = load_config([args.config])
            validate(apply_overrides(cfg, args.overrides))
            label = str(args.checkpoint) + (f" + motion net {args.motion_weights}" if args.motion_weights else "")
            exact = False
        else:
            weights = "" if args.random_init or args.oracle_motion else str(args.weights or SHIPPED_WEIGHTS)
            cfg = load_config([args.config or DEMO_CONFIG], list(args.overrides) + [f"model.motion_weights={weights}"])
            model = Stage1Model.from_config(cfg).eval()
            label = {"exact": "oracle motion", "grid": "oracle motion at RAFT's output grid"}.get(args.oracle_motion)
            label, exact = label or weights or "random init", True
        # A motion net unless the command line asks for the masks stage's classical source: a
        # config's or checkpoint's default does not change what --weights/--checkpoint measure.
        if not any(o.split("=", 1)[0].strip() == "masks.motion_source" for o in args.overrides):
            cfg.masks.motion_source = "net"
        if cfg.masks.motion_source != "net":
            if args.oracle_motion or args.motion_weights is not None or args.random_init or args.weights is not None:
                parser.error(f"masks.motion_source={cfg.masks.motion_source}: runs no motion net; not with "
                             "--weights, --random-init, --motion-weights or --oracle-motion")
            model = with_masks_motion(model, cfg.masks)
            label = f"masks.motion_source={cfg.masks.motion_source}" + (f" on {args.checkpoint}" if args.checkpoint else "")
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    started = time.time()
    unobservable: list = []
    per_kind = evaluate(model, cfg, args.seeds, args.frames, exact, args.oracle_motion, unobservable)
    result = {"per_kind": per_kind, "unobservable_instances": unobservable, "seeds": list(args.seeds), "weights": label,
              "depth_and_pose": "exact" if exact else "checkpoint's own", "frames_per_seed": args.frames,
              "size": [cfg.data.height, cfg.data.width], "threshold_px": cfg.masks.motion_threshold_px,
              "goals": goal_results(per_kind), "seconds": round(time.time() - started, 1)}
    print(f"{'kind':<11} {'instances':>9} {'motion px':>9} {'EPE px':>7} {'px >= thr':>9} {'flagged':>7} "
          f"{'observable':>10} {'of those flagged':>16}")
    for kind, row in per_kind.items():
        print(f"{kind:<11} {row['instances']:>9} {row['mean_motion_px']:>9.3f} {row['epe_px']:>7.3f} "
              f"{row['pixel_share']:>9.3f} {row['flagged_share']:>7.3f} {row['observable_instances']:>10} "
              f"{row['flagged_share_observable']:>16.3f}")
    print("goals: " + ", ".join(f"{g} {'-' if ok is None else 'pass' if ok else 'FAIL'}" for g, ok in result["goals"].items()))
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
