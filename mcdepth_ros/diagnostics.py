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


class FrameStats:
    """Thread-safe frame accounting: every received frame ends published, dropped or as an error."""

    def __init__(self, rate_window_s: float = 5.0):
        self.lock = threading.Lock()
        self.received = self.published = self.dropped = 0
        self.errors: Counter[str] = Counter()
        self.last_error = ""
        self.input_rate = RateMeter(rate_window_s)
        self.output_rate = RateMeter(rate_window_s)
        self.latency = LatencyWindow()
        self.inference = LatencyWindow()

    def on_received(self) -> None:
        with self.lock:
            self.received += 1
            self.input_rate.tick()

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
                "frames_dropped": str(self.dropped), "errors_total": str(sum(self.errors.values())),
                "last_error": self.last_error,
            }
            out.update({f"errors_{kind}": str(n) for kind, n in sorted(self.errors.items())})
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
