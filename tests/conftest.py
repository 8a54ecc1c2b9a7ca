"""Test-wide settings: one torch thread per test process (CI has 2 cores and 2 xdist workers)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
