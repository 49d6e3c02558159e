"""Encoders (registry, local ImageNet weights), depth and pose nets."""
from __future__ import annotations

import pytest
import torch
import torchvision

from mcdepth_train.geometry.disparity import depth_to_sigmoid, sigmoid_to_depth
from mcdepth_train.networks.depth import DepthNet
from mcdepth_train.networks.encoders import ENCODERS, build_encoder
from mcdepth_train.networks.pose import PoseNet


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A saved torchvision ResNet18 state dict with random weights, standing in for ImageNet's."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_registry_knows_resnet18_and_50_and_rejects_unknown():
    assert {"resnet18", "resnet50"} <= set(ENCODERS)
    with pytest.raises(ValueError, match="encoder"):
        build_encoder("vgg16")


def test_encoder_loads_weights_from_a_local_file(resnet18_file):
    state = torch.load(resnet18_file, weights_only=True)
    enc = build_encoder("resnet18", pretrained_path=str(resnet18_file))
    assert torch.equal(enc.net.conv1.weight, state["conv1.weight"])
    assert torch.equal(enc.net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_pose_encoder_six_channels_from_rgb_weights(resnet18_file):
    state = torch.load(resnet18_file, weights_only=True)
    pose = PoseNet("resnet18", pretrained_path=str(resnet18_file))
    w = pose.encoder.net.conv1.weight
    assert w.shape == (64, 6, 7, 7)
    torch.testing.assert_close(w[:, :3], state["conv1.weight"] / 2)
    torch.testing.assert_close(w[:, 3:], state["conv1.weight"] / 2)


def test_bad_weight_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_encoder("resnet18", pretrained_path=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    torch.save({"something": torch.zeros(1)}, junk)
    with pytest.raises(ValueError, match="not a ResNet"):
        build_encoder("resnet18", pretrained_path=str(junk))
    r18 = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), r18)
    with pytest.raises(ValueError, match="does not fit resnet50"):
        build_encoder("resnet50", pretrained_path=str(r18))


def test_resnet50_channels():
    assert build_encoder("resnet50").channels == [64, 256, 512, 1024, 2048]


def test_depth_net_four_scales_within_range():
    torch.manual_seed(0)
    net = DepthNet("resnet18", min_depth=0.1, max_depth=100.0)
    disps = net(torch.rand(1, 3, 64, 96))
    assert [tuple(d.shape[-2:]) for d in disps] == [(64, 96), (32, 48), (16, 24), (8, 12)]
    depth = net.depth(torch.rand(1, 3, 64, 96))
    assert depth.min() >= 0.1 and depth.max() <= 100
    torch.testing.assert_close(sigmoid_to_depth(depth_to_sigmoid(depth, 0.1, 100), 0.1, 100), depth)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 60, 96))


def test_pose_net_starts_near_identity():
    torch.manual_seed(0)
    T = PoseNet("resnet18")(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96))
    assert T.shape == (2, 4, 4)
    torch.testing.assert_close(T[:, 3], torch.tensor([[0.0, 0, 0, 1]] * 2))
    assert (T[:, :3, :3] - torch.eye(3)).abs().max() < 0.05
    assert T[:, :3, 3].abs().max() < 0.05


def test_pose_pairs_are_fed_in_temporal_order():
    """An earlier source is fed (source, reference) and inverted, a later one (reference, source)."""
    from mcdepth_train.geometry import invert_pose

    torch.manual_seed(0)
    net = PoseNet("resnet18").eval()
    ref, earlier, later = (torch.rand(2, 3, 64, 96) for _ in range(3))
    with torch.no_grad():
        torch.testing.assert_close(net.src_from_ref(ref, earlier, -1), invert_pose(net(earlier, ref)))
        torch.testing.assert_close(net.src_from_ref(ref, later, 1), net(ref, later))
        # the two orders really differ, so the test above can tell them apart
        assert (net.src_from_ref(ref, earlier, -1) - net(ref, earlier)).abs().max() > 1e-6


def test_pose_net_starts_with_the_configured_forward_motion():
    torch.manual_seed(0)
    earlier, later = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    moving = PoseNet("resnet18", initial_forward_motion=0.03).eval()
    still = PoseNet("resnet18", initial_forward_motion=0.0).eval()
    still.load_state_dict(moving.state_dict(), strict=False)
    with torch.no_grad():
        still.head[-1].bias[5] = 0.0
        t_moving, t_still = moving(earlier, later)[:, :3, 3], still(earlier, later)[:, :3, 3]
    # only t_z differs, by exactly the configured forward motion (later camera ahead: -z)
    torch.testing.assert_close(t_moving - t_still, torch.tensor([[0.0, 0.0, -0.03]] * 2), atol=1e-6, rtol=0)
