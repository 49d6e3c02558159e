"""The resumable pipeline: stages in order, each recorded in ``RUN/manifest.json``.

A stage declares the config sections it reads and the stages it needs. Its fingerprint is a hash
of those sections plus its inputs' fingerprints, so changing stage 1's config changes the
fingerprint of every stage after it. Rerunning the pipeline:
- skips a stage whose manifest entry is ``done`` with the same fingerprint and whose outputs exist;
- reruns a stage that was ``running`` when the process died (each stage resumes its own
  checkpoints, so little work is lost);
- reruns a stage whose fingerprint changed, saying which sections changed, and therefore every
  stage after it;
- ``--from STAGE`` forces STAGE and those after it; ``--until STAGE`` stops after STAGE.

Before a stage runs again with another fingerprint than its last run (or is forced with
``--from``), its folders are moved to ``RUN/superseded/<stage>-<time>/``. Stages resume from what
their folders hold (checkpoints, per-frame records), so results of the old config must not be
there. Nothing is deleted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import Config, config_to_dict
from ..io import atomic_write, file_sha256

MANIFEST = "manifest.json"


@dataclass
class Stage:
    """One pipeline step.

    Attributes:
        name: manifest key and CLI name.
        run: ``run(cfg, run_dir) -> dict`` of outputs (paths relative to run_dir, metrics, ...).
        sections: dotted config paths whose values the stage reads (``"stage1"``, ``"run.seed"``).
        needs: names of earlier stages whose outputs it reads.
        outputs: paths (relative to run_dir) that must exist for the stage to count as complete.
        folders: folders (relative to run_dir, glob patterns allowed) holding the stage's work,
            moved aside when a run with another fingerprint replaces it.
    """

    name: str
    run: Callable[[Config, Path], dict]
    sections: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


def _section_values(cfg: Config, dotted: str) -> Any:
    """The values of a config section, as fingerprinted: opt-in keys at their default are left out,
    so a release that adds one does not invalidate runs made before it (``config.opt``)."""
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    if not dataclasses.is_dataclass(value):
        return value
    values = dataclasses.asdict(value)
    for f in dataclasses.fields(value):
        if f.metadata.get("opt_in") and f.default is not dataclasses.MISSING and values[f.name] == f.default:
            del values[f.name]
    return values


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); move it away to start the pipeline afresh") from exc


SUPERSEDED = "superseded"


def move_superseded(run_dir: Path, stage: Stage) -> list[Path]:
    """Move the stage's existing folders to ``RUN/superseded/<stage>-<time>/``; the new locations."""
    run_dir = Path(run_dir)
    found = [p for pattern in stage.folders for p in sorted(run_dir.glob(pattern)) if p.exists()]
    if not found:
        return []
    target = run_dir / SUPERSEDED / f"{stage.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while target.exists():  # two re-runs within one second
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
        suffix += 1
    target.mkdir(parents=True)
    moved = []
    for path in found:
        moved.append(path.rename(target / path.name))
    return moved


