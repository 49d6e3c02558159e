"""Stage 2 over a run: the per-frame mask records written from a (briefly trained) stage 1."""
from __future__ import annotations

import numpy as np
import pytest

from mcdepth_train.stages.frames import frame_path, load_frame
from mcdepth_train.stages.stage1 import train_stage1
from mcdepth_train.stages.masks.run import run_masks
from tests.train.scenes import TinyScene, tiny_config


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(out, ["stage1.epochs=1", "stage1.max_steps=3", "stage1.depth_pose_epochs=0", "stage1.motion_only_epochs=0"])
    train_stage1(cfg, TinyScene(num_samples=4), None)
    return cfg, out


def test_masks_writes_one_complete_record_per_frame_and_resumes(stage1_run):
    cfg, out = stage1_run
    cfg.masks.ground_net, cfg.masks.maskrcnn_steps = False, 0  # fast: normal-based ground, components only
    scene = TinyScene(num_samples=4)
    summary = run_masks(cfg, out, dataset=scene)
    assert summary["frames"] == 4 and 0 <= summary["dynamic_mask_iou"] <= 1
    record = load_frame(out / "masks" / "frames", 2)
    h, w = 64, 128
    assert record["stage1_depth"].shape == (h, w) and record["stage1_depth"].dtype == np.float16
    assert record["dynamic_evidence"].shape == (h, w) and record["ground"].dtype == bool
    n = len(record["instances"])
    assert record["moving"].shape == (n,) and record["usable"].shape == (n,)
    assert record["instances_prev"].shape == (n, h, w) and record["instances_next"].shape == (n, h, w)
    assert int(record["frame"]) == int(scene[2]["frame"])
    # The ground of the corridor (lower image rows) is found from stage-1 normals only if depth is
    # plausible; here only its type is checked. A rerun finds every record and redoes nothing.
    before = frame_path(out / "masks" / "frames", 0).stat().st_mtime_ns
    assert run_masks(cfg, out, dataset=scene) == summary
    assert frame_path(out / "masks" / "frames", 0).stat().st_mtime_ns == before


def test_masks_contact_rule_flags_the_instance_stage1_puts_nearer_than_the_road(stage1_run, tmp_path):
    """masks.contact_ratio, over a run: stage 1's pass is replaced by a flat road (ground from row
    40) and three boxes; the one at half the road's depth under it becomes moving, the others keep
    what the motion rules (and the central strip) said."""
    import shutil

    from mcdepth_train.stages.frames import save_frame
    from mcdepth_train.stages.masks.instances import write_folder_instances
    from mcdepth_train.stages.masks.run import stage1_pass
    from tests.train.geometry.helpers import flat_road

    cfg, out = stage1_run
    scene = TinyScene(num_samples=4)
    road, road_at = flat_road(h=64, w=128, f=60.0, cy=16.0)
    boxes = np.zeros((3, 64, 128), bool)
    for k, (r0, c0) in enumerate([(20, 10), (26, 50), (26, 90)]):  # bottom rows 33, 39, 39
        boxes[k, r0 : r0 + 14, c0 : c0 + 20] = True
    depth = road.copy()
    depth[boxes[0]] = road_at(34.0) / 2  # twice nearer than the road it stands on
    depth[boxes[1] | boxes[2]] = road_at(40.0)
    folder = tmp_path / "instances"
    moving = {}
    for ratio in (0.0, 1.5):
        run = tmp_path / f"ratio_{ratio}"
        shutil.copytree(out / "stage1", run / "stage1")
        cfg.masks.ground_net, cfg.masks.maskrcnn_steps = False, 0
        cfg.masks.source, cfg.masks.instance_folder, cfg.masks.contact_ratio = "folder", str(folder), ratio
        records = stage1_pass(cfg, run, scene)
        for i in range(len(scene)):
            r = load_frame(records, i)
            r.update(stage1_depth=depth.astype(np.float16), normal_ground=np.arange(64)[:, None].repeat(128, 1) >= 40,
                     dynamic_evidence=np.zeros((64, 128), bool))
            save_frame(records, i, **r)
            write_folder_instances(folder, str(r["sequence"]), int(r["frame"]), boxes)
        run_masks(cfg, run, dataset=scene)
        moving[ratio] = [load_frame(run / "masks" / "frames", i)["moving"].tolist() for i in range(len(scene))]
    cfg.masks.source, cfg.masks.instance_folder, cfg.masks.contact_ratio = "self_supervised", "", 0.0
    assert moving[0.0] == [[False, True, False]] * 4  # the middle box touches the central strip
    assert moving[1.5] == [[True, True, False]] * 4


