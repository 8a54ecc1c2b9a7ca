"""Test-wide settings: one torch thread per test process (CI has 2 cores and 2 xdist workers)."""

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The pipeline cache signs its entries with a key kept outside the cache folder; tests (and the
# worker processes they start) share one made for the test run instead of the user's own.
os.environ.setdefault(
    "METATUNE_CACHE_KEY_FILE",
    os.path.join(tempfile.gettempdir(), f"metatune-test-{os.getuid()}", "cache.key"),
)


def pytest_configure(config):
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
