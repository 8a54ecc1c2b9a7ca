"""The held-out and validation suites of the learned controller: tasks, grid and scoring."""

import math

import pytest

from metatune.benchmarks.lhopt_suite import (
    VALIDATION_SUITES,
    VALIDATION_TASKS,
    SpaceTask,
    SuiteTask,
    grid_curves,
    policy_curve,
    score_task,
    speedup,
    suite_score,
)
from metatune.benchmarks.registry import DEFAULT_HELD_OUT_TASKS, HELD_OUT_TASKS
from metatune.lhopt import Policy
from metatune.lhopt.controller import default_policy_path
from metatune.lhopt.task_space import HELD_OUT_FAMILIES, TRAIN_FAMILIES, VALIDATION_FAMILIES


def test_the_suites_never_use_a_training_family():
    held = [HELD_OUT_TASKS.get(n) for n in DEFAULT_HELD_OUT_TASKS]
    assert len(held) >= 8 and {"matrix-factorization", "diabetes-regression"} <= set(
        DEFAULT_HELD_OUT_TASKS
    )
    space = [t.make.family for t in held if isinstance(t.make, SpaceTask)]
    assert set(space) <= set(HELD_OUT_FAMILIES)
    assert {t.make.family for t in VALIDATION_TASKS} == {"mlp-moons", "mlp-hastie"}  # rule 1
    assert {t.make.family for t in VALIDATION_SUITES["v2"]} == set(VALIDATION_FAMILIES)
    assert VALIDATION_SUITES["v2"][:4] == VALIDATION_TASKS
    assert not set(space + VALIDATION_FAMILIES) & set(TRAIN_FAMILIES)
    assert all(200 <= t.steps <= 5000 for t in held if isinstance(t.make, SpaceTask))


def test_a_space_task_seed_is_the_same_task_every_time():
    task = SpaceTask("mlp-moons", 10, 200)
    a, b = task(1), SpaceTask("mlp-moons", 10, 200)(1)
    assert a.val_loss() == b.val_loss()
    assert task(0).val_loss() != a.val_loss()
    with pytest.raises(ValueError, match="seed must be in"):
        task(10)


def test_the_lockstep_grid_equals_the_one_model_grid():
    task = SuiteTask("t", SpaceTask("mlp-hastie", 12, 200), 60)
    cells = [(1.0, "constant"), (3.0, "warmup_cosine")]
    lockstep = grid_curves(task, [0, 1], cells)
    one_model = grid_curves(SuiteTask("t", lambda s: task.make(s), 60), [0, 1], cells)
    for c in cells:
        for x, y in zip(lockstep[c], one_model[c], strict=True):
            assert [t for t, _ in x] == [t for t, _ in y]
            assert [v for _, v in x] == pytest.approx([v for _, v in y], rel=1e-4)


def test_a_cached_grid_is_not_run_again():
    task = SuiteTask("t", SpaceTask("mlp-hastie", 12, 200), 20)
    cache: dict = {}
    first = grid_curves(task, [0], [(1.0, "cosine")], cache)
    cache[next(iter(cache))] = [[20, 0.123]]
    assert grid_curves(task, [0], [(1.0, "cosine")], cache)[(1.0, "cosine")] == [[(20, 0.123)]]
    assert first[(1.0, "cosine")][0][-1][1] != 0.123


def test_speedup_and_scores():
    base = [(10, 1.0), (20, 0.5), (30, 0.6)]
    assert speedup(base, [(10, 0.4), (20, 0.3)], 40) == 4.0  # reached at step 10 of 40
    assert speedup(base, [(10, 1.0), (20, 0.8)], 40) == pytest.approx(0.5 / 0.8)
    assert speedup(base, [(10, math.inf)], 40) == 0.0
    grid = {(1.0, "cosine"): [base, base], (3.0, "constant"): [[(10, 0.45)], [(10, 0.45)]]}
    r = score_task(grid, [[(10, 0.5)], [(10, 0.9)]], 10)
    assert r["best_cell"] == {"lr_mult": 3.0, "schedule": "constant"}
    assert r["best_ratio"] == pytest.approx([0.5 / 0.45, 0.9 / 0.45])
    assert r["cosine_ratio"] == pytest.approx([1.0, 1.8])
    speed, far = suite_score({"a": r, "b": {"speedup": [2.0], "best_ratio": [1.0]}})
    assert far == 1 and speed == pytest.approx((0.7 + 2.0) / 2)  # medians of 0.9, 0.5 and 2


def test_a_policy_run_is_the_controller_on_one_model():
    task = SuiteTask("t", SpaceTask("mlp-moons", 10, 200), 40)
    policy = Policy.load(default_policy_path())
    a, b = policy_curve(task, 0, policy), policy_curve(task, 0, policy)
    assert a == b and len(a) == 4 and all(math.isfinite(v) for _, v in a)
