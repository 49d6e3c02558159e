"""The trainer's file I/O: atomic files and folders, and file hashes.

``atomic_write``/``write_bytes_atomic`` (a temp file, fsync, rename) and ``file_sha256`` are the
vehicle side's (``mcdepth_ros.files``, ``mcdepth_ros.contract``: stdlib only), re-exported so the
trainer has one place to import them from; the export contract's hashes and a run's hashes are
computed by the same function.

Folders are written under a temporary name and renamed when complete, safe with several processes.
Several processes (torchrun ranks, data-loader set-up) may build the same cache at once; each writes
its own ``<name>.partial-<pid>`` and the first complete one is published. An interrupted write
leaves only a ``.partial-*`` folder, never something that looks complete.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from mcdepth_ros.contract import file_sha256  # noqa: F401 - re-exported
from mcdepth_ros.files import atomic_write, write_bytes_atomic  # noqa: F401 - re-exported


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or of another kind (raised by engine/checkpoint.py
    and by networks that rebuild themselves from one)."""


def partial_dir(target: Path) -> Path:
    """A fresh, empty ``<target>.partial-<pid>`` beside target."""
    target = Path(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def publish_dir(partial: Path, target: Path, replace: bool) -> bool:
    """Rename ``partial`` to ``target``; return False if another process's result was kept instead.

    ``replace``: an existing non-empty target is removed first (a stale cache); otherwise a
    non-empty target that appeared meanwhile wins and ``partial`` is deleted. An empty target
    folder is always replaced.
    """
    partial, target = Path(partial), Path(target)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists() and replace:
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(partial, target)
        return True
    except OSError:
        if target.is_dir() and any(target.iterdir()):
            shutil.rmtree(partial, ignore_errors=True)
            return False
        raise
