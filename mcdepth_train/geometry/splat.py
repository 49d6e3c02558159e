"""Forward warping (splatting) with a z-buffer: render the reference view from a source viewpoint.

No torch_sparse or pytorch3d: the z-buffer is a ``scatter_reduce(amax)`` on inverse depth, then
the winning point of every target pixel is gathered. The winner choice is discrete; the gathered
image and depth are differentiable in the reference image and depth.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..checks import check_batch, check_same_hw, check_tensor
from .camera import backproject, project, scale_intrinsics


class SplatResult(NamedTuple):
    depth: torch.Tensor  # [B,1,H,W] depth of the nearest splatted point in the target view, 0 in holes
    image: torch.Tensor  # [B,C,H,W] its colour, 0 in holes
    valid: torch.Tensor  # [B,1,H,W] 1 where some point landed
    ref_index: torch.Tensor  # [B,1,H,W] long: flat index (row*W_ref + col) of the winning reference pixel, -1 in holes


def forward_splat(
    depth_ref: torch.Tensor,
    image_ref: torch.Tensor,
    K_ref: torch.Tensor,
    K_dst: torch.Tensor,
    dst_from_ref: torch.Tensor,
    out_hw: tuple[int, int] | None = None,
    supersample: int = 1,
    offset: torch.Tensor | None = None,
) -> SplatResult:
    """Move every reference pixel into the destination view; the nearest point wins each pixel.

    Args:
        depth_ref: [B,1,H,W] reference depth.
        image_ref: [B,C,H,W] reference image (anything per pixel: colour, features, masks).
        K_ref: [B,3,3] reference intrinsics at HxW.
        K_dst: [B,3,3] destination intrinsics at ``out_hw``.
        dst_from_ref: [B,4,4] rigid transform from the reference to the destination camera.
        out_hw: destination image size; defaults to the reference size.
        supersample: upsample the reference depth and image by this factor first, so a surface
            seen at a slant in the destination leaves fewer holes.
        offset: [B,3,H,W] optional per-pixel 3D motion added before projection.
    Returns:
        SplatResult; ``ref_index`` refers to the reference grid at its original HxW.
    """
    check_tensor("depth_ref", depth_ref, "B1HW")
    check_tensor("image_ref", image_ref, "BCHW")
    check_tensor("K_ref", K_ref, "B33")
    check_tensor("K_dst", K_dst, "B33")
    check_tensor("dst_from_ref", dst_from_ref, "B44")
    check_same_hw(depth_ref=depth_ref, image_ref=image_ref)
    check_batch(depth_ref=depth_ref, image_ref=image_ref, K_ref=K_ref, K_dst=K_dst, dst_from_ref=dst_from_ref)
    if supersample < 1:
        raise ValueError(f"supersample: expected an integer >= 1, got {supersample}")
    b, c, h, w = image_ref.shape
    out_h, out_w = out_hw if out_hw is not None else (h, w)

    if supersample > 1:
        s = supersample
        depth_ref = F.interpolate(depth_ref, scale_factor=s, mode="nearest")
        image_ref = F.interpolate(image_ref, scale_factor=s, mode="nearest")
        if offset is not None:
            offset = F.interpolate(offset, scale_factor=s, mode="nearest")
        K_ref = scale_intrinsics(K_ref, s, s)
    hs, ws = depth_ref.shape[-2:]

    points = backproject(depth_ref, torch.linalg.inv(K_ref))
    pix, z = project(points, K_dst, dst_from_ref, offset=offset)
    u = torch.round(pix[:, 0].reshape(b, -1))
    v = torch.round(pix[:, 1].reshape(b, -1))
    z = z.reshape(b, -1)
    visible = (z > 1e-6) & (u >= 0) & (u <= out_w - 1) & (v >= 0) & (v <= out_h - 1) & torch.isfinite(z)
    target = torch.where(visible, v * out_w + u, torch.zeros_like(u)).long()

    # z-buffer on inverse depth: the largest 1/z (nearest point) wins each target pixel.
    inv_z = torch.where(visible, 1.0 / z.detach().clamp_min(1e-6), torch.full_like(z, -1.0))
    zbuf = torch.zeros(b, out_h * out_w, dtype=z.dtype, device=z.device)
    zbuf = zbuf.scatter_reduce(1, target, inv_z, reduce="amax", include_self=True)
    is_winner = visible & (inv_z == zbuf.gather(1, target))
    # Ties (two points at the same depth on one pixel): keep the one with the larger index.
    point_ids = torch.arange(target.shape[1], device=z.device).expand(b, -1)
    winner = torch.full((b, out_h * out_w), -1, dtype=torch.long, device=z.device)
    winner = winner.scatter_reduce(1, target, torch.where(is_winner, point_ids, -1), reduce="amax", include_self=True)

    valid = winner >= 0
    safe = winner.clamp_min(0)
    image_flat = image_ref.reshape(b, c, -1)
    warped_image = image_flat.gather(2, safe.unsqueeze(1).expand(-1, c, -1)) * valid.unsqueeze(1)
    warped_depth = z.gather(1, safe) * valid

    # Map supersampled indices back to the reference pixel they came from.
    row, col = safe // ws, safe % ws
    ref_index = torch.where(valid, (row // supersample) * w + (col // supersample), torch.full_like(safe, -1))
    shape = (b, 1, out_h, out_w)
    return SplatResult(
        depth=warped_depth.reshape(shape),
        image=warped_image.reshape(b, c, out_h, out_w),
        valid=valid.reshape(shape).to(depth_ref.dtype),
        ref_index=ref_index.reshape(shape),
    )


def splat_to_reference(values: torch.Tensor, ref_index: torch.Tensor, ref_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry per-pixel values of the destination view back to the reference pixels they came from.

    Used to bring the motion field (predicted in the source view) back to the reference view.
    Where several destination pixels came from one reference pixel, their values are averaged.

    Args:
        values: [B,C,H,W] values in the destination view.
        ref_index: [B,1,H,W] from :func:`forward_splat` (-1 where nothing landed).
        ref_hw: (H_ref, W_ref).
    Returns:
        ref_values: [B,C,H_ref,W_ref], 0 where no destination pixel maps back.
        ref_valid: [B,1,H_ref,W_ref], 1 where some did.
    """
    check_tensor("values", values, "BCHW")
    check_tensor("ref_index", ref_index, "B1HW", floating=False)
    check_same_hw(values=values, ref_index=ref_index)
    b, c = values.shape[:2]
    n_ref = ref_hw[0] * ref_hw[1]
    idx = ref_index.reshape(b, 1, -1)
    valid = idx >= 0
    safe = idx.clamp_min(0)
    sums = torch.zeros(b, c, n_ref, dtype=values.dtype, device=values.device)
    sums = sums.scatter_add(2, safe.expand(-1, c, -1), values.reshape(b, c, -1) * valid)
    counts = torch.zeros(b, 1, n_ref, dtype=values.dtype, device=values.device)
    counts = counts.scatter_add(2, safe, valid.to(values.dtype))
    ref_values = sums / counts.clamp_min(1)
    return ref_values.reshape(b, c, *ref_hw), (counts > 0).to(values.dtype).reshape(b, 1, *ref_hw)
