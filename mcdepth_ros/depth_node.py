"""ROS 2 node: dense monocular depth from a camera topic.

Subscribes ``image`` (sensor_msgs/Image, or ``image/compressed`` with ``image_transport:=compressed``)
and ``camera_info``; publishes REP-118 ``depth/image`` (32FC1, metres, NaN invalid, the input's
header), ``depth/camera_info`` (scaled to the published size), optionally ``depth/colored`` (bgr8
turbo) and ``depth/points`` (PointCloud2), and ``/diagnostics``.

Inference runs in one worker thread on the newest frame only: a frame that arrives while the worker
is busy replaces the waiting one, and the replaced frame is counted as dropped. Nothing queues up.
"""
from __future__ import annotations

import array
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from .backends import BACKENDS, BackendUnavailable
from .contract import ContractError
from .conversions import ConversionError, check_color_encoding, compressed_to_rgb, image_to_rgb, numpy_to_image_fields, to_rgb
from .diagnostics import FrameStats, RateLimitedLog
from .pipeline import OUTPUT_RESOLUTIONS, InferenceError, ScaleUnavailable, build_pipeline, resolve_scale
from .postprocess import colorize, depth_to_points, point_fields
from .scale import SCALE_MODES

QOS_CHOICES = ("sensor_data", "reliable", "best_effort")
# /diagnostics warns when more than this fraction of the stream went missing upstream since the last report.
LOST_WARN_FRACTION = 0.1


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    dynamic: bool = False            # may change while running (the cheap ones)
    range: tuple | None = None       # (lo, hi) for numbers
    choices: tuple | None = None     # allowed strings


# Every parameter the node declares, in one place (the launch-file test checks against this).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_dir", "", "Folder with model.onnx + model.json (docs/contract.md), e.g. trt_engines/NAME."),
    ParamSpec("backend", "auto", "Inference backend: auto, tensorrt, onnxruntime or torch (auto picks the best that loads).",
              choices=("auto",) + BACKENDS),
    ParamSpec("device", "auto", "Where to run: auto, cpu, cuda, or tensorrt (ONNX Runtime's TensorRT provider).",
              choices=("auto", "cpu", "cuda", "tensorrt")),
    ParamSpec("threads", 0, "ONNX Runtime intra-op threads (0 = its default).", range=(0, 256)),
    ParamSpec("precision", "", "TensorRT engine precision: fp32, fp16 or int8 ('' = model.json's, else fp16).",
              choices=("", "fp32", "fp16", "int8")),
    ParamSpec("engine_dir", "", "Folder of TensorRT engines ('' = model_dir); engines are named by ONNX hash, TensorRT version, GPU and precision."),
    ParamSpec("build_engine", True, "Build the TensorRT engine on this machine when it is missing."),
    ParamSpec("checkpoint", "", "torch.export program (.pt2) for backend torch ('' = torch_program.file in model.json)."),
    ParamSpec("image_transport", "raw", "raw (sensor_msgs/Image on 'image') or compressed (CompressedImage on 'image/compressed').",
              choices=("raw", "compressed")),
    ParamSpec("qos_in", "sensor_data", "QoS of the subscriptions: sensor_data (best effort), reliable or best_effort.",
              choices=QOS_CHOICES),
    ParamSpec("qos_out", "reliable", "QoS of the depth publishers: reliable, best_effort or sensor_data.", choices=QOS_CHOICES),
    ParamSpec("qos_depth", 5, "History depth of subscriptions and publishers.", range=(1, 100)),
    ParamSpec("output_resolution", "input", "Publish depth at the camera's size (input) or the network's (model).",
              choices=OUTPUT_RESOLUTIONS),
    ParamSpec("scale_mode", "", "Scale policy: relative (model units), fixed (scale_factor), camera_height (ground plane); '' = model.json's.",
              dynamic=True, choices=("",) + SCALE_MODES),
    ParamSpec("scale_factor", 0.0, "Factor for scale_mode fixed, and the start value for camera_height (0 = model.json's).",
              dynamic=True, range=(0.0, 1.0e6)),
    ParamSpec("camera_height", 1.5, "Camera centre height above the ground in metres (scale_mode camera_height).",
              dynamic=True, range=(0.05, 10.0)),
    ParamSpec("ground_region", 0.35, "Fraction of image rows, from the bottom, searched for the ground plane.", range=(0.05, 1.0)),
    ParamSpec("scale_smoothing", 0.9, "Weight of the old factor in the running average of camera_height scale (0 = none).",
              dynamic=True, range=(0.0, 0.999)),
    ParamSpec("publish_colored", False, "Publish depth/colored (bgr8 turbo colour map, for RViz).", dynamic=True),
    ParamSpec("publish_points", False, "Publish depth/points (PointCloud2, xyz) when camera_info is known.", dynamic=True),
    ParamSpec("points_rgb", False, "Add the camera colour to depth/points as an rgb field.", dynamic=True),
    ParamSpec("point_stride", 4, "Keep every n-th row and column in depth/points.", dynamic=True, range=(1, 64)),
    ParamSpec("colormap_min", 0.5, "Depth (metres) drawn red in depth/colored.", dynamic=True, range=(0.0, 1000.0)),
    ParamSpec("colormap_max", 50.0, "Depth (metres) drawn blue in depth/colored.", dynamic=True, range=(0.01, 1000.0)),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)),
    ParamSpec("error_log_period", 5.0, "Log each kind of frame error at most once per this many seconds.", range=(0.0, 3600.0)),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)


