import itertools
import math

import pytest

from metatune import Float, Pipeline, Stage
from metatune.benchmarks.ml_pipelines import ML_PIPELINES, with_stage_clock


def _cheapest(space):
    """The low end of every range: the fastest configuration of each pipeline."""
    params = {}
    for name, p in space.items():
        params[name] = p.choices[0] if hasattr(p, "choices") else p.low
    return params


@pytest.mark.parametrize("name", sorted(ML_PIPELINES))
def test_pipeline_runs_and_reuses_its_prefix(name, tmp_path):
    pipeline = ML_PIPELINES[name](cache=tmp_path / "cache")
    params = _cheapest(pipeline.space)
    first = pipeline.run(params)
    assert first.error is None, first.error
    assert math.isfinite(first.result["objective"]) and first.result["objective"] > 0
    assert not any(s.cache_hit for s in first.stages)

    # change only the last stage's first parameter: every earlier stage comes from the cache
    last = pipeline.stage_names[-1]
    key = next(k for k in params if k.startswith(last + "."))
    p = pipeline.space[key]
    params[key] = p.choices[-1] if hasattr(p, "choices") else p.high
    second = pipeline.run(params)
    assert second.error is None, second.error
    assert [s.cache_hit for s in second.stages] == [True] * (len(second.stages) - 1) + [False]
    assert second.cost < first.cost


def test_benchmark_runner_spends_its_budget_with_a_fresh_cache():
    from metatune.benchmarks.ml_pipelines import run_ml_pipeline

    # a simulated clock (each stage 1 s): how many trials fit is not left to the machine's speed
    rec = run_ml_pipeline(
        "vision", "random", seed=0, budget=1.0, stage_clock=itertools.count().__next__
    )
    assert rec["n_trials"] >= 1 and len(rec["costs"]) == rec["n_trials"]
    assert rec["costs"][-1] >= 1.0 or rec["n_trials"] > 1
    assert rec["reused_stages"][0] == 0  # nothing cached at the start of a run
    assert math.isfinite(rec["best"]) and rec["budget_exhausted"]
    with pytest.raises(ValueError, match="unknown pipeline"):
        run_ml_pipeline("audio", "random", seed=0, budget=1.0)
    # a run that cannot spend its budget is cut by max_trials, and says so
    capped = run_ml_pipeline("vision", "random", seed=0, budget=1e9, max_trials=2, trial_cost=50)
    assert capped["n_trials"] == 2 and not capped["budget_exhausted"]
    assert capped["costs"][0] >= 50 and capped["costs"][1] - capped["costs"][0] >= 50
    with pytest.raises(ValueError, match="max_trials"):
        run_ml_pipeline("vision", "random", seed=0, budget=1.0, max_trials=0)


def _double(*, x: float) -> float:
    return 2 * x


def _square(prev: float, *, y: float) -> float:
    return (prev - y) ** 2


def test_a_clocked_pipeline_charges_its_clock_and_keeps_its_own_cache_keys(tmp_path):
    plain = Pipeline(
        [Stage("a", _double, {"x": Float(0, 1)}), Stage("b", _square, {"y": Float(0, 1)})],
        cache=tmp_path / "cache",
    )
    clocked = with_stage_clock(plain, itertools.count(0.0, 2.5).__next__)
    params = {"a.x": 0.25, "b.y": 0.5}
    first = clocked.run(params)
    assert first.error is None and first.result == 0.0
    assert [s.cost for s in first.stages] == [2.5, 2.5]
    again = clocked.run({**params, "b.y": 0.0})
    assert [s.cache_hit for s in again.stages] == [True, False]
    assert [s.cost for s in again.stages] == [0.0, 2.5]  # a hit costs nothing on that clock
    assert plain.keys(params) != clocked.keys(params)  # wall-second outputs are kept apart
    assert plain.run(params).cache_depth == 0
