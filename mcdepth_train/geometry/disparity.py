"""The depth head's output range: sigmoid disparity <-> depth between ``min_depth`` and ``max_depth``."""
from __future__ import annotations

import torch


def sigmoid_to_depth(sigmoid: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Map the decoder's sigmoid output to depth: ``1 / (1/max + (1/min - 1/max) * sigma)``.

    sigmoid: any shape, in [0, 1] (0 -> max_depth, 1 -> min_depth). Returns depth of that shape,
    in the model's units.
    """
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (min_disp + (max_disp - min_disp) * sigmoid)


def depth_to_sigmoid(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Inverse of :func:`sigmoid_to_depth`."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)
