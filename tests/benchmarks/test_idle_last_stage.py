"""The synthetic pipeline whose cheap last stage does not matter (issue 18, point 4)."""

from __future__ import annotations

import pytest

from metatune.benchmarks.pipelines import idle_last_stage_pipeline
from metatune.benchmarks.registry import PIPELINE_BENCHMARKS


def test_the_idle_last_stage_changes_the_cost_but_not_the_objective() -> None:
    sim = idle_last_stage_pipeline(0.1).make()
    base = {"prep.x0": 0.1, "prep.x1": 0.55, "prep.x2": 0.85}
    a = sim.objective({**base, "train.x0": -4.0, "train.x1": 3.0})
    b = sim.objective({**base, "train.x0": 1.0, "train.x1": -2.0})
    assert a == b
    assert sim.optimal_value == pytest.approx(-3.86278, abs=1e-5)  # Hartmann3's alone
    assert sim.stage_cost(1, {"train.x0": -5.0, "train.x1": -5.0}) != sim.stage_cost(
        1, {"train.x0": 5.0, "train.x1": 5.0}
    )
    assert PIPELINE_BENCHMARKS.get("hartmann-idle-last10").pipeline.name == "hartmann-idle-last10"