def test_masks_motion_source_dis_reads_dis_flow_in_place_of_the_motion_net(stage1_run, tmp_path):
    """masks.motion_source=dis: the stage-1 pass writes DIS flow on the motion net's own input
    (the splatted reference and the source frame), the same depth and poses, and is resumable."""
    import shutil

    from mcdepth_train.networks.dis_flow import DISFlow
    from mcdepth_train.stages.masks.run import stage1_pass

    cfg, out = stage1_run
    scene = TinyScene(num_samples=4)
    records = {}
    for source in ("net", "dis"):
        run = tmp_path / source
        shutil.copytree(out / "stage1", run / "stage1")
        cfg.masks.motion_source = source
        records[source] = [load_frame(stage1_pass(cfg, run, scene), i) for i in range(len(scene))]
    cfg.masks.motion_source = "net"
    net, dis = records["net"][1], records["dis"][1]
    assert np.array_equal(net["stage1_depth"], dis["stage1_depth"]) and np.allclose(net["poses"], dis["poses"])
    assert dis["flows"].shape == net["flows"].shape and not np.allclose(dis["flows"], net["flows"])
    assert isinstance(DISFlow.from_config(cfg.masks), DISFlow)
    # a rerun finds every record and rewrites none
    before = frame_path(tmp_path / "dis" / "masks" / "stage1", 1).stat().st_mtime_ns
    cfg.masks.motion_source = "dis"
    stage1_pass(cfg, tmp_path / "dis", scene)
    cfg.masks.motion_source = "net"
    assert frame_path(tmp_path / "dis" / "masks" / "stage1", 1).stat().st_mtime_ns == before


def test_masks_needs_a_stage1_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(Exception, match="no checkpoint of stage 'stage1'"):
        run_masks(cfg, tmp_path, dataset=TinyScene(num_samples=2))


def _write_box_records(out, scene):
    """Mask records whose one instance is the scene's true moving box (and its masks at t-1, t+1)."""
    from mcdepth_train.stages.frames import save_frame

    for i in range(len(scene)):
        t = i + 1  # TinyScene sample i is centred on frame i + 1
        box = {d: scene.frames[t + d]["box"][0].numpy() > 0.5 for d in (-1, 0, 1)}
        save_frame(out / "masks" / "frames", i, sequence=np.array("tiny"), frame=np.array(t),
                   stage1_depth=scene.frames[t]["depth"][0].numpy().astype(np.float16),
                   dynamic_evidence=box[0], ground=np.zeros_like(box[0]), instances=box[0][None],
                   moving=np.array([True]), instances_prev=box[-1][None], instances_next=box[1][None],
                   usable=np.array([box[0].sum() > 20]), K=scene.K.numpy())


def test_objects_trains_from_stage1_and_writes_object_depth_inside_each_mask(stage1_run, tmp_path):
    import shutil

    from mcdepth_train.stages.objects.run import run_objects

    cfg, out = stage1_run
    run = tmp_path / "run"
    shutil.copytree(out / "stage1", run / "stage1")
    cfg = type(cfg)(**{**cfg.__dict__})
    cfg.run.out_dir = str(run)
    cfg.objects.epochs, cfg.objects.max_steps, cfg.objects.batch_size = 1, 2, 2
    scene = TinyScene(num_samples=4)
    _write_box_records(run, scene)
    summary = run_objects(cfg, run, dataset=scene)
    assert summary["objects"] >= 3 and summary["frames_written"] == 4
    rec = load_frame(run / "objects" / "frames", 1)["object_depth"]
    box = load_frame(run / "masks" / "frames", 1)["instances"][0]
    assert rec.shape == (1, 64, 128)
    assert (rec[0][box] > 0).all() and (rec[0][~box] == 0).all()
    assert (run / "objects" / "checkpoints" / "last.pt").is_file()
    assert run_objects(cfg, run, dataset=scene)["frames_written"] == 0  # resumable: nothing redone


def test_objects_without_parallax_keep_stage1_depth_as_their_shape(stage1_run, tmp_path):
    import copy
    import shutil

    from mcdepth_train.stages.objects.run import run_objects

    cfg, out = stage1_run
    scene = TinyScene(num_samples=4)
    results = {}
    for threshold in (0.0, 1e9):  # never / always below the parallax threshold
        run = tmp_path / f"run{threshold:g}"
        shutil.copytree(out / "stage1", run / "stage1")
        c = copy.deepcopy(cfg)  # the fixture's config stays as it was
        c.run.out_dir = str(run)
        c.objects.epochs, c.objects.max_steps, c.objects.batch_size = 1, 2, 2
        c.objects.min_parallax_px = threshold
        _write_box_records(run, scene)
        summary = run_objects(c, run, dataset=scene)
        results[threshold] = (summary, [load_frame(run / "objects" / "frames", i) for i in range(4)])
    usable = [bool(load_frame(tmp_path / "run0" / "masks" / "frames", i)["usable"][0]) for i in range(4)]
    never, always = results[0.0], results[1e9]
    assert never[0]["depth_from_stage1"] == 0
    assert always[0]["depth_from_stage1"] == sum(usable) >= 3
    for i, ok in enumerate(usable):
        if not ok:
            continue
        box = scene.frames[i + 1]["box"][0].numpy() > 0.5
        stage1 = load_frame(tmp_path / "run0" / "masks" / "frames", i)["stage1_depth"]
        parallax = never[1][i]["parallax_px"][0]
        assert np.isfinite(parallax) and parallax >= 0  # measured from the object net's depth and motion
        assert always[1][i]["from_stage1"][0] and not never[1][i]["from_stage1"][0]
        shape = stage1[box].astype(np.float32)
        np.testing.assert_allclose(always[1][i]["object_depth"][0][box], shape / np.median(shape), rtol=2e-3)
        assert (always[1][i]["object_depth"][0][~box] == 0).all()
        assert not np.allclose(never[1][i]["object_depth"][0][box], shape / np.median(shape), rtol=2e-3)


