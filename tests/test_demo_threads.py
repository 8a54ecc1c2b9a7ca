"""The demos run torch on the cores other jobs leave free."""

from __future__ import annotations

import os

import pytest
import torch

from metatune.demos import common


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (1.2, 3), (2.6, 1), (9.0, 1)])
def test_free_cores_subtract_the_load(monkeypatch, load: float, expected: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert common.free_cores() == expected


def test_torch_threads_are_limited_and_restored(monkeypatch) -> None:
    monkeypatch.setattr(common, "free_cores", lambda: 1)
    before = torch.get_num_threads()
    with common.torch_threads_on_free_cores():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
