"""geometry/disparity.py: the depth head's sigmoid <-> depth map (hand values, round trip)."""
import torch

from mcdepth_train.geometry import depth_to_sigmoid, sigmoid_to_depth


def test_sigmoid_to_depth_hand_values_and_round_trip():
    sigma = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    # min 0.1, max 100: disparity 1/100 + (1/0.1 - 1/100) * sigma
    expected = torch.tensor([100.0, 1.0 / (0.01 + 9.99 * 0.5), 0.1], dtype=torch.float64)
    torch.testing.assert_close(sigmoid_to_depth(sigma, 0.1, 100.0), expected)
    torch.testing.assert_close(depth_to_sigmoid(expected, 0.1, 100.0), sigma)
    depth = torch.rand(2, 1, 4, 5, dtype=torch.float64) * 50 + 0.5
    torch.testing.assert_close(sigmoid_to_depth(depth_to_sigmoid(depth, 0.1, 100.0), 0.1, 100.0), depth)