def qos_profile(kind: str, depth: int) -> QoSProfile:
    """A QoS profile from its parameter value (see QOS_CHOICES)."""
    if kind == "sensor_data":
        profile = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability", "durability")},
                             depth=depth)
        return profile
    reliability = QoSReliabilityPolicy.RELIABLE if kind == "reliable" else QoSReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=QoSDurabilityPolicy.VOLATILE)


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = spec.description + ("" if spec.dynamic else " (read at start-up)")
    if spec.choices:
        desc += f" Choices: {', '.join(repr(c) for c in spec.choices)}."
    # Doubles take integers too (`-p camera_height:=2`): rclpy's static typing would refuse them, so
    # they are declared with dynamic typing and checked and converted by coerce_parameter.
    d = ParameterDescriptor(description=desc, read_only=not spec.dynamic, dynamic_typing=isinstance(spec.default, float))
    if spec.range is not None:
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    return d


def coerce_parameter(spec: ParamSpec, value):
    """A parameter value as the node uses it: integers become floats for double parameters; choices
    and ranges are checked. Raises ValueError naming the parameter."""
    if isinstance(spec.default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter {spec.name}: expected a number, got {value!r}")
        value = float(value)
        if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
            raise ValueError(f"parameter {spec.name}: {value} is outside {spec.range[0]}..{spec.range[1]}")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"parameter {spec.name}: expected one of {spec.choices}, got {value!r}")
    return value


SPECS = {spec.name: spec for spec in PARAMETERS}


