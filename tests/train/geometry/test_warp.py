"""geometry/warp.py: pixels_to_grid and backward_warp (identity, known shifts, gradcheck)."""
import torch

from mcdepth_train.geometry import backproject, backward_warp, pixel_grid, pixels_to_grid, project
from tests.train.geometry.helpers import make_K, make_pose


def test_pixels_to_grid_align_corners_false():
    pix = torch.tensor([[[[-0.5, 3.5]], [[-0.5, 1.5]]]])  # [1,2,1,2]: the image's outer corners of a 4x2 image
    grid = pixels_to_grid(pix, height=2, width=4)
    assert torch.allclose(grid, torch.tensor([[[[-1.0, -1.0], [1.0, 1.0]]]]))


def test_identity_pose_backward_warp_leaves_image_unchanged():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 6, 9)
    depth = torch.rand(2, 1, 6, 9) * 10 + 1
    K = make_K(fx=20, fy=20, cx=4, cy=3, b=2)
    pix, z = project(backproject(depth, torch.linalg.inv(K)), K, torch.eye(4).expand(2, 4, 4))
    warped, inside = backward_warp(image, pix)
    assert torch.allclose(warped, image, atol=1e-5)
    assert torch.all(inside == 1)
    assert torch.allclose(z, depth, rtol=1e-5)


def test_known_translation_backward_warp_samples_shifted_source():
    h, w = 3, 16
    depth = torch.full((1, 1, h, w), 10.0)
    K = make_K(fx=100, fy=100, cx=8, cy=1)
    pix, _ = project(backproject(depth, torch.linalg.inv(K)), K, make_pose(t=(1.0, 0.0, 0.0)))
    src = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w) + 1
    warped, inside = backward_warp(src, pix)
    # target column u samples the source at column u + 10
    assert torch.allclose(warped[0, 0, :, :6], src[0, 0, :, 10:], atol=1e-4)
    assert torch.all(inside[0, 0, :, :6] == 1)
    assert torch.all(inside[0, 0, :, 6:] == 0)
    assert torch.all(warped[0, 0, :, 7:] == 0)  # zero padding beyond the source


def test_gradcheck_backward_warp_image_and_pix():
    torch.manual_seed(6)
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # keep samples away from integer coordinates, where bilinear interpolation has kinks
    pix = (pixel_grid(3, 4, dtype=torch.float64)[:2].unsqueeze(0) + 0.37 + 0.1 * torch.rand(1, 2, 3, 4, dtype=torch.float64))
    pix.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, p: backward_warp(i, p)[0], (image, pix))
