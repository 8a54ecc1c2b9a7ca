"""The GP's TuRBO-style trust region: its state rule, its box, its options and a short study."""

from __future__ import annotations

import math

import numpy as np
import pytest

import metatune
from metatune.optimizers.gp import GPOptimizer
from metatune.optimizers.trust_region import RegionState, TrustRegion


def _region(**kw) -> TrustRegion:
    opts = {"success_tolerance": 2, "failure_tolerance": 2, "length_min": 0.1}
    opts.update(kw)
    return TrustRegion(n_init=2, dim=3, **opts)


def test_initial_design_counts_neither_success_nor_failure():
    tr = _region()
    s = tr.replay([5.0, 4.0])
    assert s == RegionState(count=2, length=0.8, best=4.0)


def test_box_shrinks_after_failures_and_grows_after_successes():
    tr = _region()
    s = tr.replay([5.0, 4.0, 4.5, 4.0])  # two failures (4.0 is no improvement on 4.0)
    assert s.length == pytest.approx(0.4) and s.failures == 0
    s = tr.replay([5.0, 4.0, 4.5, 4.0, 3.0])  # one success after the halving
    assert s.successes == 1 and s.length == pytest.approx(0.4)
    s = tr.replay([5.0, 4.0, 4.5, 4.0, 3.0, 2.0])  # two successes: doubled
    assert s.length == pytest.approx(0.8) and s.successes == 0 and s.best == 2.0
    # a success resets the failure count
    s = tr.replay([5.0, 4.0, 4.5, 3.0, 4.5])
    assert s.failures == 1 and s.length == pytest.approx(0.8)


def test_growth_is_capped_at_length_max():
    tr = _region(length_max=1.0)
    s = tr.replay([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    assert s.length == pytest.approx(1.0)


def test_tiny_improvements_are_failures():
    tr = _region(min_improvement=0.01)
    s = tr.replay([5.0, 4.0, 3.999])  # < 1% of |best|
    assert s.failures == 1 and s.best == 3.999


def test_restart_after_the_box_shrinks_below_length_min():
    tr = _region()  # 0.8 -> 0.4 -> 0.2 -> 0.1 -> 0.05 < 0.1: restart
    losses = [5.0, 4.0] + [9.0] * 8
    s = tr.replay(losses)
    assert s == RegionState(start=10, restarts=1, length=0.8)
    # the next region starts with its own initial design and its own best
    s = tr.replay([*losses, 7.0, 6.0, 6.5])
    assert (s.start, s.restarts, s.count, s.best, s.failures) == (10, 1, 3, 6.0, 1)


def test_failed_values_count_as_failures_never_as_best():
    tr = _region()
    s = tr.replay([5.0, 4.0, math.nan, math.inf])
    assert s.best == 4.0 and s.length == pytest.approx(0.4)


def test_default_failure_tolerance_follows_the_dimension():
    assert TrustRegion(n_init=1, dim=30).failure_tolerance == 30
    assert TrustRegion(n_init=1, dim=2).failure_tolerance == 4


def test_box_is_weighted_by_lengthscales_and_clipped():
    lo, hi = TrustRegion.box(np.array([0.5, 0.5]), np.array([1.0, 4.0]), 0.4)
    side = hi - lo
    assert side[1] == pytest.approx(4 * side[0])
    assert side.prod() == pytest.approx(0.4**2)  # same volume as an unweighted box
    lo, hi = TrustRegion.box(np.array([0.05, 0.95]), np.array([1.0, 1.0]), 0.4)
    assert lo.tolist() == pytest.approx([0.0, 0.75]) and hi.tolist() == pytest.approx([0.25, 1.0])


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ("yes", "trust_region must be True, False or a mapping"),
        ({"length": 0.5}, r"unknown trust_region option\(s\) \['length'\]; allowed: length_init"),
        ({"length_min": 0.9}, "0 < length_min < length_init <= length_max"),
        ({"success_tolerance": 0}, "success_tolerance must be a positive integer"),
        ({"failure_tolerance": 1.5}, "failure_tolerance must be a positive integer or None"),
        ({"min_improvement": -1}, "min_improvement must be >= 0"),
    ],
)
def test_bad_options_are_refused_when_the_optimizer_is_made(option, match):
    with pytest.raises(ValueError, match=match):
        GPOptimizer(trust_region=option)
    space = metatune.Space({"x": metatune.Float(0, 1)})
    with pytest.raises(ValueError, match=match):
        metatune.Study(space, optimizer="gp", optimizer_options={"trust_region": option})


def _sphere(p):
    return sum((p[k] - 0.3) ** 2 for k in p)


def test_study_searches_inside_the_box_and_restarts_with_a_fresh_design():
    space = metatune.Space({f"x{i}": metatune.Float(0.0, 1.0) for i in range(3)})
    options = {
        "n_startup_trials": 3,
        "n_candidates": 64,
        "trust_region": {"failure_tolerance": 1, "length_min": 0.3, "length_init": 0.5},
    }
    study = metatune.Study(space, optimizer="gp", optimizer_options=options, seed=3)
    opt = study._optimizer
    region_starts, checked = set(), 0
    for _ in range(12):
        trial = study.ask()
        region = opt._region
        if opt._model is not None and region.count >= 3 and region.restarts == 0:
            # a model-based suggestion of the first region lies in its box around the best
            done = [t for t in study.trials if t.state is metatune.TrialState.COMPLETE]
            best = min(done, key=lambda t: t.value)
            ls = opt._model.covar_module.lengthscale.detach().reshape(-1).numpy()
            lo, hi = TrustRegion.box(space.encode(best.params), ls, region.length)
            x = space.encode(trial.params)
            assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)
            checked += 1
        region_starts.add(region.start)
        study.tell(trial, _sphere(trial.params))
    # failure_tolerance 1 halves 0.5 to 0.25 < 0.3 at the first failure: restarts happened,
    # each followed by a fresh initial design
    assert checked >= 1
    assert opt._region.restarts >= 1 and len(region_starts) >= 2
    assert study.best_value < 0.2


def test_a_trust_region_polishes_its_acquisition_by_default():
    assert GPOptimizer().polish_iters == 0
    assert GPOptimizer(trust_region=True).polish_iters == 20
    assert GPOptimizer(trust_region={"length_init": 0.4}).polish_iters == 20
    assert GPOptimizer(trust_region=True, polish_iters=0).polish_iters == 0
    with pytest.raises(ValueError, match="polish_iters must be an integer >= 0"):
        GPOptimizer(trust_region=True, polish_iters=-1)
