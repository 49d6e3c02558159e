"""bench/stage3_selection.py: the sequential keep-better rule over stage 1 and the rounds."""
from __future__ import annotations

from conftest import load_bench


def test_keep_better_adopts_only_improvements_and_flags_rounds_trained_from_a_rejected_one():
    rule = load_bench("stage3_selection").keep_better
    assert rule([0.0146, 0.0142, 0.0143]) == (1, False)  # round 0 kept, round 1 worse than it
    assert rule([0.0146, 0.0144, 0.0143]) == (2, False)  # each round better than the last
    assert rule([0.0146, 0.0149, 0.0146]) == (0, True)  # a tie is not an improvement; round 1 grew from a rejected round
    assert rule([0.0146, 0.0149, 0.0140]) == (2, True)
    assert rule([0.0146]) == (0, False)
