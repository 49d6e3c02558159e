"""The whole method end to end on tiny synthetic scenes, killed with SIGKILL mid-run and resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO

TINY = [
    "run.progress=false", "data.height=64", "data.width=192", "data.synth_frames=8", "data.synth_sequences=1",
    "data.synth_test_sequences=1", "model.splat_supersample=1",
    "stage1.epochs=1", "stage1.max_steps=3", "stage1.batch_size=2", "stage1.depth_pose_epochs=0",
    "stage1.motion_only_epochs=0", "stage1.checkpoint_every=1", "stage1.val_batches=1",
    "masks.maskrcnn_steps=2", "masks.maskrcnn_min_size=64", "masks.maskrcnn_max_size=192", "masks.ground_net_steps=2",
    "objects.max_steps=2", "objects.batch_size=2", "dsa.max_steps=2", "dsa.crop_size=32",
    "stage3.max_steps=2", "stage3.batch_size=2", "stage3.self_training_rounds=1", "stage3.val_batches=1",
    "stage3.keep_better=true",
    "export.height=64", "export.width=192",
]
STAGES = ["stage1", "masks", "objects", "dsa", "pseudo", "stage3", "eval", "export"]


def _command(run_dir):
    return [sys.executable, "-m", "mcdepth_train.cli", "run", "--run", str(run_dir), *TINY]


def _manifest(run_dir):
    try:
        return json.loads((run_dir / "manifest.json").read_text())["stages"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def test_pipeline_killed_mid_run_resumes_without_redoing_finished_stages(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(run_dir), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if _manifest(run_dir).get("masks", {}).get("status") == "done":
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"pipeline ended before it could be killed: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)  # a real kill -9, somewhere after masks
    proc.wait()
    before = _manifest(run_dir)
    assert before["stage1"]["status"] == "done" and before["masks"]["status"] == "done"
    assert any(before.get(s, {}).get("status") != "done" for s in STAGES)

    result = subprocess.run(_command(run_dir), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[stage1] up to date, skipped" in result.stdout and "[masks] up to date, skipped" in result.stdout
    after = _manifest(run_dir)
    for stage in STAGES:
        assert after[stage]["status"] == "done", stage
    for stage in ("stage1", "masks"):  # not redone: same start time and fingerprint as before the kill
        assert after[stage]["started"] == before[stage]["started"]
        assert after[stage]["fingerprint"] == before[stage]["fingerprint"]

    # Every stage left its outputs: per-region metrics of each stage and round, the model for the node.
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"stage 1", "stage 3", "stage 3 + 1 self-training"}
    assert metrics["stage 1"]["all"]["images"] > 0 and metrics["stage 1"]["dynamic"]["images"] > 0
    # Stage 3 kept a round only if its validation photometric loss beat the net it started from.
    from mcdepth_train.stages.frames import stage_checkpoint

    stage3 = json.loads((run_dir / "stage3" / "summary.json").read_text())
    final = str(stage_checkpoint(run_dir, "stage1"))
    for entry in stage3["rounds"]:
        assert entry["adopted"] == (entry["val_photometric"] < entry["init_val_photometric"])
        assert entry["init"] == final  # each round started from the net kept so far
        if entry["adopted"]:
            final = str(stage_checkpoint(run_dir, f"stage3/round{entry['round']}"))
    assert stage3["final"] == final
    assert "Final (exported) net: **" in (run_dir / "eval" / "metrics.md").read_text()
    contract = json.loads((run_dir / "export" / "model.json").read_text())
    assert contract["input"]["shape"] == [1, 3, 64, 192]
    assert json.loads((run_dir / "pseudo" / "manifest.json").read_text())["complete"]
    pseudo = json.loads((run_dir / "pseudo" / "summary.json").read_text())
    assert set(pseudo["scale_guard"]) == {"moving_objects", "left_out_off_ground", "no_ground_to_check"}
    assert list((run_dir / "pseudo" / "inspect").glob("*.png"))

    # Changing a late stage's config re-runs that stage and those after it, and says why.
    plan = subprocess.run([*_command(run_dir), "stage3.pl_weight=0.2", "--plan"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = dict(line.split(None, 1) for line in plan.stdout.strip().splitlines())
    assert lines["pseudo"] == "up to date" and lines["stage3"] == "config changed: stage3"
    assert "stage3" in lines["eval"] and "stage3" in lines["export"]

    # `mcdepth-train eval --run` evaluates with the run's own config (its data and size), so it
    # reproduces the pipeline's eval stage exactly.
    from mcdepth_train.cli import main

    (run_dir / "eval").rename(run_dir / "eval_pipeline")
    assert main(["eval", "--run", str(run_dir), "run.progress=false"]) == 0
    again = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert again.keys() == metrics.keys()
    for name in metrics:
        assert again[name]["all"]["images"] == metrics[name]["all"]["images"]
        assert abs(again[name]["all"]["abs_rel"] - metrics[name]["all"]["abs_rel"]) < 1e-6
    # The training frames go to their own folder and leave the held-out report alone.
    assert main(["eval", "--run", str(run_dir), "--split", "train", "run.progress=false"]) == 0
    on_train = json.loads((run_dir / "eval_train" / "metrics.json").read_text())
    assert on_train.keys() == metrics.keys()
    assert json.loads((run_dir / "eval" / "metrics.json").read_text()) == again
