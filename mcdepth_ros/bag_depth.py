"""``mcdepth-bag-depth IN_BAG OUT_BAG --model DIR``: the node's depth, offline, over a recorded bag.

Reads a ROS 1 or ROS 2 bag with ``rosbags`` (no ROS install needed), runs the same pipeline and
backend as ``depth_node`` on every image, and writes a new ROS 2 bag with ``<prefix>/image`` (32FC1
metres, the input header), ``<prefix>/camera_info`` (scaled to the depth size) and optionally
``<prefix>/colored``. The output is written to a temporary folder beside OUT_BAG and renamed when
complete, so an interrupted run never leaves a bag that looks finished.
"""
from __future__ import annotations

import argparse
import bisect
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .backends import BACKENDS, BackendUnavailable
from .contract import ContractError
from .conversions import ConversionError, compressed_to_rgb, image_to_rgb, numpy_to_image_fields
from .pipeline import OUTPUT_RESOLUTIONS, InferenceError, ScaleUnavailable, build_pipeline
from .postprocess import colorize
from .scale import SCALE_MODES

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
BAG_VERSION = 8  # rosbag2 metadata version Jazzy reads


class BagDepthError(ValueError):
    """Bad arguments or a bag without the needed topics; the message names what is wrong."""


@dataclass
class BagDepthOptions:
    """What :func:`run` does; the command line's options by the same names (see :func:`build_parser`)."""

    in_bag: str
    out_bag: str
    model: str
    image_topic: str = ""
    camera_info_topic: str = ""
    camera_info_tolerance: float = 0.005
    prefix: str = ""
    backend: str = "auto"
    device: str = "auto"
    threads: int = 0
    precision: str = ""
    checkpoint: str = ""
    scale_mode: str = ""
    scale_factor: float = 0.0
    camera_height: float = 1.5
    output_resolution: str = "input"
    colored: bool = False
    colormap_range: tuple[float, float] = (0.5, 50.0)
    copy_input: bool = False
    max_frames: int = 0
    overwrite: bool = False
    no_progress: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "BagDepthOptions":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcdepth-bag-depth", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("in_bag", help="Input bag: a rosbag2 folder (sqlite3/mcap) or a ROS 1 .bag file.")
    p.add_argument("out_bag", help="Output rosbag2 folder (must not exist unless --overwrite).")
    p.add_argument("--model", required=True, help="Folder with model.onnx + model.json (docs/contract.md).")
    p.add_argument("--image-topic", default="", help="Image or CompressedImage topic ('' = the bag's only image topic).")
    p.add_argument("--camera-info-topic", default="", help="CameraInfo topic ('' = the bag's only one, if any).")
    p.add_argument("--camera-info-tolerance", type=float, default=0.005,
                   help="Seconds between an image's header stamp and its camera_info's (nearest within this, before or after).")
    p.add_argument("--prefix", default="", help="Output topic prefix ('' = <image topic's parent>/depth).")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS, help="Inference backend.")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"), help="Where the backend runs.")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default).")
    p.add_argument("--precision", default="", choices=("", "fp32", "fp16", "int8"), help="TensorRT precision ('' = model.json's).")
    p.add_argument("--checkpoint", default="", help="torch.export program (.pt2) for --backend torch ('' = model.json's torch_program).")
    p.add_argument("--scale-mode", default="", choices=("",) + SCALE_MODES, help="Scale policy ('' = model.json's).")
    p.add_argument("--scale-factor", type=float, default=0.0, help="Factor for --scale-mode fixed (0 = model.json's).")
    p.add_argument("--camera-height", type=float, default=1.5, help="Camera height in metres (camera_height mode).")
    p.add_argument("--output-resolution", default="input", choices=OUTPUT_RESOLUTIONS, help="Depth at camera or network size.")
    p.add_argument("--colored", action="store_true", help="Also write <prefix>/colored (bgr8 turbo).")
    p.add_argument("--colormap-range", type=float, nargs=2, default=(0.5, 50.0), metavar=("NEAR", "FAR"),
                   help="Depth range of the colour map in metres.")
    p.add_argument("--copy-input", action="store_true", help="Copy every input message into the output bag too.")
    p.add_argument("--max-frames", type=int, default=0, help="Stop after this many images (0 = all).")
    p.add_argument("--overwrite", action="store_true", help="Replace OUT_BAG if it exists.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    return p


def _pick_topic(connections, types: tuple[str, ...], wanted: str, what: str, required: bool) -> str:
    topics = sorted({c.topic for c in connections if c.msgtype in types})
    if wanted:
        if wanted not in topics:
            raise BagDepthError(f"--{what}-topic {wanted} is not a {'/'.join(t.split('/')[-1] for t in types)} "
                                f"topic of the bag (it has: {', '.join(topics) or 'none'})")
        return wanted
    if len(topics) == 1:
        return topics[0]
    if not topics and not required:
        return ""
    raise BagDepthError(f"the bag has {len(topics)} {what} topics ({', '.join(topics) or 'none'}); choose one with --{what}-topic")


def _info_field(info, name: str) -> np.ndarray:
    """CameraInfo k/p/d/r, whose ROS 1 names are upper case (K, P, D, R)."""
    value = getattr(info, name, None)
    return np.asarray(getattr(info, name.upper()) if value is None else value, np.float64)


def _header(types, header):
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
        frame_id=header.frame_id)


