"""Atomic file writes (stdlib only), shared by the vehicle's engine builder and the trainer.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over the
target, so a crash mid-write never replaces a good checkpoint, engine or label with a broken one
and a reader never sees half a file. (``mcdepth_train.io`` re-exports this for the trainer.)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], mode: int | None = None) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync, then rename it over ``path``.

    ``mode`` sets the permissions (mkstemp creates files 0600); None keeps them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically, world-readable (0644): the node may run as another user than the writer."""
    return atomic_write(path, lambda f: f.write(data), mode=0o644)
