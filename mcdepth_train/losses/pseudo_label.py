"""Scale-invariant pseudo-label loss (paper Eqs. 19-20)."""
from __future__ import annotations

import torch

from ..checks import check_same_hw, check_tensor


def _masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Median of ``values[b][mask[b]]`` per batch item ([B,N], [B,N] bool -> [B]); NaN if empty."""
    out = []
    for v, m in zip(values, mask):
        sel = v[m]
        out.append(sel.median() if sel.numel() else torch.full((), float("nan"), dtype=v.dtype, device=v.device))
    return torch.stack(out)


def label_scale(
    depth: torch.Tensor, label: torch.Tensor, valid: torch.Tensor, upper_percentile: float | None = 90.0
) -> torch.Tensor:
    """Per-image scale s = median(D / D_bar) that aligns the label's arbitrary scale to the prediction.

    Two passes: the first median over all valid pixels; the second over those whose scaled label
    s*D_bar lies between min(D) and the ``upper_percentile`` of D (drops far-off outliers). No gradient.

    Args:
        depth: [B,1,H,W] prediction. label: [B,1,H,W] pseudo label. valid: [B,1,H,W] bool/0-1.
        upper_percentile: percentile (0-100) of the second pass, or None for one pass.
    Returns:
        [B] scale (1 where an image has no valid pixel).
    """
    check_tensor("depth", depth, "B1HW")
    check_tensor("label", label, "B1HW")
    check_same_hw(depth=depth, label=label, valid=valid)
    b = depth.shape[0]
    d = depth.detach().reshape(b, -1)
    lab = label.detach().reshape(b, -1)
    ok = (valid.reshape(b, -1) > 0) & (lab > 0) & (d > 0)
    ratio = d / lab.clamp_min(1e-12)
    scale = _masked_median(ratio, ok)
    if upper_percentile is not None:
        d_min = torch.stack([di[oi].min() if oi.any() else di.new_tensor(0.0) for di, oi in zip(d, ok)])
        d_hi = torch.stack(
            [torch.quantile(di[oi], upper_percentile / 100) if oi.any() else di.new_tensor(0.0) for di, oi in zip(d, ok)]
        )
        scaled = lab * scale.unsqueeze(1)
        keep = ok & (scaled >= d_min.unsqueeze(1)) & (scaled <= d_hi.unsqueeze(1))
        second = _masked_median(ratio, keep)
        scale = torch.where(torch.isnan(second), scale, second)
    return torch.nan_to_num(scale, nan=1.0)


def pseudo_label_loss(
    depth: torch.Tensor,
    label: torch.Tensor,
    dynamic_mask: torch.Tensor,
    valid: torch.Tensor | None = None,
    upper_percentile: float | None = 90.0,
    relative: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel ``|D - s * D_bar|`` on the dynamic region, and the mask to normalise it by.

    ``L_pl = sum(map) / sum(weight)`` (paper Eq. 19); the caller reduces, so masking stays visible.

    ``relative=True`` divides each pixel's error by ``s * D_bar``. The paper's form is in the net's
    depth units, whose scale self-supervision leaves arbitrary, so its weight against the
    photometric term changes with that scale, and a far object pulls harder than a near one with
    the same relative error. The relative form is invariant to both scales, as AbsRel is.

    Args:
        depth: [B,1,H,W] prediction D. label: [B,1,H,W] pseudo label D_bar.
        dynamic_mask: [B,1,H,W] moving-object mask M_dyn. valid: [B,1,H,W] label validity V (None = label > 0).
        relative: error ``|D - s D_bar| / (s D_bar)`` instead of ``|D - s D_bar|``.
    Returns:
        error: [B,1,H,W] ``|D - s D_bar| * V * M_dyn`` (or its relative form).
        weight: [B,1,H,W] ``V * M_dyn``.
    """
    check_tensor("depth", depth, "B1HW")
    check_tensor("label", label, "B1HW")
    check_same_hw(depth=depth, label=label, dynamic_mask=dynamic_mask)
    if valid is None:
        valid = label > 0
    weight = (valid > 0).to(depth.dtype) * (dynamic_mask > 0).to(depth.dtype)
    scale = label_scale(depth, label, valid, upper_percentile).view(-1, 1, 1, 1)
    target = scale * label
    error = (depth - target).abs()
    if relative:
        # Unlabelled pixels (label 0) have weight 0; clamp only keeps their division finite.
        error = error / target.clamp_min(1e-6)
    return error * weight, weight


def masked_mean(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``sum(values * mask) / sum(mask)`` over everything; 0 when the mask is empty.

    The mask may broadcast against the values (a [B,1,H,W] mask over a [B,C,H,W] map): it is
    counted once per element it selects, so the result is the mean over the selected elements.
    """
    values, mask = torch.broadcast_tensors(values, mask.to(values.dtype))
    return (values * mask).sum() / (mask.sum() + eps)
