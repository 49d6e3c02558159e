"""The resumable pipeline runner, with toy stages that count their runs."""
from __future__ import annotations

import json

import pytest

from mcdepth_train.config import load_config
from mcdepth_train.stages.pipeline import Pipeline, Stage, load_manifest


def make_pipeline(calls: list, fail_in: str | None = None) -> Pipeline:
    def step(name):
        def run(cfg, run_dir):
            calls.append(name)
            if name == fail_in:
                raise RuntimeError(f"{name} broke")
            (run_dir / f"{name}.out").write_text(name)
            return {"file": f"{name}.out"}
        return run

    return Pipeline([
        Stage("stage1", step("stage1"), sections=("data", "stage1"), outputs=("stage1.out",)),
        Stage("masks", step("masks"), sections=("masks",), needs=("stage1",), outputs=("masks.out",)),
        Stage("stage3", step("stage3"), sections=("stage3",), needs=("masks",), outputs=("stage3.out",)),
    ])


def test_second_run_skips_finished_stages(tmp_path):
    calls: list = []
    cfg = load_config()
    make_pipeline(calls).run(cfg, tmp_path, log=lambda m: None)
    make_pipeline(calls).run(cfg, tmp_path, log=lambda m: None)
    assert calls == ["stage1", "masks", "stage3"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert all(manifest["stages"][s]["status"] == "done" for s in ("stage1", "masks", "stage3"))
    assert manifest["stages"]["masks"]["inputs"]["stage1"] == manifest["stages"]["stage1"]["fingerprint"]
    assert len(manifest["stages"]["stage3"]["output_hashes"]["stage3.out"]) == 64


def test_changing_an_early_stage_config_reruns_it_and_everything_after(tmp_path):
    calls: list = []
    make_pipeline(calls).run(load_config(), tmp_path, log=lambda m: None)
    changed = load_config(overrides=["stage1.lr=0.001"])
    plan = make_pipeline([]).plan(changed, tmp_path)
    assert plan[0] == ("stage1", "config changed: stage1")
    assert plan[1][0] == "masks" and "stage1" in plan[1][1]
    assert plan[2][0] == "stage3" and "masks" in plan[2][1]
    calls.clear()
    make_pipeline(calls).run(changed, tmp_path, log=lambda m: None)
    assert calls == ["stage1", "masks", "stage3"]


def test_opt_in_keys_at_their_default_leave_fingerprints_as_before_they_existed(tmp_path):
    import dataclasses
    from types import SimpleNamespace

    from mcdepth_train.stages import pipeline
    from mcdepth_train.config import opt

    @dataclasses.dataclass
    class Section:  # a section as a release that adds the opt-in key "added" writes it
        old: int = opt(1, "a key runs were made with")
        added: str = opt("", "a key added later whose default reproduces the old behaviour", opt_in=True)

    pipe = Pipeline([Stage("stage1", lambda cfg, run_dir: {}, sections=("model",))])
    cfg = SimpleNamespace(model=Section())
    # A run made before the key existed hashed the section without it.
    assert pipe.fingerprints(cfg)["stage1"]["sections"]["model"] == pipeline._digest({"old": 1})
    # Set away from its default, the key counts like any other.
    assert pipe.fingerprints(SimpleNamespace(model=Section(added="raft.pth")))["stage1"]["fingerprint"] \
        != pipe.fingerprints(cfg)["stage1"]["fingerprint"]
    # Keys that are not opt-in count at their default too: model.motion_weights changes stage 1's behaviour
    # at its default ('shipped'), so it is not opt-in.
    real = load_config()
    assert not {f.name: f for f in dataclasses.fields(real.model)}["motion_weights"].metadata["opt_in"]
    assert pipeline._section_values(real, "model")["motion_weights"] == "shipped"


def test_changing_a_late_stage_config_keeps_the_early_ones(tmp_path):
    calls: list = []
    make_pipeline(calls).run(load_config(), tmp_path, log=lambda m: None)
    calls.clear()
    make_pipeline(calls).run(load_config(overrides=["stage3.pl_weight=0.5"]), tmp_path, log=lambda m: None)
    assert calls == ["stage3"]


def test_interrupted_stage_is_resumed_and_finished_ones_are_not_redone(tmp_path):
    calls: list = []
    with pytest.raises(RuntimeError, match="masks broke"):
        make_pipeline(calls, fail_in="masks").run(load_config(), tmp_path, log=lambda m: None)
    assert load_manifest(tmp_path)["stages"]["masks"]["status"] == "failed"
    # A process killed mid-stage leaves 'running' behind.
    manifest = load_manifest(tmp_path)
    manifest["stages"]["masks"]["status"] = "running"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert make_pipeline([]).plan(load_config(), tmp_path)[1] == ("masks", "resuming: it was interrupted")
    calls.clear()
    make_pipeline(calls).run(load_config(), tmp_path, log=lambda m: None)
    assert calls == ["masks", "stage3"]


def test_from_and_until(tmp_path):
    calls: list = []
    make_pipeline(calls).run(load_config(), tmp_path, until_stage="masks", log=lambda m: None)
    assert calls == ["stage1", "masks"]
    calls.clear()
    make_pipeline(calls).run(load_config(), tmp_path, from_stage="masks", log=lambda m: None)
    assert calls == ["masks", "stage3"]
    with pytest.raises(ValueError, match="unknown stage 'mask'"):
        make_pipeline([]).plan(load_config(), tmp_path, from_stage="mask")


def test_deleted_output_makes_the_stage_run_again(tmp_path):
    calls: list = []
    make_pipeline(calls).run(load_config(), tmp_path, log=lambda m: None)
    (tmp_path / "masks.out").unlink()
    calls.clear()
    make_pipeline(calls).run(load_config(), tmp_path, log=lambda m: None)
    assert calls == ["masks", "stage3"]


def test_a_stage_needing_a_later_stage_is_rejected():
    with pytest.raises(ValueError, match="needs 'b'"):
        Pipeline([Stage("a", lambda c, d: {}, needs=("b",)), Stage("b", lambda c, d: {})])


def test_run_one_needs_its_inputs_done_and_skips_when_up_to_date(tmp_path):
    calls: list = []
    with pytest.raises(RuntimeError, match="needs 'stage1' first"):
        make_pipeline(calls).run_one(load_config(), tmp_path, "masks")
    make_pipeline(calls).run_one(load_config(), tmp_path, "stage1", log=lambda m: None)
    make_pipeline(calls).run_one(load_config(), tmp_path, "masks", log=lambda m: None)
    make_pipeline(calls).run_one(load_config(), tmp_path, "masks", log=lambda m: None)
    assert calls == ["stage1", "masks"]
    make_pipeline(calls).run_one(load_config(), tmp_path, "masks", force=True, log=lambda m: None)
    assert calls == ["stage1", "masks", "masks"]


def _resuming_pipeline(seen: list) -> Pipeline:
    """One stage that, like the trainers, resumes from what its folder already holds."""
    def run(cfg, run_dir):
        folder = run_dir / "stage3"
        seen.append(sorted(p.name for p in folder.glob("*")) if folder.is_dir() else [])
        folder.mkdir(exist_ok=True)
        (folder / f"last-{cfg.stage3.pl_weight}.pt").write_text("weights")
        (folder / "summary.json").write_text("{}")
        return {}

    return Pipeline([Stage("stage3", run, sections=("stage3",), outputs=("stage3/summary.json",), folders=("stage3",))])


def test_a_changed_config_does_not_resume_from_the_old_configs_results(tmp_path):
    seen: list = []
    _resuming_pipeline(seen).run(load_config(), tmp_path, log=lambda m: None)
    _resuming_pipeline(seen).run(load_config(overrides=["stage3.pl_weight=0.5"]), tmp_path, log=lambda m: None)
    assert seen == [[], []]  # the second run started from an empty folder ...
    old = list((tmp_path / "superseded").glob("stage3-*/stage3/last-0.1.pt"))
    assert len(old) == 1 and old[0].read_text() == "weights"  # ... and nothing was lost
    assert (tmp_path / "stage3" / "last-0.5.pt").is_file()


def test_an_interrupted_stage_resumes_from_its_folder(tmp_path):
    seen: list = []
    _resuming_pipeline(seen).run(load_config(), tmp_path, log=lambda m: None)
    manifest = load_manifest(tmp_path)
    manifest["stages"]["stage3"]["status"] = "running"  # killed mid-stage, same config
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    _resuming_pipeline(seen).run(load_config(), tmp_path, log=lambda m: None)
    assert seen == [[], ["last-0.1.pt", "summary.json"]]
    assert not (tmp_path / "superseded").exists()
    # run_one without --force resumes too; with --force it starts afresh
    manifest["stages"]["stage3"]["status"] = "running"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    _resuming_pipeline(seen).run_one(load_config(), tmp_path, "stage3", log=lambda m: None)
    assert seen[-1] == ["last-0.1.pt", "summary.json"]
    _resuming_pipeline(seen).run_one(load_config(), tmp_path, "stage3", force=True, log=lambda m: None)
    assert seen[-1] == []