def _image(types, array: np.ndarray, encoding: str, header):
    fields = numpy_to_image_fields(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], dtype=np.uint8)
    return types["sensor_msgs/msg/Image"](header=_header(types, header), **fields)


def _camera_info(types, info, result, header):
    h, w = result.depth.shape
    p = result.p if result.p is not None else _info_field(info, "p").reshape(3, 4)
    return types["sensor_msgs/msg/CameraInfo"](
        header=_header(types, header), height=h, width=w, distortion_model=info.distortion_model,
        d=_info_field(info, "d"), k=result.k.reshape(-1).astype(np.float64), r=_info_field(info, "r"), p=p.reshape(-1).astype(np.float64), binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class CameraInfoIndex:
    """The bag's camera_info messages by header stamp: an image gets the nearest within a tolerance,
    whether it was recorded before or after its camera_info."""

    def __init__(self, infos: list, tolerance_ns: int):
        infos = sorted(infos, key=lambda item: item[0])
        self.stamps = [stamp for stamp, _ in infos]
        self.infos = [info for _, info in infos]
        self.tolerance_ns = tolerance_ns

    def __len__(self) -> int:
        return len(self.infos)

    def nearest(self, stamp_ns: int):
        """The camera_info whose stamp is closest to ``stamp_ns`` within the tolerance, else None."""
        i = bisect.bisect_left(self.stamps, stamp_ns)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self.stamps) and abs(self.stamps[j] - stamp_ns) <= self.tolerance_ns:
                if best is None or abs(self.stamps[j] - stamp_ns) < abs(self.stamps[best] - stamp_ns):
                    best = j
        return None if best is None else self.infos[best]


