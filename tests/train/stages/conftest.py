"""Stage-2 tests run their tiny nets on one thread.

On a loaded machine, a multi-threaded torch spins its threads against other processes and tiny
convolutions get 10-20x slower (Mask R-CNN at 64x64: 12 s vs 0.7 s per forward, measured). The
thread count is restored after each test, so other test files keep torch's default.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
