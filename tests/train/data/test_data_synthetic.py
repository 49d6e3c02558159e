"""The synthetic generator: determinism, exact geometry, moving objects, the written folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcdepth_train.config import load_config
from mcdepth_train.data import build_dataset, keys
from mcdepth_train.data.synthetic import KIND_LEAD, KIND_PARKED, SceneParams, SyntheticScene, intrinsics_for, render_sequence
from mcdepth_train.data.synthetic_folder import SyntheticFolderDataset, read_manifest, write_synthetic

TINY = SceneParams(height=64, width=192, num_frames=5)


def test_tiny_sequence_is_complete():
    # Render speed is measured by bench/render.py, not asserted here.
    seq = render_sequence(TINY, seed=0)
    assert len(seq.frames) == 5
    f = seq.frames[2]
    assert f.image.shape == (64, 192, 3) and f.image.dtype == np.uint8
    assert f.depth.shape == (64, 192) and f.depth.dtype == np.float32
    assert f.instance_map.shape == (64, 192)
    assert f.cam_pose.shape == (4, 4)
    assert set(f.object_poses) == {i.id for i in seq.instances}
    np.testing.assert_allclose(seq.K, intrinsics_for(TINY))
    # rich texture everywhere: the image is far from flat
    assert f.image.std() > 20


def test_same_seed_same_bytes_other_seed_other_scene():
    a = render_sequence(TINY, seed=3)
    b = render_sequence(TINY, seed=3)
    c = render_sequence(TINY, seed=4)
    for fa, fb in zip(a.frames, b.frames):
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.depth, fb.depth)
        assert np.array_equal(fa.instance_map, fb.instance_map)
    assert not np.array_equal(a.frames[0].image, c.frames[0].image)


def test_ground_depth_at_a_known_pixel_is_exact():
    # No jitter, no cars: every pixel below the horizon near the bottom sees the ground plane,
    # whose depth along z is fy * h / (v - cy).
    p = SceneParams(height=64, width=192, num_frames=2, yaw_jitter_deg=0, pitch_jitter_deg=0, lead_car=False,
                    num_oncoming=0, num_crossing=0, parked_prob=0.0)
    scene = SyntheticScene(p, seed=0)
    frame = scene.render(1)
    K = scene.K
    for v in (50, 63):
        u = 96
        expected = K[1, 1] * p.camera_height / (v - K[1, 2])
        assert frame.depth[v, u] == pytest.approx(expected, rel=1e-5)
    # The camera pose is the ego motion: straight ahead at ego_speed.
    np.testing.assert_allclose(frame.cam_pose[:3, 3], [0, 0, p.ego_speed / p.fps])
    np.testing.assert_allclose(frame.cam_pose[:3, :3], np.eye(3), atol=1e-12)


def test_depth_reprojects_static_pixels_between_frames():
    # Exact depth + poses: static pixels of frame 0 land where frame 1 sees the same depth.
    p = SceneParams(height=64, width=192, num_frames=2, num_oncoming=0, num_crossing=0)
    seq = render_sequence(p, seed=1)
    f0, f1 = seq.frames
    K = seq.K
    v, u = np.mgrid[0:64, 0:192]
    static = (f0.depth > 0) & (f0.instance_map == 0)
    pts = np.linalg.inv(K) @ np.stack([u[static], v[static], np.ones(static.sum())]) * f0.depth[static]
    world = f0.cam_pose[:3, :3] @ pts + f0.cam_pose[:3, 3:4]
    cam1 = np.linalg.inv(f1.cam_pose)[:3, :3] @ world + np.linalg.inv(f1.cam_pose)[:3, 3:4]
    pix = K @ cam1
    u1, v1 = np.round(pix[0] / pix[2]).astype(int), np.round(pix[1] / pix[2]).astype(int)
    inside = (u1 >= 0) & (u1 < 192) & (v1 >= 0) & (v1 < 64)
    z_pred = cam1[2][inside]
    z_seen = f1.depth[v1[inside], u1[inside]]
    agree = np.abs(z_pred - z_seen) < 0.05 * z_pred
    assert agree.mean() > 0.9  # the rest: occlusion edges and rounding to pixels


def test_lead_car_keeps_its_distance_and_is_dynamic():
    seq = render_sequence(SceneParams(height=64, width=192, num_frames=6, yaw_jitter_deg=0, pitch_jitter_deg=0), seed=0)
    lead = next(i for i in seq.instances if i.kind == KIND_LEAD)
    assert lead.dynamic
    gaps = [f.object_poses[lead.id][2, 3] - f.cam_pose[2, 3] for f in seq.frames]
    np.testing.assert_allclose(gaps, gaps[0], atol=1e-9)  # moves exactly at the ego speed
    # Its rear face projects to the image centre at a constant size.
    K = seq.K
    for f in seq.frames:
        centre = f.object_poses[lead.id][:3, 3] - f.cam_pose[:3, 3]
        z_rear = centre[2] - lead.size[2] / 2
        u, v = K[0, 0] * centre[0] / z_rear + K[0, 2], K[1, 1] * centre[1] / z_rear + K[1, 2]
        assert f.instance_map[int(round(v)), int(round(u))] == lead.id
        assert f.depth[int(round(v)), int(round(u))] == pytest.approx(z_rear, rel=1e-5)
    assert all(seq.dynamic_mask(i)[f.instance_map == lead.id].all() for i, f in enumerate(seq.frames))
    parked = [i for i in seq.instances if i.kind == KIND_PARKED]
    assert parked and not any(i.dynamic for i in parked)
    assert all(np.array_equal(seq.frames[0].object_poses[i.id], seq.frames[-1].object_poses[i.id]) for i in parked)


def test_written_folder_reads_back_with_ground_truth(tmp_path):
    out = tmp_path / "synth"
    params = SceneParams(height=64, width=192, num_frames=6)
    manifest = write_synthetic(out, params, seed=5, num_sequences=2, num_test_sequences=1, progress=False)
    assert read_manifest(out)["frames"] == 18 == manifest["frames"]
    assert not list(tmp_path.glob("synth.partial*"))
    assert 0.0 < manifest["dynamic_fraction"] < 0.3
    ds = SyntheticFolderDataset(out, "train", height=64, width=192, num_scales=2)
    assert len(ds) == 2 * 3  # 4 triplet centres per sequence, last 10% (1) held out
    assert len(SyntheticFolderDataset(out, "val", height=64, width=192, num_scales=2)) == 2
    assert len(SyntheticFolderDataset(out, "test", height=64, width=192, num_scales=2)) == 4
    sample = ds[0]
    seq = render_sequence(params, seed=5)
    frame = seq.frames[1]
    np.testing.assert_allclose(sample[keys.DEPTH_GT][0].numpy(), frame.depth, atol=1.0 / 256)  # uint16 PNG at 1/256 m
    assert torch.equal(sample[keys.INSTANCE_MAP][0], torch.from_numpy(frame.instance_map.astype(np.int64)))
    assert torch.equal(sample[keys.DYNAMIC_MASK][0].bool(), torch.from_numpy(seq.dynamic_mask(1)))
    assert sample[keys.INSTANCE_DYNAMIC].nonzero().flatten().tolist() == seq.dynamic_ids.tolist()
    np.testing.assert_allclose(sample[(keys.CAM_POSE, 1)].numpy(), seq.frames[2].cam_pose, atol=1e-5)
    np.testing.assert_allclose(sample[keys.color(0)].permute(1, 2, 0).numpy(), frame.image / 255.0, atol=1e-6)
    truth = ds.scene_truth(0)
    assert {i: k for i, k in truth["kinds"].items()} == {i.id: i.kind for i in seq.instances}
    assert [i for i, d in truth["dynamic"].items() if d] == seq.dynamic_ids.tolist()
    for f in (-1, 0, 1):
        np.testing.assert_allclose(truth["cam_poses"][f], seq.frames[1 + f].cam_pose, atol=1e-5)
        for i, pose in seq.frames[1 + f].object_poses.items():
            np.testing.assert_allclose(truth["object_poses"][f][i], pose, atol=1e-5)
    with pytest.raises(FileExistsError):
        write_synthetic(out, params, num_sequences=1, progress=False)


def test_build_dataset_generates_a_cache_when_root_is_empty(tmp_path):
    cfg = load_config([], [f"run.out_dir={tmp_path / 'run'}", "data.height=64", "data.width=192", "data.num_scales=2",
                           "data.synth_frames=5", "data.synth_sequences=1"])
    train = build_dataset(cfg, "train")
    test = build_dataset(cfg, "test")
    assert len(train) == 2 and len(test) == 3
    caches = list((tmp_path / "run" / "cache").glob("synthetic-*"))
    assert len(caches) == 1 and json.loads((caches[0] / "synthetic.json").read_text())["seed"] == 0
    # Test frames come from another seed than training frames.
    assert not torch.equal(train[0][keys.color(0)], test[0][keys.color(0)])
    with pytest.raises(ValueError, match="split"):
        build_dataset(cfg, "training")


def test_synth_command_writes_folder_and_bags(tmp_path, capsys):
    from mcdepth_train.cli import main

    out = tmp_path / "out"
    rc = main(["synth", "--out", str(out), "--format", "both", "--storage", "mcap", "--compressed", "data.height=64",
               "data.width=192", "data.synth_frames=4", "data.synth_sequences=1", "data.synth_test_sequences=0", "run.progress=false"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "4 frames" in text and "dynamic pixel fraction" in text
    bags = sorted(p.name for p in (out / "rosbag2").iterdir())
    assert bags == ["synth_drive_0000"]
    assert list((out / "rosbag2" / "synth_drive_0000").glob("*.mcap"))
    # The bag trains through the rosbag loader; the folder through the synthetic loader.
    cfg = load_config([], [f"data.dataset=rosbag", f"data.root={out / 'rosbag2' / 'synth_drive_0000'}", f"run.out_dir={tmp_path / 'run'}",
                           "data.height=64", "data.width=192", "data.num_scales=2", "run.progress=false"])
    assert len(build_dataset(cfg, "test")) == 2
    cfg = load_config([], [f"data.root={out}", "data.height=64", "data.width=192", "data.num_scales=2"])
    assert len(build_dataset(cfg, "train")) == 1
    assert main(["synth", "--out", str(out)]) == 2  # refuses to overwrite


def test_samples_batch_with_the_default_collate(tmp_path):
    out = tmp_path / "synth"
    write_synthetic(out, SceneParams(height=64, width=192, num_frames=5), seed=1, num_sequences=1, num_test_sequences=0, progress=False)
    ds = SyntheticFolderDataset(out, "train", height=64, width=192, num_scales=2, augment=True, flip_prob=0.5)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False)))
    assert batch[keys.color(0, 1)].shape == (2, 3, 32, 96)
    assert batch[keys.intrinsics(1)].shape == (2, 3, 3)
    assert batch[keys.DEPTH_GT].shape == (2, 1, 64, 192) and batch[keys.INSTANCE_DYNAMIC].shape == (2, 256)
    assert batch[keys.SEQUENCE] == ["synth/synth_drive_0000_sync/image_02"] * 2
    assert batch[keys.FLIPPED].dtype == torch.bool


def test_a_second_writer_keeps_the_first_complete_result(tmp_path):
    from mcdepth_train.io import partial_dir, publish_dir

    target = tmp_path / "cache"
    first, second = partial_dir(target), tmp_path / "other.partial"
    (first / "a").write_text("first")
    second.mkdir()
    (second / "a").write_text("second")
    assert publish_dir(first, target, replace=False)
    assert not publish_dir(second, target, replace=False)
    assert (target / "a").read_text() == "first" and not second.exists()


def test_lighting_change_and_noise_are_optional_and_seeded():
    base = dict(height=64, width=192, num_frames=4)
    plain = render_sequence(SceneParams(**base), seed=2)
    lit = render_sequence(SceneParams(**base, lighting_change=0.3), seed=2)
    noisy = render_sequence(SceneParams(**base, noise_std=0.02), seed=2)
    noisy2 = render_sequence(SceneParams(**base, noise_std=0.02), seed=2)
    assert not np.array_equal(lit.frames[0].image, plain.frames[0].image)
    # The brightness drifts slowly (period about 10 s): compare frames 3 s apart.
    long = dict(height=64, width=192, num_frames=40)
    lit_scene, plain_scene = SyntheticScene(SceneParams(**long, lighting_change=0.3), 2), SyntheticScene(SceneParams(**long), 2)
    ratios = [lit_scene.render(i).image.mean() / plain_scene.render(i).image.mean() for i in (0, 15, 30)]
    assert max(ratios) - min(ratios) > 0.05
    assert np.array_equal(noisy.frames[1].image, noisy2.frames[1].image)
    diff = noisy.frames[1].image.astype(float) - plain.frames[1].image
    assert 2.0 < diff.std() < 8.0  # about 0.02 * 255
    assert np.array_equal(noisy.frames[1].depth, plain.frames[1].depth)  # geometry is untouched


def test_every_kind_of_car_appears_and_moves_its_own_way():
    seq = render_sequence(SceneParams(height=64, width=192, num_frames=60), seed=0)
    by_kind = {}
    for inst in seq.instances:
        by_kind.setdefault(inst.kind, []).append(inst)
    assert set(by_kind) == {"lead", "oncoming", "crossing", "parked"}
    first, last = seq.frames[0], seq.frames[-1]
    for inst in by_kind["oncoming"]:
        assert last.object_poses[inst.id][2, 3] < first.object_poses[inst.id][2, 3]  # towards the camera
        assert first.object_poses[inst.id][0, 3] < 0  # in the left (oncoming) lane
    for inst in by_kind["crossing"]:
        assert abs(last.object_poses[inst.id][0, 3] - first.object_poses[inst.id][0, 3]) > 10  # across the street
        assert first.object_poses[inst.id][2, 3] == last.object_poses[inst.id][2, 3]
    seen = {k: sum(any((f.instance_map == i.id).any() for i in v) for f in seq.frames) for k, v in by_kind.items()}
    assert all(n >= 20 for n in seen.values()), seen
    assert 0.01 < seq.dynamic_fraction() < 0.2


def test_facade_depth_at_known_pixels_is_exact():
    # Right facade: the plane x = X; a ray through column u meets it at depth X * fx / (u - cx).
    p = SceneParams(height=64, width=192, num_frames=1, yaw_jitter_deg=0, pitch_jitter_deg=0, lead_car=False,
                    num_oncoming=0, num_crossing=0, parked_prob=0.0, side_street_prob=0.0)
    scene = SyntheticScene(p, seed=3)
    frame = scene.render(0)
    K, X = scene.K, scene.facade_x[1]
    v = int(K[1, 2]) - 8  # above the horizon, below every roof
    checked = 0
    for u in range(150, 192, 5):
        expected = X * K[0, 0] / (u - K[0, 2])
        assert frame.depth[v, u] == pytest.approx(expected, rel=1e-5)
        assert frame.instance_map[v, u] == 0
        checked += 1
    assert checked >= 8