class DepthNode(Node):
    """The depth node. ``node_kwargs`` go to rclpy's Node (e.g. ``parameter_overrides``, ``namespace``)."""

    def __init__(self, node_name: str = "depth_node", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self._worker = None
        self.backend = None
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        p = {spec.name: coerce_parameter(spec, self.get_parameter(spec.name).value) for spec in PARAMETERS}
        self.params = p
        log = self.get_logger()
        try:
            if not p["model_dir"]:
                raise ContractError("parameter model_dir is empty: set it to a folder with model.onnx + model.json")
            self.pipeline, reason = build_pipeline(
                Path(p["model_dir"]).expanduser().absolute(), backend=p["backend"], device=p["device"], threads=p["threads"],
                precision=p["precision"], engine_dir=p["engine_dir"], build_engine=p["build_engine"],
                checkpoint=p["checkpoint"], scale_mode=p["scale_mode"], scale_factor=p["scale_factor"],
                camera_height=p["camera_height"], ground_region=p["ground_region"],
                scale_smoothing=p["scale_smoothing"], output_resolution=p["output_resolution"], reuse_buffers=True)
        except (ContractError, BackendUnavailable) as exc:
            log.fatal(f"cannot start: {exc}")
            raise
        self.contract, self.backend, self.scaler = self.pipeline.contract, self.pipeline.backend, self.pipeline.scaler
        self.backend_reason = reason
        self.stats = FrameStats()
        self.report = RateLimitedLog(log.error, p["error_log_period"])
        self.warn = RateLimitedLog(log.warning, p["error_log_period"])
        self.stage_times: deque[dict[str, float]] = deque(maxlen=300)  # per published frame, seconds (bench)
        self._bridge = self._make_bridge()
        self.conversion = "cv_bridge" if self._bridge is not None else "built-in (mcdepth_ros.conversions)"

        qin = qos_profile(p["qos_in"], p["qos_depth"])
        qout = qos_profile(p["qos_out"], p["qos_depth"])
        if p["image_transport"] == "compressed":
            self.sub_image = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, qin)
        else:
            self.sub_image = self.create_subscription(Image, "image", self._on_image, qin)
        self.sub_info = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qin)
        self.pub_depth = self.create_publisher(Image, "depth/image", qout)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", qout)
        self.pub_colored = self.create_publisher(Image, "depth/colored", qout)
        self.pub_points = self.create_publisher(PointCloud2, "depth/points", qout)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._camera_info: CameraInfo | None = None
        self._last_report = {"errors": 0, "held": 0, "skipped": 0, "lost": 0, "received": 0}

        # The 1-deep slot between the subscription callback and the inference worker.
        self._cond = threading.Condition()
        self._slot = None
        self._busy = False
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="depth_worker", daemon=True)
        self._worker.start()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        log.info(self.startup_summary())

    def startup_summary(self) -> str:
        """What the node runs on and where it listens and talks (resolved names), for the start-up log."""
        p = self.params
        outputs = [self.pub_depth.topic_name, self.pub_info.topic_name]
        outputs += [f"{pub.topic_name} ({'on' if p[name] else 'off'}: {name})"
                    for pub, name in ((self.pub_colored, "publish_colored"), (self.pub_points, "publish_points"))]
        return (f"subscribes {self.sub_image.topic_name} ({p['image_transport']}) and {self.sub_info.topic_name}, "
                f"qos_in {p['qos_in']} depth {p['qos_depth']}; publishes {', '.join(outputs)}, qos_out {p['qos_out']}; "
                f"backend {self.backend_reason}; model {self.contract.model_dir} ({self.contract.height}x{self.contract.width}, "
                f"{self.contract.output_kind}); {self.scaler.summary()}; output {p['output_resolution']} resolution; "
                f"image conversion {self.conversion}")

    # ---------------------------------------------------------------- input
    def _make_bridge(self):
        try:
            from cv_bridge import CvBridge
        except ImportError:
            return None
        return CvBridge()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_image(self, msg: Image) -> None:
        self._offer(msg, compressed=False)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._offer(msg, compressed=True)

    def _offer(self, msg, compressed: bool) -> None:
        stamp = msg.header.stamp
        self.stats.on_received(stamp.sec + stamp.nanosec * 1e-9)
        with self._cond:
            if self._slot is not None:
                self.stats.on_dropped()  # superseded before the worker got to it
            self._slot = (msg, compressed, time.monotonic(), self._camera_info)
            self._cond.notify()

    def pending(self) -> bool:
        """True while a frame waits or is being processed."""
        with self._cond:
            return self._slot is not None or self._busy

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._slot = self._slot, None
                self._busy = True
            try:
                self._process(*item)
            except ScaleUnavailable as exc:
                self.stats.on_held("no_camera_info")
                self.warn("held", f"depth not published: {exc}; {self._camera_info_state()}. Frames are held "
                                  "until it arrives (or set scale_mode fixed or relative)")
            except (ConversionError, InferenceError, FrameError) as exc:
                self._error(exc.kind if isinstance(exc, FrameError) else
                            ("conversion" if isinstance(exc, ConversionError) else "inference"), str(exc))
            except Exception as exc:  # a backend failure must not kill the worker
                self._error("backend", f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False

    def _error(self, kind: str, message: str) -> None:
        self.stats.on_error(kind, message)
        self.report(kind, f"frame dropped ({kind}): {message}")

    def _to_rgb(self, msg, compressed: bool) -> np.ndarray:
        if compressed:
            return compressed_to_rgb(msg)
        check_color_encoding(msg.encoding)
        if self._bridge is not None:
            try:
                return to_rgb(self._bridge.imgmsg_to_cv2(msg, "passthrough"), msg.encoding)
            except ConversionError:
                raise
            except Exception as exc:  # cv_bridge's own error type; same meaning as ours
                raise ConversionError(str(exc)) from exc
        return image_to_rgb(msg)

    def _camera_info_state(self) -> str:
        topic = self.sub_info.topic_name
        if self._camera_info is None:
            return f"no camera_info has arrived on {topic}"
        return f"the camera_info on {topic} has no calibration (K[0] or K[4] is 0)"

    # ---------------------------------------------------------------- processing
    def _process(self, msg, compressed: bool, received: float, info: CameraInfo | None) -> None:
        queued_s = time.monotonic() - received
        start = time.perf_counter()
        rgb = self._to_rgb(msg, compressed)
        convert_s = time.perf_counter() - start
        h, w = rgb.shape[:2]
        k = p = None
        if info is not None:
            if (info.height, info.width) != (h, w):
                raise FrameError("camera_info", f"camera_info is {info.width}x{info.height} but the image is {w}x{h}")
            k, p = np.asarray(info.k, np.float64).reshape(3, 3), np.asarray(info.p, np.float64).reshape(3, 4)
            if k[0, 0] <= 0 or k[1, 1] <= 0:
                k = p = None  # an uncalibrated camera: depth only, no points
        result = self.pipeline.run(rgb, k, p)
        # Seconds per stage, plus two monotonic instants (received_at, published_at) for bench/node_latency.py.
        stages = {"queued": queued_s, "convert": convert_s, **result.stages, "received_at": received}
        header = msg.header
        start = time.perf_counter()
        self.pub_depth.publish(_image_msg(result.depth, "32FC1", header))
        stages["published_at"] = time.monotonic()
        out_h, out_w = result.depth.shape
        if info is not None and result.k is not None:
            out = CameraInfo(header=header, height=out_h, width=out_w, distortion_model=info.distortion_model,
                             d=list(info.d), r=list(info.r), k=result.k.reshape(-1).tolist(),
                             p=(result.p if result.p is not None else np.asarray(info.p).reshape(3, 4)).reshape(-1).tolist())
            self.pub_info.publish(out)
        stages["publish"] = time.perf_counter() - start
        params = self.params
        if params["publish_colored"]:
            start = time.perf_counter()
            self.pub_colored.publish(_image_msg(colorize(result.depth, params["colormap_min"], params["colormap_max"]),
                                                "bgr8", header))
            stages["colour"] = time.perf_counter() - start
        if params["publish_points"]:
            if result.k is None:
                self.stats.on_skipped("points_no_camera_info")
                self.warn("points", f"depth/points not published: {self._camera_info_state()}")
            else:
                start = time.perf_counter()
                colour = None
                if params["points_rgb"]:
                    colour = rgb if (out_h, out_w) == (h, w) else _resize_rgb(rgb, out_h, out_w)
                    colour = colour if colour.dtype == np.uint8 else (colour >> 8).astype(np.uint8)
                self.pub_points.publish(_cloud_msg(depth_to_points(result.depth, result.k, params["point_stride"], colour), header))
                stages["points"] = time.perf_counter() - start
        self.stage_times.append(stages)
        self.stats.on_published(time.monotonic() - received, result.inference_s)

    # ---------------------------------------------------------------- parameters and diagnostics
    def _on_set_parameters(self, changes) -> SetParametersResult:
        new = dict(self.params)
        try:
            for change in changes:
                spec = SPECS.get(change.name)
                new[change.name] = coerce_parameter(spec, change.value) if spec is not None else change.value
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if new["colormap_max"] <= new["colormap_min"]:
            return SetParametersResult(successful=False, reason="colormap_max must be greater than colormap_min")
        scale_keys = {"scale_mode", "scale_factor", "camera_height", "scale_smoothing"}
        if any(c.name in scale_keys for c in changes):
            try:
                self.scaler.configure(*resolve_scale(self.contract, new["scale_mode"], new["scale_factor"]),
                                      new["camera_height"], new["scale_smoothing"])
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        self.params = new
        return SetParametersResult(successful=True)

    def diagnostic_values(self) -> dict[str, str]:
        values = {"backend": self.backend.describe(), "backend_choice": self.backend_reason,
                  "model_dir": str(self.contract.model_dir), "image_conversion": self.conversion,
                  "pending": str(self.pending())}
        values.update(self.stats.snapshot())
        values.update(self.scaler.status())
        return values

    def diagnostic_warnings(self) -> list[str]:
        """What went wrong since the last call (each a sentence); empty when all is well."""
        stats, scaler = self.stats, self.scaler
        now = {"errors": stats.error_total, "held": sum(stats.held.values()), "skipped": sum(stats.skipped.values()),
               "lost": stats.lost_upstream, "received": stats.received}
        new = {key: now[key] - self._last_report[key] for key in now}
        self._last_report = now
        warnings = []
        if new["errors"]:
            warnings.append(f"{new['errors']} bad frames since last report; {stats.last_error}")
        if new["held"]:
            warnings.append(f"{new['held']} frames held (not published): scale_mode {scaler.mode} needs camera_info; "
                            f"{self._camera_info_state()}")
        if new["skipped"]:
            warnings.append(f"depth/points not published for {new['skipped']} frames: {self._camera_info_state()}")
        stream = new["lost"] + new["received"]
        if stream and new["lost"] / stream > LOST_WARN_FRACTION:
            warnings.append(f"{new['lost']} of {stream} frames lost before reaching the node (header stamp gaps); "
                            "best-effort camera-sized images over Fast DDS need config/fastdds_large_images.xml "
                            "in every process on the image path (docs/ros.md, 'Frames lost upstream')")
        if scaler.mode == "camera_height" and scaler.fits_used == 0 and scaler.fits_rejected:
            warnings.append(scaler.summary())
        return warnings

    def _publish_diagnostics(self) -> None:
        values = self.diagnostic_values()
        warnings = self.diagnostic_warnings()
        level, message = DiagnosticStatus.OK, f"{values['output_rate_hz']} Hz out, p50 {values['latency_p50_ms']} ms"
        if warnings:
            level, message = DiagnosticStatus.WARN, "; ".join(warnings)
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: depth", message=message,
                                  hardware_id=values["backend"],
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self.pub_diag.publish(DiagnosticArray(header=_now_header(self), status=[status]))

    def destroy_node(self) -> None:
        if self._worker is not None:
            with self._cond:
                self._stop = True
                self._cond.notify()
            self._worker.join(timeout=10.0)
            self._worker = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        super().destroy_node()


class FrameError(ValueError):
    """A frame rejected before inference; ``kind`` is its diagnostics counter."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _now_header(node: Node):
    from std_msgs.msg import Header

    return Header(stamp=node.get_clock().now().to_msg())


def _byte_array(data) -> array.array:
    # rclpy checks every element of a bytes value in Python (tens of ms for one depth image);
    # an array.array('B') is taken as is. Filled straight from the buffer: one copy.
    out = array.array("B")
    out.frombytes(data)
    return out


def _image_msg(array_: np.ndarray, encoding: str, header) -> Image:
    fields = numpy_to_image_fields(array_, encoding, as_buffer=True)
    fields["data"] = _byte_array(fields["data"])
    return Image(header=header, **fields)


def _resize_rgb(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA)


def _cloud_msg(points: np.ndarray, header) -> PointCloud2:
    fields = [PointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in point_fields(points)]
    return PointCloud2(header=header, height=1, width=int(points.size), fields=fields,
                       is_bigendian=sys.byteorder == "big", point_step=points.dtype.itemsize,
                       row_step=points.dtype.itemsize * int(points.size), data=_byte_array(memoryview(points).cast("B")), is_dense=True)


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = DepthNode()
        rclpy.spin(node)
    except (ContractError, BackendUnavailable, ValueError) as exc:
        print(f"depth_node: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
