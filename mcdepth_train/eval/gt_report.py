"""Ground-truth depth at each training validation, as a report beside the loss (never a selector)."""
from __future__ import annotations

from typing import Callable

from ..data import keys
from ..engine.hooks import ValidationReport
from .metrics import RegionMetrics


class GroundTruthReport(ValidationReport):
    """Per-region depth metrics of the validation batches that carry ``depth_gt``, as ``gt/<region>/<metric>``.

    Args:
        score: ``f(model, batch) -> [(per_region_metrics, ratio), ...]``, one entry per image
            (``eval.metrics.evaluate_image``'s result); called only on batches with ground truth.
    """

    name = "ground_truth"

    def __init__(self, score: Callable[[object, dict], list[tuple[dict, float]]]):
        self.score = score
        self.region = RegionMetrics()

    def start(self) -> None:
        self.region = RegionMetrics()

    def add(self, model, batch: dict) -> None:
        if keys.DEPTH_GT in batch:
            for per_region, ratio in self.score(model, batch):
                self.region.add(per_region, ratio)

    def result(self) -> dict[str, float]:
        return {f"gt/{region}/{name}": float(value)
                for region, values in self.region.mean().items() for name, value in (values or {}).items()}
