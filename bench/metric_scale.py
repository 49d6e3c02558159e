"""Metric scale checked against LiDAR: an exported model through the node's own ``camera_height`` scale code.

Runs ``model.onnx`` with the node's preprocessing (``mcdepth_ros.preprocess``) on every frame of a
real sequence in order, feeds each depth to ``mcdepth_ros.scale.DepthScaler(mode='camera_height')``
(RANSAC ground plane on the lower image, factor = camera height / plane distance, smoothed over
time), and compares the scaled depth with LiDAR where a scan exists:

- the shared KITTI drive (``kitti_sfnd_2011_09_26``, 78 frames, scans at frames 0, 2, 4, 6), and
- TRI's KITTI_tiny (7 frames, projected Velodyne depth on each).

For each frame with LiDAR: the median over its points of LiDAR / scaled prediction, with the running
factor at that frame, with that frame's own fit (no smoothing), and with the factor the sequence
settles to (its last value; a net's scale is the same on every frame, so the settled factor
applies to the early frames too). Overall: the median and p10-p90 of the per-point ratios.
Settling: the first frame after which the running factor stays within 5% of its final value.
Goal (issue 15): median within 5% of 1.0, spread within +-10%.

usage: OMP_NUM_THREADS=1 python bench/metric_scale.py --model DIR [--camera-height 1.65] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def sequence_frames(name: str):
    """(frame number, RGB uint8 native, K native, LiDAR depth or None) of a shared KITTI sequence, in order."""
    from mcdepth_train.data.kitti import KittiDataset

    if name == "kitti_sfnd":
        root, folder = SHARED / "kitti_sfnd_2011_09_26" / "images", "KITTI/2011_09_26"
    else:
        root, folder = SHARED / "kitti_tiny_drive_0023", "2011_09_26/2011_09_26_drive_0023_sync"
    ds = KittiDataset(root, None, gt="auto", frame_ids=[0], height=64, width=192, num_scales=1)
    for index in range(len(ds)):
        raw = ds.load(index)
        if raw.sequence.startswith(folder):
            yield raw.frame, raw.images[0], raw.K, raw.maps.get("depth_gt")


def measure(model_dir: Path, sequence: str, camera_height: float, max_depth: float = 80.0) -> dict:
    import cv2
    import numpy as np

    from mcdepth_ros.contract import load_contract
    from mcdepth_ros.preprocess import prepare_input
    from mcdepth_ros.scale import DepthScaler, fit_ground_plane
    from mcdepth_train.export.onnx_export import ort_session

    contract = load_contract(model_dir)
    session = ort_session(model_dir / "model.onnx", threads=1)
    scaler = DepthScaler("camera_height", factor=1.0, camera_height=camera_height)
    factors, checks = [], []
    for frame, rgb, K, gt in sequence_frames(sequence):
        y = session.run([contract.output_name], {contract.input_name: prepare_input(rgb, contract)})[0][0, 0]
        depth = 1.0 / np.maximum(y, 1e-6) if contract.output_kind == "inv_depth" else y
        h, w = depth.shape
        K_net = K.copy()
        K_net[0] *= w / rgb.shape[1]
        K_net[1] *= h / rgb.shape[0]
        K_net[0, 2] = (K[0, 2] + 0.5) * w / rgb.shape[1] - 0.5
        K_net[1, 2] = (K[1, 2] + 0.5) * h / rgb.shape[0] - 0.5
        factor = scaler.update(depth, K_net)
        own = fit_ground_plane(depth, K_net)
        factors.append((frame, factor))
        if gt is not None:
            native = cv2.resize(depth, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
            valid = (gt > 1e-3) & (gt < max_depth)
            checks.append({"frame": frame, "gt": gt[valid], "pred": native[valid], "running": factor,
                           "own": camera_height / own.distance if own is not None else float("nan")})
    final = factors[-1][1]
    settled = next((f for i, (f, _) in enumerate(factors) if all(abs(v / final - 1) <= 0.05 for _, v in factors[i:])), None)

    def stats(which: str) -> dict:
        per_frame, pooled = [], []
        for c in checks:
            s = final if which == "settled" else c[which]
            r = c["gt"] / (c["pred"] * s)
            per_frame.append({"frame": c["frame"], "median": float(np.median(r)), "factor": float(s)})
            pooled.append(r)
        allr = np.concatenate(pooled) if pooled else np.zeros(0)
        ok = allr[np.isfinite(allr)]
        return {"per_frame": per_frame, "median": float(np.median(ok)) if ok.size else float("nan"),
                "p10": float(np.percentile(ok, 10)) if ok.size else float("nan"), "p90": float(np.percentile(ok, 90)) if ok.size else float("nan")}

    return {"sequence": sequence, "frames": len(factors), "lidar_frames": [c["frame"] for c in checks], "final_factor": final,
            "settled_at_frame": settled, "fits_used": scaler.fits_used, "fits_rejected": scaler.fits_rejected,
            "running": stats("running"), "own_fit": stats("own"), "settled": stats("settled")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="exported model folder (model.onnx + model.json)")
    parser.add_argument("--camera-height", type=float, default=1.65, help="camera above the road, metres (KITTI: 1.65)")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)

    results = [measure(args.model, s, args.camera_height) for s in ("kitti_sfnd", "kitti_tiny")]
    lines = ["| sequence | frames | fits used/rejected | settled at frame | final factor | factor | LiDAR/pred median | p10 | p90 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for which in ("running", "own_fit", "settled"):
            s = r[which]
            lines.append(f"| {r['sequence']} | {r['frames']} | {r['fits_used']}/{r['fits_rejected']} | {r['settled_at_frame']} | "
                         f"{r['final_factor']:.3f} | {which} | {s['median']:.3f} | {s['p10']:.3f} | {s['p90']:.3f} |")
    print("\n".join(lines))
    for r in results:
        print(r["sequence"], "per frame (running factor):", ", ".join(f"{p['frame']}: {p['median']:.3f} (x{p['factor']:.3f})" for p in r["running"]["per_frame"]))
    text = json.dumps(results, default=float)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