def run(options: BagDepthOptions, log=print) -> dict:
    """Run the tool; returns the summary dict (also printed). Raises BagDepthError/ContractError/BackendUnavailable."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    o = options
    in_bag, out_bag = Path(o.in_bag), Path(o.out_bag)
    if not in_bag.exists():
        raise BagDepthError(f"IN_BAG: no such bag: {in_bag}")
    if out_bag.exists() and not o.overwrite:
        raise BagDepthError(f"OUT_BAG: {out_bag} exists (use --overwrite to replace it)")
    if o.camera_info_tolerance < 0:
        raise BagDepthError(f"--camera-info-tolerance must be >= 0, got {o.camera_info_tolerance}")
    pipeline, reason = build_pipeline(o.model, backend=o.backend, device=o.device, threads=o.threads,
                                      precision=o.precision, checkpoint=o.checkpoint, scale_mode=o.scale_mode,
                                      scale_factor=o.scale_factor, camera_height=o.camera_height,
                                      output_resolution=o.output_resolution)
    backend, scaler = pipeline.backend, pipeline.scaler
    log(f"backend: {reason}")
    typestore = get_typestore(Stores.ROS2_JAZZY)
    types = typestore.types
    errors: Counter[str] = Counter()
    counts = Counter()
    inference_ms: list[float] = []
    started = time.perf_counter()

    out_bag.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out_bag.name}.", dir=out_bag.parent))
    tmp_bag = tmp_root / out_bag.name
    try:
        with AnyReader([in_bag], default_typestore=typestore) as reader:
            image_topic = _pick_topic(reader.connections, IMAGE_TYPES, o.image_topic, "image", True)
            info_topic = _pick_topic(reader.connections, (INFO_TYPE,), o.camera_info_topic, "camera-info", False)
            prefix = o.prefix or (image_topic.rsplit("/", 1)[0] + "/depth" if image_topic.count("/") > 1 else "/depth")
            image_conns = [c for c in reader.connections if c.topic == image_topic]
            info_conns = [c for c in reader.connections if c.topic == info_topic]
            # camera_info is small: read it all first, so an image pairs with it by stamp in either order.
            # (reader.messages(connections=[]) would read every connection.)
            info_msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=info_conns)] \
                if info_conns else []
            infos = CameraInfoIndex([(_stamp_ns(m.header), m) for m in info_msgs], int(round(o.camera_info_tolerance * 1e9)))
            wanted = image_conns
            total = sum(c.msgcount for c in image_conns)
            if o.max_frames:
                total = min(total, o.max_frames)
            with Writer(tmp_bag, version=BAG_VERSION) as writer:
                out_depth = writer.add_connection(f"{prefix}/image", "sensor_msgs/msg/Image", typestore=typestore)
                out_info = writer.add_connection(f"{prefix}/camera_info", INFO_TYPE, typestore=typestore) if info_topic else None
                out_colored = writer.add_connection(f"{prefix}/colored", "sensor_msgs/msg/Image", typestore=typestore) if o.colored else None
                copies = {}
                if o.copy_input:
                    if not reader.is2:
                        raise BagDepthError("--copy-input needs a ROS 2 input bag (ROS 1 messages are not CDR)")
                    for c in reader.connections:
                        try:
                            copies[c.id] = writer.add_connection(c.topic, c.msgtype, typestore=typestore)
                        except Exception as exc:  # a type Jazzy's typestore does not know
                            raise BagDepthError(f"--copy-input: cannot copy {c.topic} ({c.msgtype}): {exc}") from exc
                    wanted = list(reader.connections)
                progress = _progress(total, not o.no_progress)
                for conn, stamp_ns, raw in reader.messages(connections=wanted):
                    if conn.id in copies:
                        writer.write(copies[conn.id], stamp_ns, raw)
                    if conn.topic != image_topic:
                        continue
                    if o.max_frames and counts["images"] >= o.max_frames:
                        break
                    counts["images"] += 1
                    progress.update(1)
                    msg = reader.deserialize(raw, conn.msgtype)
                    info = infos.nearest(_stamp_ns(msg.header)) if len(infos) else None
                    if info is None:
                        counts["without_camera_info"] += 1
                    try:
                        rgb = compressed_to_rgb(msg) if conn.msgtype.endswith("CompressedImage") else image_to_rgb(msg)
                        k = p = None
                        if info is not None:
                            if (info.height, info.width) != rgb.shape[:2]:
                                raise ConversionError(f"camera_info is {info.width}x{info.height}, image {rgb.shape[1]}x{rgb.shape[0]}")
                            k, p = _info_field(info, "k").reshape(3, 3), _info_field(info, "p").reshape(3, 4)
                        result = pipeline.run(rgb, k, p)
                    except ScaleUnavailable:
                        counts["held"] += 1
                        continue
                    except (ConversionError, InferenceError) as exc:
                        errors[type(exc).__name__] += 1
                        if sum(errors.values()) <= 5:
                            log(f"skipped image at {stamp_ns} ns: {exc}")
                        continue
                    inference_ms.append(result.inference_s * 1000.0)
                    writer.write(out_depth, stamp_ns, typestore.serialize_cdr(_image(types, result.depth, "32FC1", msg.header),
                                                                              "sensor_msgs/msg/Image"))
                    counts["depth"] += 1
                    if out_info is not None and info is not None and result.k is not None:
                        writer.write(out_info, stamp_ns, typestore.serialize_cdr(_camera_info(types, info, result, msg.header), INFO_TYPE))
                        counts["camera_info"] += 1
                    if out_colored is not None:
                        bgr = colorize(result.depth, *o.colormap_range)
                        writer.write(out_colored, stamp_ns, typestore.serialize_cdr(_image(types, bgr, "bgr8", msg.header),
                                                                                    "sensor_msgs/msg/Image"))
                        counts["colored"] += 1
                progress.close()
        if out_bag.exists():
            shutil.rmtree(out_bag)
        tmp_bag.rename(out_bag)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        pipeline.close()

    elapsed = time.perf_counter() - started
    warnings = _scale_warnings(scaler, counts, info_topic, o.camera_info_tolerance)
    summary = {
        "in_bag": str(in_bag), "out_bag": str(out_bag), "backend": backend.describe(),
        "image_topic": image_topic, "camera_info_topic": info_topic or None, "prefix": prefix,
        "images": counts["images"], "depth_written": counts["depth"], "camera_info_written": counts["camera_info"],
        "colored_written": counts["colored"], "errors": dict(errors),
        "images_without_camera_info": counts["without_camera_info"], "held_no_camera_info": counts["held"],
        "inference_ms_mean": float(np.mean(inference_ms)) if inference_ms else None,
        "seconds": round(elapsed, 3), "scale_mode": scaler.mode, "scale_factor": scaler.factor,
        "ground_fits_used": scaler.fits_used, "ground_fits_rejected": scaler.fits_rejected,
        "ground_last_inlier_fraction": scaler.last_inlier_fraction, "warnings": warnings,
    }
    log(f"{summary['depth_written']}/{summary['images']} images -> {out_bag} ({prefix}/image"
        f"{', camera_info' if counts['camera_info'] else ''}{', colored' if counts['colored'] else ''}); "
        f"errors {dict(errors) or 'none'}; backend {summary['backend']}; "
        f"mean inference {summary['inference_ms_mean'] or float('nan'):.1f} ms; {elapsed:.1f} s")
    log(f"{scaler.summary()}; {counts['without_camera_info']} of {counts['images']} images without a matching camera_info")
    for warning in warnings:
        log(f"WARNING: {warning}")
    return summary


def _scale_warnings(scaler, counts: Counter, info_topic: str, tolerance_s: float) -> list[str]:
    """Why the written depth is not what --scale-mode asked for, if it is not."""
    warnings = []
    if counts["held"]:
        where = (f"no camera_info within {tolerance_s} s of their stamp on {info_topic}" if info_topic
                 else "the bag has no camera_info topic")
        warnings.append(f"{counts['held']} images not written: scale_mode {scaler.mode} needs intrinsics and {where}")
    elif counts["without_camera_info"] and info_topic:
        warnings.append(f"{counts['without_camera_info']} images had no camera_info within {tolerance_s} s of their "
                        f"stamp on {info_topic} (written without depth camera_info)")
    if scaler.mode == "camera_height" and counts["depth"] and scaler.fits_used == 0:
        warnings.append(scaler.summary())
    return warnings


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the node's install may lack tqdm; the summary still prints
        enabled = False
    if not enabled:
        class _Null:
            def update(self, n):
                pass

            def close(self):
                pass

        return _Null()
    return tqdm(total=total, unit="img", desc="depth", dynamic_ncols=True)


def main(argv=None) -> int:
    from rosbags.highlevel import AnyReaderError

    args = build_parser().parse_args(argv)
    try:
        summary = run(BagDepthOptions.from_args(args))
    except AnyReaderError as exc:
        print(f"mcdepth-bag-depth: cannot read IN_BAG {args.in_bag}: {exc}", file=sys.stderr)
        return 2
    except (BagDepthError, ContractError, BackendUnavailable) as exc:
        print(f"mcdepth-bag-depth: {exc}", file=sys.stderr)
        return 2
    return 0 if summary["depth_written"] else 1


if __name__ == "__main__":
    sys.exit(main())
