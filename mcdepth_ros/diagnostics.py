"""Counters, rates and latency percentiles for the node's /diagnostics (no rclpy here)."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0, clock=time.monotonic):
        self.window_s, self.clock = window_s, clock
        self.times: deque[float] = deque()

    def tick(self) -> None:
        now = self.clock()
        self.times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def rate(self) -> float:
        self._trim(self.clock())
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last ``size`` latencies (seconds) and their percentiles (milliseconds)."""

    def __init__(self, size: int = 300):
        self.values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def percentiles_ms(self, qs=(50, 90, 99)) -> dict[int, float]:
        if not self.values:
            return {q: float("nan") for q in qs}
        arr = np.asarray(self.values) * 1000.0
        return {q: float(np.percentile(arr, q)) for q in qs}


class StampGapCounter:
    """Frames lost before the node, from gaps in the header stamps of the frames that arrived.

    The input period is measured from the stamps themselves: the median of the differences within
    1.5x the shortest of the last ``window`` (robust to stamp jitter, and still the true period when
    most frames are lost, as long as two consecutive ones arrive now and then). A difference of n
    periods means n - 1 frames never arrived; the first ``min_deltas`` differences are counted once
    the period is known. Backward stamps (a bag restarted, a clock reset) restart the measurement;
    a gap longer than ``pause_periods`` periods is a pause of the publisher, not loss.
    """

    def __init__(self, window: int = 100, min_deltas: int = 5, pause_periods: float = 50.0):
        self.deltas: deque[float] = deque(maxlen=window)
        self.min_deltas, self.pause_periods = min_deltas, pause_periods
        self.last: float | None = None
        self.lost = 0
        self._uncounted: list[float] = []

    def period(self) -> float | None:
        """The measured input period in seconds (None until ``min_deltas`` differences were seen)."""
        if len(self.deltas) < self.min_deltas:
            return None
        d = np.asarray(self.deltas)
        return float(np.median(d[d < 1.5 * d.min()]))

    def add(self, stamp_s: float) -> int:
        """Record one arrived frame's stamp; returns how many frames are newly known to be missing."""
        last, self.last = self.last, stamp_s
        if last is None:
            return 0
        delta = stamp_s - last
        if delta < 0:
            self.deltas.clear()
            self._uncounted.clear()
            return 0
        if delta == 0:  # the same frame again, or a driver that does not stamp
            return 0
        self.deltas.append(delta)
        self._uncounted.append(delta)
        period = self.period()
        if period is None or period <= 0:
            return 0
        missing = 0
        for d in self._uncounted:
            if d <= self.pause_periods * period:
                missing += max(0, int(round(d / period)) - 1)
        self._uncounted.clear()
        self.lost += missing
        return missing


class FrameStats:
    """Thread-safe frame accounting: every received frame ends published, dropped, held or as an error.

    ``held`` counts frames the node would not publish for a reason that is not the frame's fault
    (e.g. ``no_camera_info``: metric scale needs the intrinsics); ``skipped`` counts optional outputs
    left out (e.g. ``points_no_camera_info``); ``lost_upstream`` frames that never reached the node.
    """

    def __init__(self, rate_window_s: float = 5.0):
        self.lock = threading.Lock()
        self.received = self.published = self.dropped = 0
        self.errors: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.gaps = StampGapCounter()
        self.last_error = ""
        self.input_rate = RateMeter(rate_window_s)
        self.output_rate = RateMeter(rate_window_s)
        self.latency = LatencyWindow()
        self.inference = LatencyWindow()

    def on_received(self, stamp_s: float | None = None) -> int:
        """One frame reached the node; ``stamp_s`` (its header stamp) feeds the upstream-loss count."""
        with self.lock:
            self.received += 1
            self.input_rate.tick()
            return self.gaps.add(stamp_s) if stamp_s is not None else 0

    @property
    def lost_upstream(self) -> int:
        return self.gaps.lost

    def on_held(self, kind: str) -> None:
        with self.lock:
            self.held[kind] += 1

    def on_skipped(self, kind: str) -> None:
        with self.lock:
            self.skipped[kind] += 1

    def on_dropped(self, n: int = 1) -> None:
        with self.lock:
            self.dropped += n

    def on_published(self, latency_s: float, inference_s: float) -> None:
        with self.lock:
            self.published += 1
            self.output_rate.tick()
            self.latency.add(latency_s)
            self.inference.add(inference_s)

    def on_error(self, kind: str, message: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.last_error = f"{kind}: {message}"

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def snapshot(self) -> dict[str, str]:
        """Key/values for a DiagnosticStatus (all strings, as the message wants)."""
        with self.lock:
            lat = self.latency.percentiles_ms()
            inf = self.inference.percentiles_ms((50, 90))
            out = {
                "input_rate_hz": f"{self.input_rate.rate():.2f}",
                "output_rate_hz": f"{self.output_rate.rate():.2f}",
                "latency_p50_ms": f"{lat[50]:.2f}", "latency_p90_ms": f"{lat[90]:.2f}", "latency_p99_ms": f"{lat[99]:.2f}",
                "inference_p50_ms": f"{inf[50]:.2f}", "inference_p90_ms": f"{inf[90]:.2f}",
                "frames_received": str(self.received), "frames_published": str(self.published),
                "frames_dropped": str(self.dropped), "frames_lost_upstream": str(self.gaps.lost),
                "input_period_ms": "n/a" if (period := self.gaps.period()) is None else f"{period * 1000.0:.1f}",
                "errors_total": str(sum(self.errors.values())), "last_error": self.last_error,
            }
            out.update({f"errors_{kind}": str(n) for kind, n in sorted(self.errors.items())})
            out.update({f"frames_held_{kind}": str(n) for kind, n in sorted(self.held.items())})
            out.update({f"skipped_{kind}": str(n) for kind, n in sorted(self.skipped.items())})
        return out


class RateLimitedLog:
    """Log a message of one kind at most once every ``period_s`` (and say how many were held back)."""

    def __init__(self, log, period_s: float = 5.0, clock=time.monotonic):
        self.log, self.period_s, self.clock = log, period_s, clock
        self.last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()

    def __call__(self, kind: str, message: str) -> bool:
        now = self.clock()
        if kind in self.last and now - self.last[kind] < self.period_s:
            self.suppressed[kind] += 1
            return False
        extra = f" ({self.suppressed[kind]} more like this since the last report)" if self.suppressed[kind] else ""
        self.suppressed[kind] = 0
        self.last[kind] = now
        self.log(f"{message}{extra}")
        return True
