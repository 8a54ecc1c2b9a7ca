"""benchmarks/goodput_time_to_target.py and its tasks: the teacher data, the targets and ratios
the page reports, and a tiny run through the controller."""

import math

import pytest
import torch

from metatune.benchmarks.goodput_tasks import TIME_TO_TARGET_TASKS, teacher_classification


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("goodput_time_to_target")


def test_teacher_data_is_deterministic_and_has_a_floor_above_zero():
    (x, y), (xv, yv), floor = teacher_classification(n_train=500, n_val=200, seed=3)
    (x2, y2), _, floor2 = teacher_classification(n_train=500, n_val=200, seed=3)
    assert x.shape == (500, 32) and xv.shape == (200, 32) and y.shape == (500,)
    assert torch.equal(x, x2) and torch.equal(y, y2) and floor == floor2
    assert 0.0 < floor < math.log(10)
    assert set(y.tolist()) <= set(range(10)) and len(set(y.tolist())) > 5
    (x3, _), _, _ = teacher_classification(n_train=500, n_val=200, seed=4)
    assert not torch.equal(x, x3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_train": 0}, "n_train"), ({"dim": 0}, "dim"), ({"classes": 1}, "classes")],
)
def test_teacher_data_rejects_bad_sizes_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        teacher_classification(**kwargs)


def test_every_task_builds_a_model_for_the_data():
    (x, _), _, _ = teacher_classification(n_train=8, n_val=2)
    for task in TIME_TO_TARGET_TASKS.values():
        model = task.make_model()
        task.make_optimizer(model)
        assert model(x).shape == (8, 10)


def _rows(times: dict[str, list[float]], best: dict[str, float]):
    """Rows whose curve reaches loss 0.5 (below every target) at the given times (inf: never)."""
    rows = []
    for label, ts in times.items():
        for seed, t in enumerate(ts):
            curve = [[0.1, 2.0, 16]] + ([[t, 0.5, 16]] if math.isfinite(t) else [])
            rows.append(
                {"task": "t", "config": label, "seed": seed, "curve": curve, "best": best[label]}
            )
    return rows


def test_targets_and_ratios(bench):
    labels = bench.LABELS
    times = dict(
        zip(
            labels,
            ([8.0, 9.0, 10.0], [5.0] * 3, [4.0] * 3, [3.0] * 3, [2.0] * 3, [2.2, 2.3, math.inf]),
            strict=True,
        )
    )
    best = dict(zip(labels, (0.98, 0.97, 0.96, 0.95, 0.94, 0.95), strict=True))
    rows = _rows(times, best)
    targets = bench.targets_for(rows, "t")
    assert targets["loose"] == pytest.approx(bench.TARGET_SLACK * 0.98)
    assert targets["tight"] == pytest.approx(bench.TARGET_SLACK * 0.96)
    s = bench.summarize(rows, "loose")["t"]
    assert s["cells"]["1M0"]["median"] == 9.0
    assert s["cells"]["adaptive"]["median"] == 2.3 and s["cells"]["adaptive"]["missed"] == 1
    assert s["vs_best"] == pytest.approx(2.3 / 2.0)
    assert s["vs_median"] == pytest.approx(2.3 / 4.0)
    assert not bench.met(s)  # within 0.7x the median, but over 1.1x the best
    times["adaptive"] = [1.9, 2.0, 2.1]
    assert bench.met(bench.summarize(_rows(times, best), "loose")["t"])


def test_time_to_is_the_first_evaluation_at_or_below_the_target(bench):
    curve = [[1.0, 3.0, 16], [2.0, 1.5, 16], [3.0, 0.9, 32], [4.0, 0.8, 32]]
    assert bench.time_to(curve, 1.0) == 3.0
    assert bench.time_to(curve, 1.5) == 2.0
    assert bench.time_to(curve, 0.5) == math.inf


def test_a_short_run_finishes_its_schedule(bench):
    import dataclasses

    task = dataclasses.replace(TIME_TO_TARGET_TASKS["mlp-sgd"], schedule_steps=60)
    train, val, _ = teacher_classification(n_train=4000, n_val=500)
    ticks = iter(range(10**6))
    r = bench.run(task, train, val, seed=0, fixed=None, clock_fn=lambda: next(ticks) * 1e-3)
    assert r["finished"] and r["curve"]
    assert r["best"] < math.log(10)  # it learned something in 60 M0-steps
    fixed = bench.run(task, train, val, seed=0, fixed=64, clock_fn=lambda: next(ticks) * 1e-3)
    assert fixed["finished"] and fixed["median_total"] == 64 and fixed["steps"] < 60
