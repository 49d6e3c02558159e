"""Mask rules on the synthetic generator with oracle stage-1 outputs (true depth, pose, residual motion).

Measures what the masks stage can reach when stage 1 is perfect: dynamic-mask IoU against the
generator's true moving-object masks and static-object recall, for two instance sources: a perfect
segmenter (the generator's instance map, as the ``folder`` source would deliver) and the connected
components of the dynamic evidence (the self-supervised source before its Mask R-CNN).

    python bench/stage2_masks_oracle.py --sequences 3 --frames 10 --height 96 --width 320
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def oracle_stage1(seq, ref: int, sources=(-1, 1)):
    """True depth [1,1,H,W], K [1,3,3], {s: src_from_ref}, {s: residual flow [1,2,H,W]} of frame ``ref``."""
    from mcdepth_train.geometry import backproject, project

    f_ref = seq.frames[ref]
    depth = np.where(f_ref.depth > 0, f_ref.depth, 1000.0).astype(np.float64)  # sky: far away
    K = torch.from_numpy(seq.K).double()[None]
    d = torch.from_numpy(depth)[None, None]
    pts = backproject(d, torch.linalg.inv(K))[0].reshape(3, -1).numpy()
    world = f_ref.cam_pose[:3, :3] @ pts + f_ref.cam_pose[:3, 3:]
    inst = f_ref.instance_map.reshape(-1)
    poses, flows = {}, {}
    for s in sources:
        f_src = seq.frames[ref + s]
        src_from_ref = np.linalg.inv(f_src.cam_pose) @ f_ref.cam_pose
        moved = world.copy()
        for k, obj_ref in f_ref.object_poses.items():
            sel = inst == k
            if sel.any() and k in f_src.object_poses:
                T = f_src.object_poses[k] @ np.linalg.inv(obj_ref)
                moved[:, sel] = T[:3, :3] @ world[:, sel] + T[:3, 3:]
        cam_src = np.linalg.inv(f_src.cam_pose)
        true_pts = cam_src[:3, :3] @ moved + cam_src[:3, 3:]
        h, w = depth.shape
        p_true, _ = project(torch.from_numpy(true_pts).reshape(1, 3, h, w), K)
        p_rigid, _ = project(torch.from_numpy(pts).reshape(1, 3, h, w), K, torch.from_numpy(src_from_ref)[None])
        poses[s] = torch.from_numpy(src_from_ref)[None].float()
        flows[s] = (p_true - p_rigid).float()
    return d.float(), K.float(), poses, flows


def main() -> None:
    from mcdepth_train.config import Config
    from mcdepth_train.data.synthetic import SceneParams, render_sequence
    from mcdepth_train.stages.masks.rules import frame_masks, mask_iou, map_to_instances, static_object_recall

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--central-strip", type=float, default=None, help="override masks.central_strip_fraction (0 = rule off)")
    args = ap.parse_args()
    cfg = Config()
    if args.central_strip is not None:
        cfg.masks.central_strip_fraction = args.central_strip
    rows = {"segmenter": {"iou": [], "recall": [], "static_called_moving": 0, "static_total": 0},
            "components": {"iou": [], "recall": [], "static_called_moving": 0, "static_total": 0}}
    for seed in range(args.sequences):
        seq = render_sequence(SceneParams(height=args.height, width=args.width, num_frames=args.frames), seed=seed)
        dyn_ids = set(int(i) for i in seq.dynamic_ids)
        for ref in range(1, args.frames - 1):
            depth, K, poses, flows = oracle_stage1(seq, ref)
            id_map = seq.frames[ref].instance_map
            truth = map_to_instances(id_map)
            ids = [i for i in np.unique(id_map) if i != 0]
            true_moving = np.array([int(i) in dyn_ids for i in ids], dtype=bool)
            true_dyn = truth[true_moving].any(0) if true_moving.any() else np.zeros(id_map.shape, bool)
            # The size rule applies to the truth too: objects under 0.5 % of the image are out of scope.
            big = truth.sum(axis=(1, 2)) >= cfg.masks.min_instance_fraction * id_map.size
            for name, instances in (("segmenter", truth), ("components", None)):
                out = frame_masks(depth, K, poses, flows, instances=instances, cfg=cfg)
                if true_dyn.any():
                    rows[name]["iou"].append(mask_iou(out.instances.dynamic_mask, true_dyn))
                r, _, n = static_object_recall(out.instances.static, truth[big], true_moving[big])
                if n:
                    rows[name]["recall"].append(r)
                if name == "segmenter":
                    for m in truth[big & ~true_moving]:
                        rows[name]["static_total"] += 1
                        hit = [mask_iou(p, m) >= 0.5 for p in out.instances.masks]
                        if any(h and mv for h, mv in zip(hit, out.instances.moving)):
                            rows[name]["static_called_moving"] += 1
    summary = {name: {"dynamic_iou_mean": float(np.mean(r["iou"])) if r["iou"] else None,
                      "frames_with_motion": len(r["iou"]),
                      "static_recall_mean": float(np.mean(r["recall"])) if r["recall"] else None,
                      "frames_with_static": len(r["recall"]),
                      **({"static_objects_called_moving": f"{r['static_called_moving']}/{r['static_total']}"} if name == "segmenter" else {})}
               for name, r in rows.items()}
    print(json.dumps({"args": vars(args), "results": summary}, indent=1))


if __name__ == "__main__":
    main()
