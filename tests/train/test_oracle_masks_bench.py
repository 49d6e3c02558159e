"""bench/oracle_masks.py: the oracle inputs it builds from the generator's ground truth."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from conftest import load_bench

from mcdepth_train.data import keys


def _load():
    return load_bench("oracle_masks")


def test_oracle_instances_one_mask_per_instance_id():
    ids = torch.zeros(1, 4, 6, dtype=torch.int64)
    ids[0, :2, :2] = 3
    ids[0, 2:, 4:] = 7
    masks = _load().oracle_instances({keys.INSTANCE_MAP: ids})
    assert masks.shape == (2, 4, 6) and masks.dtype == bool
    assert masks[0].sum() == 4 and masks[0, :2, :2].all()
    assert masks[1].sum() == 4 and masks[1, 2:, 4:].all()
    assert _load().oracle_instances({keys.INSTANCE_MAP: torch.zeros(1, 4, 6, dtype=torch.int64)}).shape == (0, 4, 6)


def test_oracle_evidence_resizes_the_true_moving_mask():
    dyn = torch.zeros(1, 8, 8)
    dyn[0, :4, 4:] = 1
    evidence = _load().oracle_evidence({keys.DYNAMIC_MASK: dyn}, (4, 4))
    np.testing.assert_array_equal(evidence, np.array([[0, 0, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2, bool))


def test_oracle_needs_ground_truth():
    bench = _load()
    with pytest.raises(ValueError, match="instance_map"):
        bench.oracle_instances({})
    with pytest.raises(ValueError, match="dynamic_mask"):
        bench.oracle_evidence({}, (4, 4))


def test_object_tables_report_which_kinds_were_flagged_moving_and_their_errors(tmp_path):
    from mcdepth_train.config import load_config
    from mcdepth_train.data.synthetic import SceneParams
    from mcdepth_train.data.synthetic_folder import write_synthetic
    from mcdepth_train.stages.frames import frames_dataset, save_frame

    bench = _load()
    data, run = tmp_path / "synth", tmp_path / "run"
    write_synthetic(data, SceneParams(height=64, width=192, num_frames=6), seed=3, num_sequences=1,
                    num_test_sequences=0, progress=False)
    cfg = load_config([], [f"data.root={data}", "data.height=64", "data.width=192", "data.num_scales=2"])
    dataset = frames_dataset(cfg)
    for i in range(len(dataset)):
        sample = dataset[i]
        instances = bench.oracle_instances(sample)
        ids = sample[keys.INSTANCE_MAP][0].numpy()
        kinds = dataset.scene_truth(i)["kinds"]
        # Flag exactly the parked cars: every parked row must read 1, every other kind 0.
        moving = np.array([kinds[int(np.unique(ids[m])[0])] == "parked" for m in instances], bool)
        gt = sample[keys.DEPTH_GT][0].numpy()
        save_frame(run / "masks" / "frames", i, instances=instances, moving=moving, usable=np.ones(len(instances), bool),
                   stage1_depth=gt, ground=np.zeros(gt.shape, bool))
        save_frame(run / "objects" / "frames", i, object_depth=np.repeat(gt[None], len(instances), 0),
                   parallax_px=np.full(len(instances), 2.0, np.float32))
        save_frame(run / "dsa" / "frames", i, scales=np.ones(len(instances), np.float32))
    per_object, rows = bench.object_tables(cfg, run, every=1)
    assert rows == bench.per_kind_objects(cfg, run, every=1)
    # The flagged (parked) objects carry their true depth at scale 1: no error at any scale.
    assert per_object["objects"] > 0 and per_object["objects"] == round(rows["parked"]["objects"]), per_object
    assert abs(per_object["dsa_scale_error"]) < 1e-5 and per_object["true_scale"] < 1e-5
    assert "parked" in rows and len(rows) >= 2, rows
    for kind, row in rows.items():
        assert row["flagged_moving"] == (1.0 if kind == "parked" else 0.0), (kind, row)
        assert row["object_shape_abs_rel"] < 1e-5 and row["below_min_parallax"] == 0.0


def test_overrides_reach_stages_2_3_but_not_the_copied_stage1(tmp_path, capsys):
    bench = _load()
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--stage1-run", str(run), "--out", str(tmp_path / "out"), "stage1.epochs=2"])
    assert exit_info.value.code == 2 and "stage1.epochs is read by stage 1" in capsys.readouterr().err
    for key in ("run.seed=3", "loss.ssim_weight=0.5", "data.height=32"):  # everything stage 1's fingerprint reads
        with pytest.raises(SystemExit):
            bench.main(["--stage1-run", str(run), "--out", str(tmp_path / "out"), key])
        assert "is read by stage 1" in capsys.readouterr().err
    from mcdepth_train.config import Config, save_config

    (run / "stage1").mkdir(parents=True)
    save_config(Config(), run / "config.yaml")
    with pytest.raises(ValueError, match="masks.contact_ratio"):
        bench.prepare(run, tmp_path / "out", False, "stage1", None, ["masks.contact_ratio=0.5"])


def test_a_seed_reruns_stage3_only_and_keeps_stage1_up_to_date(tmp_path):
    """--seeds S sets stage3.seed; run.seed, which stage 1's fingerprint reads, stays (else every
    seed retrained stage 1: measured, 15 min at three drives)."""
    from mcdepth_train.config import Config, save_config
    from mcdepth_train.stages.workflow import method_pipeline

    run = tmp_path / "run"
    run.mkdir()
    original = Config()
    save_config(original, run / "config.yaml")
    cfg = _load().bench_config(run, tmp_path / "out", False, 2, ["masks.contact_ratio=1.5"])
    assert cfg.stage3.seed == 2 and cfg.run.seed == original.run.seed and cfg.masks.contact_ratio == 1.5
    assert cfg.masks.source == "folder" and cfg.masks.instance_folder == str(tmp_path / "out" / "oracle_instances")
    pipeline = method_pipeline(with_eval=False, with_export=False)
    before, after = pipeline.fingerprints(original), pipeline.fingerprints(cfg)
    assert after["stage1"] == before["stage1"]
    assert after["stage3"] != before["stage3"]
