"""The benchmark registries and the run record the scripts write."""

import json
import math
from pathlib import Path

import pytest
import torch

from metatune._registry import UnknownNameError
from metatune.benchmarks.registry import (
    COST_SHARES,
    DEFAULT_FUNCTIONS,
    DEFAULT_HELD_OUT_TASKS,
    DEFAULT_PIPELINE_BENCHMARKS,
    HELD_OUT_TASKS,
    HIGH_DIM_FUNCTIONS,
    PIPELINE_BENCHMARKS,
    SYNTHETIC_FUNCTIONS,
    PipelineBenchmark,
    cost_share_benchmarks,
)
from metatune.benchmarks.runs import BenchmarkRun

DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"


def test_every_pipeline_benchmark_is_one_typed_record_under_its_own_name():
    assert set(DEFAULT_PIPELINE_BENCHMARKS) <= set(PIPELINE_BENCHMARKS)
    for name, bench in PIPELINE_BENCHMARKS.items():
        assert isinstance(bench, PipelineBenchmark) and bench.name == name
        assert bench.default_budget > 0 and bench.description
        assert bench.kind == ("real" if name.startswith("ml-") else "synthetic")
    assert PIPELINE_BENCHMARKS.get("ml-vision").cost_label == "cost spent (stage seconds)"
    with pytest.raises(UnknownNameError, match="unknown pipeline benchmark 'nope'; available: "):
        PIPELINE_BENCHMARKS.get("nope")
    with pytest.raises(ValueError, match="kind must be"):
        PipelineBenchmark("x", "d", 1.0, "simulated", "vision")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown real pipeline 'audio'"):
        PipelineBenchmark("x", "d", 1.0, "real", "audio")


def test_the_cost_share_family_is_registered_by_share():
    family = cost_share_benchmarks()
    assert list(family.values()) == list(COST_SHARES)
    for name, share in family.items():
        assert PIPELINE_BENCHMARKS.get(name).last_stage_share == share
        assert name == f"hartmann-levy-last{round(100 * share):02d}"


def test_synthetic_functions_and_held_out_tasks_are_registered():
    assert set(DEFAULT_FUNCTIONS) | set(HIGH_DIM_FUNCTIONS) == set(SYNTHETIC_FUNCTIONS)
    info = SYNTHETIC_FUNCTIONS.get("Ackley5").info()
    assert info["dim"] == 5 and info["bounds"][0] == [-5.0, 10.0]
    assert all(SYNTHETIC_FUNCTIONS.get(n).info()["high_dim"] for n in HIGH_DIM_FUNCTIONS)
    # Hartmann6 embedded in 40 inputs: only its 6 columns matter, its optimum is Hartmann6's
    f = SYNTHETIC_FUNCTIONS.get("Hartmann6in40").make()
    X = torch.rand(4, 40, dtype=torch.double)
    Y = X.clone()
    Y[:, [j for j in range(40) if j not in set(f.columns.tolist())]] = 0.5
    assert f.dim == 40 and len(f.columns) == 6
    assert torch.allclose(f.evaluate_true(X), f.evaluate_true(Y))
    assert torch.allclose(f.evaluate_true(X), f.inner.evaluate_true(X[:, f.columns]))
    assert set(DEFAULT_HELD_OUT_TASKS) == set(HELD_OUT_TASKS)
    with pytest.raises(UnknownNameError, match="unknown held-out task 'x'"):
        HELD_OUT_TASKS.get("x")


def test_a_run_builds_once_and_writes_the_published_layout():
    run = PIPELINE_BENCHMARKS.get("hartmann-levy").run("random", seed=0, budget=120.0)
    assert isinstance(run, BenchmarkRun)
    assert run.n_trials == len(run.costs) > 1 and run.costs[-1] >= 120.0
    assert run["best"] == run.best == min(run.values)  # readable like the dict it replaced
    record = run.to_dict()
    published = json.loads((DOCS / "pipelines.json").read_text())["runs"]
    synthetic = next(r for r in published if r["benchmark"] == "hartmann-levy")
    job_keys = ("error", "benchmark", "wall_seconds")  # added by the script per job
    assert list(record) == [k for k in synthetic if k not in job_keys]
    assert json.loads(json.dumps(record)) == record
    later = json.loads((DOCS / "pipelines-vision-300" / "pipelines.json").read_text())["runs"]
    real = next(r for r in later if "stage_costs" in r)  # recorded since the vision-300 runs
    empty = BenchmarkRun.from_trials(
        [],
        method="ei",
        seed=0,
        pipeline="vision",
        budget=1.0,
        n_warmup=10,
        record_budget_exhausted=True,
    ).to_dict()
    assert list(empty) == [k for k in real if k not in job_keys]
    assert empty["budget_exhausted"] is False and math.isnan(empty["best"])