def save_manifest(run_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
    atomic_write(Path(run_dir) / MANIFEST, lambda f: f.write(text))


class Pipeline:
    def __init__(self, stages: list[Stage]):
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: duplicate names in {names}")
        for i, stage in enumerate(stages):
            for need in stage.needs:
                if need not in names[:i]:
                    raise ValueError(f"stage '{stage.name}' needs '{need}', which does not come before it")
        self.stages = stages
        self.names = names

    def fingerprints(self, cfg: Config) -> dict[str, dict]:
        """Per stage: its fingerprint and the digest of each config section it reads."""
        out: dict[str, dict] = {}
        for stage in self.stages:
            sections = {s: _digest(_section_values(cfg, s)) for s in stage.sections}
            upstream = {n: out[n]["fingerprint"] for n in stage.needs}
            out[stage.name] = {"fingerprint": _digest([sections, upstream]), "sections": sections}
        return out

    def _index(self, name: str | None, flag: str) -> int | None:
        if name is None:
            return None
        if name not in self.names:
            raise ValueError(f"{flag}: unknown stage '{name}' (stages: {', '.join(self.names)})")
        return self.names.index(name)

    def plan(self, cfg: Config, run_dir: Path, from_stage: str | None = None, until_stage: str | None = None) -> list[tuple[str, str]]:
        """[(stage, reason)] for every stage up to ``until_stage``; reason 'up to date' means skip."""
        start = self._index(from_stage, "--from")
        stop = self._index(until_stage, "--until")
        manifest = load_manifest(run_dir)
        prints = self.fingerprints(cfg)
        plan: list[tuple[str, str]] = []
        for i, stage in enumerate(self.stages):
            if stop is not None and i > stop:
                break
            entry = manifest["stages"].get(stage.name, {})
            missing = [o for o in stage.outputs if not (Path(run_dir) / o).exists()]
            if start is not None and i >= start:
                reason = f"requested with --from {from_stage}"
            elif entry.get("status") == "running":
                reason = "resuming: it was interrupted"
            elif entry.get("status") != "done":
                reason = "not run yet" if not entry else f"last status: {entry.get('status')}"
            elif entry.get("fingerprint") != prints[stage.name]["fingerprint"]:
                old = entry.get("sections", {})
                changed = [s for s, d in prints[stage.name]["sections"].items() if old.get(s) != d]
                inputs = entry.get("inputs", {})
                changed_inputs = [n for n in stage.needs if inputs.get(n) != prints[n]["fingerprint"]]
                if changed:
                    reason = "config changed: " + ", ".join(changed)
                else:
                    reason = "input stage changed: " + ", ".join(changed_inputs or stage.needs)
            elif missing:
                reason = f"outputs missing: {', '.join(missing)}"
            else:
                plan.append((stage.name, "up to date"))
                continue
            plan.append((stage.name, reason))
        # Anything after a re-run stage that depends on it, directly or not, must run too.
        dirty = {name for name, reason in plan if reason != "up to date"}
        for idx, (name, reason) in enumerate(plan):
            stage = self.stages[self.names.index(name)]
            if reason == "up to date" and dirty & set(stage.needs):
                plan[idx] = (name, f"its input '{sorted(dirty & set(stage.needs))[0]}' is re-run")
                dirty.add(name)
        return plan

    def run(
        self,
        cfg: Config,
        run_dir: Path,
        from_stage: str | None = None,
        until_stage: str | None = None,
        log: Callable[[str], None] = print,
        fresh_from: bool = True,
    ) -> dict:
        """Run the plan. ``fresh_from``: stages forced by ``from_stage`` start afresh (their old
        folders moved aside) rather than resuming; a changed fingerprint always starts afresh."""
        run_dir = Path(run_dir)
        plan = self.plan(cfg, run_dir, from_stage, until_stage)
        prints = self.fingerprints(cfg)
        manifest = load_manifest(run_dir)
        manifest["config"] = config_to_dict(cfg)
        for name, reason in plan:
            stage = self.stages[self.names.index(name)]
            if reason == "up to date":
                log(f"[{name}] up to date, skipped")
                continue
            log(f"[{name}] running ({reason})")
            previous = manifest["stages"].get(name)
            forced = fresh_from and from_stage is not None and self.names.index(name) >= self.names.index(from_stage)
            if previous and (forced or previous.get("fingerprint") != prints[name]["fingerprint"]):
                moved = move_superseded(run_dir, stage)
                if moved:
                    log(f"[{name}] its earlier results no longer apply: moved to {moved[0].parent}")
            entry = {
                "status": "running",
                "fingerprint": prints[name]["fingerprint"],
                "sections": prints[name]["sections"],
                "inputs": {n: manifest["stages"].get(n, {}).get("fingerprint") for n in stage.needs},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            manifest["stages"][name] = entry
            save_manifest(run_dir, manifest)
            began = time.monotonic()
            try:
                outputs = stage.run(cfg, run_dir) or {}
            except BaseException as exc:
                entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                save_manifest(run_dir, manifest)
                raise
            missing = [o for o in stage.outputs if not (run_dir / o).exists()]
            if missing:
                entry.update(status="failed", error=f"outputs missing after the run: {missing}")
                save_manifest(run_dir, manifest)
                raise RuntimeError(f"stage '{name}' finished without writing {missing}")
            entry.update(
                status="done",
                finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                seconds=round(time.monotonic() - began, 2),
                outputs=outputs,
                output_hashes={o: file_sha256(run_dir / o) for o in stage.outputs if (run_dir / o).is_file()},
            )
            save_manifest(run_dir, manifest)
            log(f"[{name}] done in {entry['seconds']:.1f} s")
        return manifest

    def run_one(self, cfg: Config, run_dir: Path, name: str, force: bool = False, log: Callable[[str], None] = print) -> dict:
        """Run one stage if it is not up to date (or ``force``); every stage it needs must be done."""
        plan = dict(self.plan(cfg, run_dir, until_stage=name))
        stage = self.stages[self.names.index(name)]
        for need in stage.needs:
            if plan[need] != "up to date":
                raise RuntimeError(f"stage '{name}' needs '{need}' first ({plan[need]}): "
                                   f"run `mcdepth-train {need} --run {run_dir}` or `mcdepth-train run`")
        if plan[name] == "up to date" and not force:
            log(f"[{name}] up to date, skipped (use --force to run it again)")
            return load_manifest(run_dir)
        return self.run(cfg, run_dir, from_stage=name, until_stage=name, log=log, fresh_from=force)
