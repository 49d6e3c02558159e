"""Seconds per stage-1 training step and peak memory, with a breakdown by part.

    python bench/train_step.py                       # CPU, 192x640, batch 4
    python bench/train_step.py --device cuda --batch 12 --amp bf16
    python bench/train_step.py --height 64 --width 192 --motion-input-scale 2   # the cost of a finer RAFT grid

Parts: depth net, pose net, forward splat, RAFT, losses (the rest of the forward), backward and
optimiser step. Times are per step, averaged over the timed steps after warm-up; forward parts are
measured with module hooks (CUDA is synchronised at each boundary). Prints a table and JSON.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcdepth_train.config import load_config  # noqa: E402
from mcdepth_train.data import keys  # noqa: E402
from mcdepth_train.engine.loop import autocast_context  # noqa: E402
from mcdepth_train.geometry import intrinsics_pyramid  # noqa: E402
from mcdepth_train.stages import stage1 as stage1_module  # noqa: E402
from mcdepth_train.stages.stage1 import Stage1Model  # noqa: E402


def synthetic_batch(batch: int, height: int, width: int, num_scales: int = 4, frame_ids=(-1, 0, 1)) -> dict:
    """Smooth random frames (content does not change the cost) with KITTI-like intrinsics."""
    g = torch.Generator().manual_seed(0)
    out: dict = {}
    base = F.interpolate(torch.rand(batch, 3, height // 8, width // 8 + 2, generator=g), size=(height, width + 16), mode="bilinear")
    for f in frame_ids:
        img = base[..., 8 + 2 * f: 8 + 2 * f + width].contiguous()
        for s in range(num_scales):
            scaled = img if s == 0 else F.interpolate(img, scale_factor=0.5**s, mode="area")
            out[keys.color(f, s)] = scaled
            out[keys.color(f, s, augmented=True)] = scaled
    K = torch.tensor([[0.58 * width, 0, width / 2], [0, 1.92 * height, height / 2], [0, 0, 1.0]]).expand(batch, 3, 3)
    for s, Ks in enumerate(intrinsics_pyramid(K, num_scales)):
        out[keys.intrinsics(s)] = Ks
        out[keys.intrinsics(s, inverse=True)] = torch.linalg.inv(Ks)
    return out


class Timer:
    """Accumulates wall time per named part; synchronises CUDA at each boundary."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self.starts: dict[str, float] = {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self, name: str) -> None:
        self.sync()
        self.starts[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        self.sync()
        self.totals[name] += time.perf_counter() - self.starts.pop(name)

    def hook(self, module: torch.nn.Module, name: str) -> None:
        module.register_forward_pre_hook(lambda *_: self.start(name))
        module.register_forward_hook(lambda *_: self.stop(name))


def run(device: str, batch: int, height: int, width: int, steps: int, warmup: int, amp: str, encoder: str, motion: str,
        motion_input_scale: int = 1) -> dict:
    dev = torch.device(device)
    overrides = [f"data.height={height}", f"data.width={width}", f"model.encoder={encoder}", f"model.motion_net={motion}",
                 f"model.motion_input_scale={motion_input_scale}"]
    if motion_input_scale != 1:  # the shipped weights are for scale 1; a timing does not need trained ones
        overrides.append("model.motion_weights=")
    cfg = load_config([], overrides)
    torch.manual_seed(0)
    model = Stage1Model.from_config(cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.stage1.lr)
    data = {k: v.to(dev) for k, v in synthetic_batch(batch, height, width).items()}
    timer = Timer(dev)
    timer.hook(model.depth, "depth")
    timer.hook(model.pose, "pose")
    timer.hook(model.motion, "raft")
    original_splat = stage1_module.forward_splat

    def timed_splat(*args, **kwargs):
        timer.start("splat")
        try:
            return original_splat(*args, **kwargs)
        finally:
            timer.stop("splat")

    stage1_module.forward_splat = timed_splat
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                timer.totals.clear()
            timer.start("forward")
            with autocast_context(dev, amp):
                out = model(data, "all")
            timer.stop("forward")
            timer.start("backward+step")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.stage1.grad_clip)
            opt.step()
            timer.stop("backward+step")
    finally:
        stage1_module.forward_splat = original_splat
    t = {k: v / steps for k, v in timer.totals.items()}
    parts = {name: t.get(name, 0.0) for name in ("depth", "pose", "splat", "raft")}
    parts["losses"] = t["forward"] - sum(parts.values())
    parts["backward+step"] = t["backward+step"]
    result = {
        "device": str(dev), "batch": batch, "height": height, "width": width, "amp": amp if dev.type == "cuda" else "none",
        "encoder": encoder, "motion_net": motion, "motion_input_scale": motion_input_scale, "timed_steps": steps, "warmup_steps": warmup,
        "seconds_per_step": t["forward"] + t["backward+step"], "seconds_by_part": parts,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        result["peak_cuda_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    return result


def format_table(result: dict) -> str:
    step = result["seconds_per_step"]
    lines = [f"stage-1 training step: {result['device']}, batch {result['batch']}, {result['height']}x{result['width']}, "
             f"amp {result['amp']}, {result['threads']} threads",
             f"{'part':<15}{'s/step':>10}{'share':>8}"]
    for name, sec in result["seconds_by_part"].items():
        lines.append(f"{name:<15}{sec:>10.3f}{100 * sec / step:>7.1f}%")
    lines.append(f"{'total':<15}{step:>10.3f}{100.0:>7.1f}%")
    lines.append(f"peak RSS {result['peak_rss_gib']:.2f} GiB" + (f", peak CUDA {result['peak_cuda_gib']:.2f} GiB" if "peak_cuda_gib" in result else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=None, help="default 4 on CPU, 12 on CUDA")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--amp", default="bf16", choices=["none", "bf16", "fp16"], help="CUDA only")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--motion-net", default="raft_small")
    p.add_argument("--motion-input-scale", type=int, default=1, help="model.motion_input_scale (RAFT's input upsampling)")
    p.add_argument("--json", default="", help="also write the result to this file")
    a = p.parse_args(argv)
    batch = a.batch or (12 if a.device.startswith("cuda") else 4)
    result = run(a.device, batch, a.height, a.width, a.steps, a.warmup, a.amp, a.encoder, a.motion_net, a.motion_input_scale)
    print(format_table(result))
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
