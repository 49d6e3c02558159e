"""Inference benchmark: PyTorch, ONNX Runtime (fp32 and INT8 QDQ) and, on a GPU, CUDA and TensorRT.

Side by side, batch 1, at each size: latency median and p90 (ms), throughput (frames/s) and the
speed-up over PyTorch eager; plus the INT8 model's AbsRel against fp32 depth on real frames, and
which ops ONNX Runtime actually runs in the INT8 graph (QLinearConv vs float Conv). With
``--repeats N`` every backend is timed N times, interleaved (eager, ..., int8, eager, ...), and each
speed-up is taken within one repeat: min/median/max over the repeats show the bench's own spread
(on a shared machine the load moves between separate runs). Prints a table and writes JSON (``--json``).

    python bench/inference.py                                # random resnet18, 192x640 and 320x1024
    python bench/inference.py --checkpoint runs/x/stage3/last.pt --calib-dir FRAMES --iters 50

Goals on a CPU: ONNX Runtime fp32 >= 1.6x PyTorch eager, INT8 >= 2.5x, INT8 AbsRel cost <= 2%.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcdepth_train.export.images import folder_images, synthetic_images, to_network_input  # noqa: E402
from mcdepth_train.export.int8 import int8_accuracy, quantize_qdq  # noqa: E402
from mcdepth_train.export.onnx_export import export_depth_graph, load_depth_checkpoint, ort_session  # noqa: E402
from mcdepth_train.networks.depth import DepthInference, DepthNet  # noqa: E402

DEFAULT_FRAMES = REPO.parent / "shared/data/kitti_sfnd_2011_09_26/images/KITTI/2011_09_26/image_02/data"


def latency_stats(times_ms) -> dict:
    """Median and p90 latency (ms) and throughput (frames/s, from the mean) of batch-1 runs."""
    times = np.asarray(times_ms, dtype=np.float64)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "fps": float(1000.0 / times.mean()), "iters": int(times.size)}


def time_call(fn: Callable[[], object], iters: int, warmup: int) -> dict:
    """:func:`latency_stats` of ``iters`` timed calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return latency_stats(times)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW such as 192x640") from exc
    return h, w


def backends(net: DepthNet, fp32: Path, int8: Path | None, x: np.ndarray, threads: int, tmp: Path) -> dict[str, Callable]:
    """name -> zero-argument function running one batch-1 inference."""
    import onnxruntime as ort

    eager = DepthInference(net).eval()
    fast = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    xt = torch.from_numpy(x)
    xt_cl = xt.contiguous(memory_format=torch.channels_last)

    def run_eager():
        with torch.no_grad():
            return eager(xt)

    def run_fast():
        with torch.inference_mode():
            return fast(xt_cl)

    out: dict[str, Callable] = {"pytorch eager": run_eager, "pytorch inference_mode+channels_last": run_fast}
    s32 = ort_session(fp32, threads=threads)
    out["onnxruntime cpu fp32"] = lambda: s32.run(None, {"image": x})
    if int8 is not None:
        s8 = ort_session(int8, threads=threads)
        out["onnxruntime cpu int8 (QDQ)"] = lambda: s8.run(None, {"image": x})
    if torch.cuda.is_available():
        half = copy.deepcopy(eager).cuda().half().to(memory_format=torch.channels_last)
        xh = xt.cuda().half().contiguous(memory_format=torch.channels_last)

        def run_cuda():
            with torch.inference_mode():
                y = half(xh)
            torch.cuda.synchronize()
            return y

        out["pytorch cuda fp16"] = run_cuda
        if "CUDAExecutionProvider" in ort.get_available_providers():
            sc = ort_session(fp32, providers=["CUDAExecutionProvider"])
            out["onnxruntime cuda fp32"] = lambda: sc.run(None, {"image": x})
        from mcdepth_train.export import tensorrt as trt_build

        ok, _ = trt_build.tensorrt_available()
        if ok:  # the node's backend, with the engine the shared builder makes (host in, host out)
            from mcdepth_ros.backends.tensorrt_backend import TensorRTBackend
            from mcdepth_ros.contract import ModelContract

            contract = ModelContract(model_dir=tmp, input_name="image", output_name="depth",
                                     height=x.shape[2], width=x.shape[3])
            runner = TensorRTBackend(contract, precision="fp16")
            out["tensorrt fp16"] = lambda: runner.infer(x)
    return out