def test_objects_with_stage1_shape_source_train_nothing_and_keep_stage1_shape(stage1_run, tmp_path):
    import copy
    import shutil

    from mcdepth_train.stages.objects.run import run_objects

    cfg, out = stage1_run
    run = tmp_path / "run"
    shutil.copytree(out / "stage1", run / "stage1")
    c = copy.deepcopy(cfg)
    c.run.out_dir = str(run)
    c.objects.shape_source = "stage1"
    scene = TinyScene(num_samples=4)
    _write_box_records(run, scene)
    summary = run_objects(c, run, dataset=scene)
    assert summary["shape_source"] == "stage1" and summary["frames_written"] == 4
    assert summary["depth_from_stage1"] == sum(int(load_frame(run / "masks" / "frames", i)["usable"].sum()) for i in range(4))
    assert not (run / "objects" / "checkpoints").exists()  # no object net was trained
    for i in range(4):
        rec, masks = load_frame(run / "objects" / "frames", i), load_frame(run / "masks" / "frames", i)
        if not masks["usable"][0]:
            continue
        box = masks["instances"][0]
        shape = masks["stage1_depth"][box].astype(np.float32)
        assert rec["from_stage1"][0] and not np.isfinite(rec["parallax_px"][0])
        np.testing.assert_allclose(rec["object_depth"][0][box], shape / np.median(shape), rtol=2e-3)
        assert (rec["object_depth"][0][~box] == 0).all()


def test_bad_parallax_or_ground_ratio_is_refused_by_name_before_anything_is_written(stage1_run, tmp_path):
    import copy
    import shutil

    from mcdepth_train.stages.objects.run import run_objects
    from mcdepth_train.stages.pseudo.run import run_pseudo

    cfg, out = stage1_run
    run = tmp_path / "run"
    shutil.copytree(out / "stage1", run / "stage1")
    c = copy.deepcopy(cfg)  # the fixture's config stays as it was
    c.run.out_dir = str(run)
    c.objects.min_parallax_px = -1.0
    with pytest.raises(ValueError, match="objects.min_parallax_px"):
        run_objects(c, run, dataset=TinyScene(num_samples=2))
    c.objects.min_parallax_px = 1.0
    for bad in (1.0, 0.5, -2.0):
        c.pseudo.max_ratio_to_ground = bad
        with pytest.raises(ValueError, match="pseudo.max_ratio_to_ground"):
            run_pseudo(c, run, dataset=TinyScene(num_samples=2))
    assert not (run / "objects").exists() and not (run / "pseudo").exists()


def test_masks_with_the_appearance_net_trains_it_once_and_keeps_the_mover(stage1_run, tmp_path):
    """masks.appearance_net_steps over a run: stage 1's pass is replaced by a road (ground from row
    40) with one box of motion evidence; the net is trained on it and kept, the box stays a moving
    instance, and a rerun of the instance pass loads the net instead of training it."""
    import shutil

    from mcdepth_train.stages.frames import save_frame
    from mcdepth_train.stages.masks.run import stage1_pass
    from tests.train.geometry.helpers import flat_road

    cfg, out = stage1_run
    scene = TinyScene(num_samples=4)
    road, _ = flat_road(h=64, w=128, f=60.0, cy=16.0)
    box = np.zeros((64, 128), bool)
    box[26:40, 50:70] = True
    run = tmp_path / "appearance"
    shutil.copytree(out / "stage1", run / "stage1")
    cfg.masks.ground_net, cfg.masks.maskrcnn_steps, cfg.masks.appearance_net_steps = False, 0, 20
    try:
        records = stage1_pass(cfg, run, scene)
        for i in range(len(scene)):
            r = load_frame(records, i)
            r.update(stage1_depth=road.astype(np.float16), normal_ground=(np.arange(64)[:, None] >= 40).repeat(128, 1),
                     dynamic_evidence=box)
            save_frame(records, i, **r)
        run_masks(cfg, run, dataset=scene)
        net = run / "masks" / "appearance_net.pt"
        assert net.is_file()
        for i in range(len(scene)):
            record = load_frame(run / "masks" / "frames", i)
            movers = record["instances"][record["moving"]]
            assert any((m & box).sum() >= 0.5 * box.sum() for m in movers)
        before = net.stat().st_mtime_ns
        (run / "masks" / "instances.npz").unlink()
        for path in (run / "masks" / "frames").glob("*.npz"):
            path.unlink()
        run_masks(cfg, run, dataset=scene)
        assert net.stat().st_mtime_ns == before
    finally:
        cfg.masks.appearance_net_steps = 0
