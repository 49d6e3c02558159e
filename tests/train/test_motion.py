"""RAFT motion net wrapper and the stage-1 masking rules."""
from __future__ import annotations

import pytest
import torch

from mcdepth_train.networks.motion import (
    MotionNet, mean_magnitude_mask, raft_input_size, splat_validity_mask, two_sided_mask,
)


def test_raft_input_size_rounds_up_to_multiples_of_8_and_at_least_128():
    assert raft_input_size(64, 128) == (128, 128)
    assert raft_input_size(192, 640) == (192, 640)
    assert raft_input_size(190, 641) == (192, 648)


def test_raft_input_size_scales_before_rounding_and_rejects_a_scale_below_1():
    assert raft_input_size(64, 192, 2) == (128, 384)  # the height was already raised to 128
    assert raft_input_size(100, 201, 2) == (200, 408)
    with pytest.raises(ValueError, match="motion_input_scale"):
        raft_input_size(64, 192, 0)


def test_motion_net_input_scale_feeds_raft_larger_images_and_returns_flow_at_input_size():
    torch.manual_seed(0)
    net = MotionNet("raft_small", input_scale=2)
    seen = []
    net.raft.register_forward_pre_hook(lambda module, args, kwargs: seen.append(args[0].shape[-2:]), with_kwargs=True)
    a = torch.rand(1, 3, 64, 96)
    flow = net(a, a.roll(2, dims=-1))
    assert tuple(seen[0]) == (128, 192) and flow.shape == (1, 2, 64, 96)
    with pytest.raises(ValueError, match="motion_input_scale"):
        MotionNet("raft_small", input_scale=0)


def test_motion_weights_trained_at_another_input_scale_are_refused(tmp_path):
    from torchvision.models.optical_flow import raft_small

    state = raft_small(weights=None, progress=False).state_dict()
    torch.save({"format": 1, "model": state, "meta": {"motion_input_scale": 2}}, tmp_path / "x2.pt")
    torch.save({"format": 1, "model": state, "meta": {"steps": 10}}, tmp_path / "old_card.pt")  # before the key: scale 1
    torch.save(state, tmp_path / "bare.pt")  # no card: any scale
    MotionNet("raft_small", weights_path=str(tmp_path / "x2.pt"), input_scale=2)
    with pytest.raises(ValueError, match="motion_input_scale=2"):
        MotionNet("raft_small", weights_path=str(tmp_path / "x2.pt"))
    with pytest.raises(ValueError, match="motion_input_scale=1"):
        MotionNet("raft_small", weights_path=str(tmp_path / "old_card.pt"), input_scale=2)
    MotionNet("raft_small", weights_path=str(tmp_path / "bare.pt"), input_scale=2)
    MotionNet("raft_small", weights_path=str(tmp_path / "x2.pt"), input_scale=3, any_trained_scale=True)  # pretrain-motion


def test_motion_net_returns_pixel_flow_at_input_size():
    torch.manual_seed(0)
    net = MotionNet("raft_small", iterations=1)
    a = torch.rand(1, 3, 64, 96)
    flow = net(a, a.roll(2, dims=-1))
    assert flow.shape == (1, 2, 64, 96)
    assert torch.isfinite(flow).all()
    flow.abs().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_motion_net_rejects_unknown_name_and_bad_input():
    with pytest.raises(ValueError, match="motion_net"):
        MotionNet("pwc")
    with pytest.raises(ValueError, match="motion_iters"):
        MotionNet("raft_small", 0)
    with pytest.raises(ValueError, match="image_a"):
        MotionNet("raft_small")(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))


def test_motion_net_starts_from_a_local_raft_weights_file(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(3)
    trained = raft_small(weights=None, progress=False)
    torch.save({"model": trained.state_dict()}, tmp_path / "raft_small.pth")  # wrapped, as training scripts save
    net = MotionNet("raft_small", weights_path=str(tmp_path / "raft_small.pth"))
    for key, value in trained.state_dict().items():
        assert torch.equal(net.raft.state_dict()[key], value), key
    assert not torch.equal(MotionNet("raft_small").raft.state_dict()["update_block.flow_head.conv2.weight"],
                           trained.state_dict()["update_block.flow_head.conv2.weight"])


def test_motion_weights_file_errors_name_the_file(tmp_path):
    from torchvision.models.optical_flow import raft_small

    with pytest.raises(FileNotFoundError, match="motion_weights"):
        MotionNet("raft_small", weights_path=str(tmp_path / "missing.pth"))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        MotionNet("raft_small", weights_path=str(tmp_path / "garbage.pth"))
    torch.save(raft_small(weights=None, progress=False).state_dict(), tmp_path / "small.pth")
    with pytest.raises(ValueError, match="raft_large"):
        MotionNet("raft_large", weights_path=str(tmp_path / "small.pth"))


def test_splat_validity_mask_zeroes_holes():
    flow = torch.ones(1, 2, 2, 3)
    valid = torch.tensor([[[[1.0, 0, 1], [0, 1, 1]]]])
    out = splat_validity_mask(flow, valid)
    assert torch.equal(out[0, 0], valid[0, 0]) and torch.equal(out[0, 1], valid[0, 0])


def test_mean_magnitude_mask_keeps_above_mean_over_valid_pixels():
    # magnitudes 0, 1, 2, 10 (valid) and 100 in a hole: mean over valid = 3.25
    flow = torch.zeros(1, 2, 1, 5)
    flow[0, 0, 0] = torch.tensor([0.0, 1, 2, 10, 100])
    valid = torch.tensor([[[[1.0, 1, 1, 1, 0]]]])
    mask = mean_magnitude_mask(flow, valid)
    assert mask.tolist() == [[[[0.0, 0.0, 0.0, 1.0, 0.0]]]]
    # without a validity map the hole's 100 counts: mean 22.6
    assert mean_magnitude_mask(flow).tolist() == [[[[0.0, 0.0, 0.0, 0.0, 1.0]]]]


def test_mean_magnitude_mask_uses_vector_length_per_image():
    flow = torch.zeros(2, 2, 1, 2)
    flow[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # |m| = 5 vs 0
    flow[1, :, 0, 1] = torch.tensor([0.0, 0.1])
    mask = mean_magnitude_mask(flow)
    assert mask[0, 0, 0].tolist() == [1.0, 0.0]
    assert mask[1, 0, 0].tolist() == [0.0, 1.0]


def test_two_sided_mask_needs_motion_in_every_source():
    a = torch.zeros(1, 2, 1, 4)
    b = torch.zeros(1, 2, 1, 4)
    a[0, 0, 0, :2] = 1.0  # moving at pixels 0, 1 seen from source -1
    b[0, 1, 0, 1:3] = -2.0  # moving at pixels 1, 2 seen from source +1
    assert two_sided_mask([a, b]).tolist() == [[[[0.0, 1.0, 0.0, 0.0]]]]
    invalid = torch.tensor([[[[1.0, 0.0, 1.0, 1.0]]]])
    assert two_sided_mask([a, b], [torch.ones_like(invalid), invalid]).sum() == 0
    with pytest.raises(ValueError, match="ref_flows"):
        two_sided_mask([])