def optimized_op_counts(onnx_path: Path, threads: int, out_path: Path) -> dict[str, int]:
    """Op types of the graph ONNX Runtime's CPU provider runs after its optimisations (e.g. how many
    convs became QLinearConv in an INT8 QDQ model)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # what the provider fuses
    options.optimized_model_filepath = str(out_path)
    if threads:
        options.intra_op_num_threads = threads
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    counts: dict[str, int] = {}
    for node in onnx.load(str(out_path)).graph.node:
        if "Conv" in node.op_type or node.op_type in ("QuantizeLinear", "DequantizeLinear", "MatMulInteger"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def spread(values) -> dict:
    """min / median / max of repeated measurements."""
    values = np.asarray(values, np.float64)
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max()), "n": int(values.size)}


def bench_size(net: DepthNet, height: int, width: int, frames: list[np.ndarray], args) -> dict:
    with tempfile.TemporaryDirectory(prefix="mcdepth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        fp32 = tmp / "model.onnx"
        export_depth_graph(net, fp32, height, width)
        int8 = None
        result: dict = {"size": [height, width]}
        if not args.skip_int8:
            calib, held_out = frames[: args.calib_count], frames[args.calib_count:] or frames[:2]
            int8 = tmp / "model.int8.onnx"
            quantize_qdq(fp32, int8, [to_network_input(f, height, width) for f in calib], method=args.calib_method)
            result["int8_accuracy"] = int8_accuracy(fp32, int8, held_out, height, width)
            result["int8_ops"] = optimized_op_counts(int8, args.threads, tmp / "int8.optimized.onnx")
        x = to_network_input(frames[-1], height, width)
        runs: dict[str, list[dict]] = {}
        fns = backends(net, fp32, int8, x, args.threads, tmp)
        for repeat in range(args.repeats):
            for name, fn in fns.items():
                runs.setdefault(name, []).append(time_call(fn, args.iters, args.warmup))
                print(f"  {height}x{width} [{repeat + 1}/{args.repeats}] {name}: {runs[name][-1]['median_ms']:.1f} ms",
                      file=sys.stderr)
    result["backends"] = {}
    eager = [r["median_ms"] for r in runs["pytorch eager"]]
    for name, stats_list in runs.items():
        medians = [r["median_ms"] for r in stats_list]
        ratios = [e / m for e, m in zip(eager, medians)]  # eager over this backend, within each repeat
        stats = dict(stats_list[int(np.argsort(medians)[len(medians) // 2])])  # the repeat with the median time
        stats.update(median_ms=float(np.median(medians)), speedup_vs_eager=float(np.median(ratios)),
                     repeats_median_ms=spread(medians), repeats_speedup_vs_eager=spread(ratios))
        result["backends"][name] = stats
    return result


def table(results: list[dict]) -> str:
    lines = [f"{'size':>9}  {'backend':<38} {'median ms':>9} {'p90 ms':>8} {'fps':>7} {'x eager':>8} "
             f"{'x eager min/med/max over repeats':>32}"]
    for r in results:
        size = "x".join(map(str, r["size"]))
        for name, s in r["backends"].items():
            sp = s["repeats_speedup_vs_eager"]
            lines.append(f"{size:>9}  {name:<38} {s['median_ms']:9.1f} {s['p90_ms']:8.1f} {s['fps']:7.2f} "
                         f"{s['speedup_vs_eager']:8.2f} {sp['min']:10.2f} {sp['median']:6.2f} {sp['max']:6.2f} (n={sp['n']})")
        if "int8_ops" in r:
            lines.append(f"{size:>9}  int8 graph as ONNX Runtime runs it: {r['int8_ops']}")
        if "int8_accuracy" in r:
            a = r["int8_accuracy"]
            lines.append(f"{size:>9}  int8 AbsRel vs fp32 depth: {a['abs_rel_vs_fp32']:.4f} ({100 * a['abs_rel_vs_fp32']:.2f}%) "
                         f"on {a['eval_images']} held-out frames")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="depth checkpoint (default: a seeded random resnet18 DepthNet)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(192, 640), (320, 1024)], help="HxW sizes")
    parser.add_argument("--iters", type=int, default=20, help="timed runs per backend")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=1, help="time every backend this many times, interleaved")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--calib-dir", default=str(DEFAULT_FRAMES), help="real frames for INT8 calibration and its accuracy")
    parser.add_argument("--calib-count", type=int, default=16, help="frames used for calibration (the rest measure accuracy)")
    parser.add_argument("--calib-method", choices=("entropy", "minmax", "percentile"), default="entropy")
    parser.add_argument("--skip-int8", action="store_true", help="no INT8 model")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        net = load_depth_checkpoint(args.checkpoint)[0]
    else:
        torch.manual_seed(0)
        net = DepthNet("resnet18").eval()
    if Path(args.calib_dir).is_dir():
        frames = list(folder_images(args.calib_dir, args.calib_count + 4))
        source = args.calib_dir
    else:
        frames, source = synthetic_images(375, 1242, args.calib_count + 4), "synthetic images"
    results = [bench_size(net, h, w, frames, args) for h, w in args.sizes]
    report = {"cpu_count": os.cpu_count(), "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
              "cuda": torch.cuda.is_available(), "frames": source, "results": results}
    import onnxruntime

    report["onnxruntime"] = onnxruntime.__version__
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
