"""Typed config: defaults, YAML files, dotted overrides, unknown keys, types, values, round trip."""
import dataclasses

import pytest

from mcdepth_train.config import (
    Config,
    ConfigError,
    apply_overrides,
    check_values,
    config_from_dict,
    config_to_dict,
    describe_defaults,
    load_config,
    parse_override,
    save_config,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.model.encoder == "resnet18"
    assert cfg.data.frame_ids == [-1, 0, 1]
    assert cfg.loss.smooth_weight == pytest.approx(1e-3)
    assert cfg.stage3.pl_weight == pytest.approx(0.1)
    assert cfg.dsa.lr_milestones == [3, 10]
    assert cfg.stage1.epochs == 15 and cfg.objects.epochs == 5  # subclass defaults override the base's
    # list defaults are not shared between instances
    cfg.data.frame_ids.append(2)
    assert Config().data.frame_ids == [-1, 0, 1]


def test_yaml_files_override_in_order(tmp_path):
    a = write(tmp_path, "a.yaml", "model:\n  encoder: resnet50\n  max_depth: 80\ndata:\n  height: 96\n")
    b = write(tmp_path, "b.yaml", "data:\n  height: 128\n  frame_ids: [0, 1]\n")
    cfg = load_config([a, b])
    assert cfg.model.encoder == "resnet50"
    assert cfg.model.max_depth == 80.0 and isinstance(cfg.model.max_depth, float)
    assert cfg.data.height == 128  # later file wins
    assert cfg.data.frame_ids == [0, 1]
    assert cfg.data.width == 640  # untouched keys keep their default
    empty = write(tmp_path, "empty.yaml", "")
    assert load_config([empty]) == Config()


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path, "bad.yaml", "model:\n  encodr: resnet50\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    msg = str(info.value)
    assert "model.encodr" in msg and str(path) in msg
    assert "encoder" in msg  # lists the known keys
    section = write(tmp_path, "bad_section.yaml", "modle:\n  encoder: resnet50\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modle'"):
        load_config([section])
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config([write(tmp_path, "scalar.yaml", "model: resnet50\n")])
    with pytest.raises(ConfigError, match="not found"):
        load_config([tmp_path / "missing.yaml"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([write(tmp_path, "broken.yaml", "model: [unclosed\n")])


def test_dotted_overrides(tmp_path):
    file = write(tmp_path, "a.yaml", "model:\n  encoder: resnet50\n")
    cfg = load_config(overrides=["model.encoder=resnet50", "data.height=96", "data.frame_ids=[-2,0,2]", "run.deterministic=true"])
    assert cfg.model.encoder == "resnet50"
    assert cfg.data.height == 96
    assert cfg.data.frame_ids == [-2, 0, 2]
    assert cfg.run.deterministic is True
    # overrides win over files
    assert load_config([file], ["model.encoder=resnet18"]).model.encoder == "resnet18"
    assert parse_override("model.encoder=resnet50") == (["model", "encoder"], "resnet50")
    assert parse_override("data.root=") == (["data", "root"], "")
    with pytest.raises(ConfigError, match="not of the form"):
        parse_override("model.encoder")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("=3")
    with pytest.raises(ConfigError, match="model.bogus"):
        load_config(overrides=["model.bogus=1"])


def test_type_errors_raise():
    with pytest.raises(ConfigError, match=r"data.height.*int.*'abc'"):
        load_config(overrides=["data.height=abc"])
    with pytest.raises(ConfigError, match="data.height"):
        load_config(overrides=["data.height=1.5"])
    with pytest.raises(ConfigError, match="data.height"):
        load_config(overrides=["data.height=true"])  # a bool is not an int
    with pytest.raises(ConfigError, match="run.deterministic"):
        load_config(overrides=["run.deterministic=1"])
    with pytest.raises(ConfigError, match="data.frame_ids"):
        load_config(overrides=["data.frame_ids=3"])
    with pytest.raises(ConfigError, match="loss.ssim_weight"):
        load_config(overrides=["loss.ssim_weight=high"])


def test_ints_accepted_for_floats(tmp_path):
    cfg = load_config(overrides=["loss.ssim_weight=3", "loss.l1_weight=2"])
    assert cfg.loss.ssim_weight == 3.0 and isinstance(cfg.loss.ssim_weight, float)
    assert cfg.loss.l1_weight == 2.0 and isinstance(cfg.loss.l1_weight, float)


def test_scientific_notation_floats(tmp_path):
    # PyYAML (YAML 1.1) reads 2e-4 without a dot as a *string*; a learning rate written that way
    # must still load as a float
    path = write(tmp_path, "lr.yaml", "stage1:\n  lr: 2e-4\nloss:\n  smooth_weight: 1.0e-3\n")
    cfg = load_config([path], ["stage3.lr=5e-6"])
    assert cfg.stage1.lr == pytest.approx(2e-4) and isinstance(cfg.stage1.lr, float)
    assert cfg.loss.smooth_weight == pytest.approx(1e-3)
    assert cfg.stage3.lr == pytest.approx(5e-6)


def test_save_then_load_round_trip(tmp_path):
    cfg = load_config(overrides=["model.encoder=resnet50", "data.frame_ids=[-1,0,1,2]", "stage3.lr=2.5e-05", "run.out_dir=runs/x"])
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    assert path.is_file()
    assert load_config([path]) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    # every default survives the trip too
    assert load_config([save_config(Config(), tmp_path / "defaults.yaml")]) == Config()
    with pytest.raises(ConfigError, match=r"checkpoint: unknown key 'nope'"):
        config_from_dict({"nope": 1})


def test_describe_defaults_lists_every_field():
    text = describe_defaults()
    for section in dataclasses.fields(Config):
        assert f"\n{section.name}:" in "\n" + text
        for f in dataclasses.fields(section.default_factory()):
            assert f"  {f.name}: " in text, f"{section.name}.{f.name} missing"
            assert f.metadata.get("help"), f"{section.name}.{f.name} has no help text"
    assert "  encoder: resnet18  # " in text
    assert "  frame_ids: [-1, 0, 1]  # " in text


def test_yaml_non_string_for_a_string_field_is_an_error_not_a_silent_conversion(tmp_path):
    from mcdepth_train.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("data:\n  split: 2011_09_26\n")  # YAML 1.1 reads this as the int 20110926
    with pytest.raises(ConfigError, match="data.split.*quote"):
        load_config([path])


def test_defaults_and_the_shipped_demo_config_have_valid_values():
    from mcdepth_train.commands.demo_cmd import DEMO_CONFIG

    assert check_values(Config()) == []
    assert check_values(load_config([DEMO_CONFIG])) == []


@pytest.mark.parametrize("override, key", [
    ("objects.min_parallax_px=-1", "objects.min_parallax_px"),
    ("masks.source=maskrcnn", "masks.source"),
    ("masks.source=folder", "masks.instance_folder"),
    ("masks.source=semantic_prior", "masks.maskrcnn_weights"),
    ("masks.contact_ratio=1.0", "masks.contact_ratio"),
    ("masks.contact_ratio=-1", "masks.contact_ratio"),
    ("masks.max_height_ratio=-3", "masks.max_height_ratio"),
    ("masks.central_strip_fraction=1.0", "masks.central_strip_fraction"),
    ("data.height=100", "data.height"),
    ("data.frame_ids=[0]", "data.frame_ids"),
    ("data.dataset=kitti", "data.root"),
    ("model.encoder=resnet101", "model.encoder"),
    ("model.motion_net=raft_tiny", "model.motion_net"),
    ("model.motion_input_scale=0", "model.motion_input_scale"),
    ("model.max_depth=0.05", "model.min_depth/max_depth"),
    ("dsa.groups=5", "dsa.groups"),
    ("dsa.held_out_fraction=1", "dsa.held_out_fraction"),
    ("pseudo.max_ratio_to_ground=0.5", "pseudo.max_ratio_to_ground"),
    ("masks.maskrcnn_max_size=100", "masks.maskrcnn_max_size"),
    ("pseudo.storage=float32", "pseudo.storage"),
    ("stage3.lr=0", "stage3.lr"),
    ("stage3.lr_milestones=[2.5]", "stage3.lr_milestones"),
    ("stage3.pl_upper_percentile=0", "stage3.pl_upper_percentile"),
    ("stage3.pl_error=log", "stage3.pl_error"),
    ("objects.shape_source=lidar", "objects.shape_source"),
    ("stage3.seed=-2", "stage3.seed"),
    ("eval.protocol=kitti", "eval.protocol"),
    ("eval.crop=garg_crop", "eval.crop"),
    ("eval.dataset=kitti", "eval.root"),
    ("export.precision=int4", "export.precision"),
    ("run.amp=fp8", "run.amp"),
    ("run.device=gpu", "run.device"),
])
def test_a_bad_value_is_refused_at_load_naming_its_key(override, key):
    with pytest.raises(ConfigError, match=f"{key}:"):
        load_config([], [override])


def test_every_bad_value_is_listed_at_once():
    cfg = apply_overrides(Config(), ["objects.min_parallax_px=-1", "dsa.groups=5", "eval.crop=bad"])
    problems = check_values(cfg)
    assert [p.split(":")[0] for p in problems] == ["objects.min_parallax_px", "dsa.groups", "eval.crop"]
    with pytest.raises(ConfigError, match="3 bad values"):
        load_config([], ["objects.min_parallax_px=-1", "dsa.groups=5", "eval.crop=bad"])


def test_values_at_the_edges_of_their_ranges_are_accepted():
    edges = ["objects.min_parallax_px=0", "masks.central_strip_fraction=0", "pseudo.max_ratio_to_ground=0",
             "stage3.self_training_rounds=0", "dsa.groups=64", "data.height=64", "eval.crop=cityscapes",
             "eval.protocol=kitti_eigen", "run.device=cuda:1", "masks.source=folder", "masks.instance_folder=/x"]
    assert check_values(apply_overrides(Config(), edges)) == []


def test_config_imports_no_other_mcdepth_module():
    """config.py is the bottom of the import graph: it checks every value with data of its own
    (and the model contract's precisions, from the stdlib-only mcdepth_ros.contract)."""
    import subprocess
    import sys

    code = ("import sys, mcdepth_train.config; "
            "print(sorted(m for m in sys.modules if m.startswith('mcdepth') and m not in ('mcdepth_train', 'mcdepth_train.config', 'mcdepth_ros', 'mcdepth_ros.contract')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # and in the source, so a function-level import (run only by check_values) is caught too
    import ast
    from pathlib import Path

    import mcdepth_train.config as config_module

    tree = ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))
    relative = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    absolute = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    absolute += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0]
    assert relative == [] and [m for m in absolute if m.startswith("mcdepth")] == ["mcdepth_ros.contract"]


def test_the_choice_lists_are_the_ones_the_code_checks_against():
    from mcdepth_train import config
    from mcdepth_train.data import factory
    from mcdepth_train.export import tensorrt
    from mcdepth_train.networks import encoders, motion
    from mcdepth_train.stages.masks import run as masks_run
    from mcdepth_train.stages.pseudo import labels as pseudo

    from mcdepth_ros import contract

    assert factory.DATASETS is config.DATASETS and tensorrt.ENGINE_PRECISIONS is config.ENGINE_PRECISIONS is contract.PRECISIONS
    assert motion.MOTION_NETS is config.MOTION_NETS and masks_run.MASK_SOURCES is config.MASK_SOURCES
    assert pseudo.STORAGES is config.STORAGES and pseudo.check_max_ratio is config.check_max_ratio
    # config names exactly the encoders networks/encoders.py builds, and a registered one joins them
    assert set(encoders.ENCODERS) == config.ENCODERS and {"resnet18", "resnet50"} <= config.ENCODERS
    name = "test_config_encoder"
    if name not in encoders.ENCODERS:
        encoders.register_encoder(name)(encoders.ENCODERS["resnet18"])
    assert set(encoders.ENCODERS) == config.ENCODERS
    assert check_values(apply_overrides(Config(), [f"model.encoder={name}"])) == []
