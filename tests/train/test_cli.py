"""``mcdepth-train`` entry point: help, config defaults, unknown command, bad override."""
import pytest

from mcdepth_train.cli import COMMANDS, main


def run_main(argv):
    """main's exit code, whether it returns it or exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_help_lists_commands(capsys):
    assert run_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "mcdepth-train" in out
    for name in COMMANDS:
        assert name in out


def test_no_arguments_prints_help_and_fails(capsys):
    assert run_main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_config_defaults(capsys):
    assert run_main(["config", "--defaults"]) == 0
    out = capsys.readouterr().out
    assert "model:" in out and "  encoder: resnet18  # " in out


def test_config_resolved_with_override(capsys):
    assert run_main(["config", "model.encoder=resnet50"]) == 0
    assert "encoder: resnet50" in capsys.readouterr().out


def test_unknown_command(capsys):
    assert run_main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_bad_override_key_exits_2_naming_the_key(capsys):
    assert run_main(["config", "model.encodr=resnet50"]) == 2
    err = capsys.readouterr().err
    assert "model.encodr" in err


def test_bad_config_file_key_names_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("loss:\n  smoth_weight: 1\n", encoding="utf-8")
    assert run_main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "loss.smoth_weight" in err and str(path) in err


def test_run_refuses_a_bad_late_stage_value_before_stage_1_starts(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_main(["run", "--run", str(run), "objects.min_parallax_px=-1"]) == 2
    assert "objects.min_parallax_px" in capsys.readouterr().err
    assert not run.exists()  # nothing trained, nothing written
