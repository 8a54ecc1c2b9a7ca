"""The tensor-memory metric of benchmarks/mlo.py: live-bytes reconstruction and a 4 MiB toy."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mlo(load_benchmark):
    return load_benchmark("mlo")


def test_live_bytes_window_is_relative_to_the_start(mlo):
    events = [(0, 100), (5, 50), (10, 30), (11, -50), (12, 200), (13, -200), (20, 7), (30, -100)]
    # live at start (t < 10): 150; in [10, 20]: 180, 130, 330, 130, 137
    assert mlo.live_bytes_window(events, 10, 20) == (180, -13)
    # records out of time order are sorted; equal times keep their given order
    assert mlo.live_bytes_window([(3, 5), (1, 10), (3, -10)], 2, 3) == (5, -5)
    assert mlo.live_bytes_window([(3, -10), (3, 5)], 0, 9) == (0, -5)
    assert mlo.live_bytes_window([], 0, 1) == (0, 0)


def test_profile_tensor_memory_sees_a_4_mib_tensor(mlo):
    mib = 2**20
    kept = []

    def loop(n):
        for _ in range(n):
            x = torch.empty(mib, dtype=torch.float32)  # 4 MiB
            x.fill_(1.0)
            del x

    peak, retained = mlo.profile_tensor_memory(loop, 2, 3)
    assert 4 * mib <= peak < 4 * mib + 64 * 1024
    assert retained == 0

    # a tensor allocated during the warm-up and still live at the window's start is part of the
    # baseline; its free inside the window lowers the live bytes
    def loop_keep(n):
        for _ in range(n):
            kept.append(torch.ones(mib))  # 4 MiB each
            del kept[:-1]

    peak, retained = mlo.profile_tensor_memory(loop_keep, 2, 3)
    # each step's new 4 MiB tensor is live next to the previous one until that is freed
    assert 4 * mib <= peak < 4 * mib + 64 * 1024
    assert retained == 0

    # a tensor allocated in the window and kept counts in the peak and in what is retained
    def loop_grow(n):
        for _ in range(n):
            kept.append(torch.ones(mib))

    kept.clear()
    peak, retained = mlo.profile_tensor_memory(loop_grow, 2, 3)
    assert 12 * mib <= peak < 12 * mib + 64 * 1024
    assert 12 * mib <= retained < 12 * mib + 64 * 1024
