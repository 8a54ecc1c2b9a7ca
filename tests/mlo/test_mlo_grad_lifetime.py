"""The lower step's gradients do not outlive its optimizer step into the upper step it triggers."""

from __future__ import annotations

import weakref

import pytest
from mlo_testlib import ridge_engine

from metatune.mlo import get_hypergradient
from metatune.mlo.engine import Engine
from metatune.mlo.hypergradients import HYPERGRADIENTS, register_hypergradient


@pytest.mark.parametrize("method", ["darts", "neumann", "cg"])
def test_lower_gradients_are_freed_before_the_upper_step(method, monkeypatch):
    lower_grads: list[weakref.ref] = []
    alive_at_hop: list[int] = []
    original = Engine._gradients

    def recording(self, problem, loss, params, *, create_graph=False):
        direct, total = original(self, problem, loss, params, create_graph=create_graph)
        if problem.name == "inner":
            lower_grads[:] = [weakref.ref(t) for t in (*direct, *total) if t is not None]
        return direct, total

    inner_method = get_hypergradient(method)

    def probe(vector, lower, upper, options):
        alive_at_hop.append(sum(r() is not None for r in lower_grads))
        return inner_method(vector, lower, upper, options)

    monkeypatch.setattr(Engine, "_gradients", recording)
    name = f"_probe_{method}"
    register_hypergradient(name, options=inner_method.option_spec, overwrite=True)(probe)
    try:
        engine, _ = ridge_engine(name, train_iters=3, outer_lr=0.01)
        engine.run()
    finally:
        if name in HYPERGRADIENTS:
            HYPERGRADIENTS.unregister(name)
    assert alive_at_hop == [0, 0, 0]
