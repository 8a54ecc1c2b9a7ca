"""Asynchronous successive halving on hand-made trials."""

import math

import numpy as np
import pytest
from _pruner_trials import running, trial

from metatune.direction import Direction
from metatune.pruners import make_pruner
from metatune.pruners.successive_halving import crossed_rungs, promoted
from metatune.trial import TrialState

MIN = Direction.MINIMIZE


def _at_rung(values, state=TrialState.PRUNED):
    """Trials that reported one value at step 1 (pruned there)."""
    return [trial(i, [v], state) for i, v in enumerate(values)]


def test_promotes_exactly_the_top_third_at_a_rung():
    pruner = make_pruner("successive-halving", {"min_resource": 1, "reduction_factor": 3})
    others = _at_rung([float(v) for v in range(1, 9)])  # 1..8 at the rung
    # with the newcomer there are 9 values: the top 3 pass
    for v, keep in [(0.5, True), (2.0, True), (2.5, True), (3.5, False), (9.0, False)]:
        t = running(100, [v])
        assert pruner.prune(t, [*others, t], MIN) is (not keep), v


def test_with_fewer_values_than_eta_only_the_best_passes():
    assert promoted(1.0, [1.0], 3)
    assert promoted(1.0, [1.0, 2.0], 3)
    assert not promoted(2.0, [1.0, 2.0], 3)
    assert promoted(2.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3)  # top 2 of 6
    assert not promoted(3.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3)


def test_a_sequence_of_ever_worse_trials_stops_all_but_the_first():
    pruner = make_pruner("successive-halving")
    trials, kept = [], []
    for i in range(12):
        t = running(i, [float(i)])
        kept.append(not pruner.prune(t, [*trials, t], MIN))
        t.state = TrialState.PRUNED if not kept[-1] else TrialState.RUNNING
        trials.append(t)
    assert kept == [True] + [False] * 11


def test_a_fraction_near_one_over_eta_reaches_each_rung():
    rng = np.random.default_rng(0)
    pruner = make_pruner("successive-halving", {"reduction_factor": 3})
    trials = []
    reached = {1: 0, 3: 0, 9: 0}
    for i in range(243):
        quality = rng.random()
        t = running(i, {})
        for step in range(1, 10):
            t.intermediate_values[step] = quality + 1.0 / step
            if step in reached:
                reached[step] += 1
            if pruner.prune(t, [*trials, t], MIN):
                t.state = TrialState.PRUNED
                break
        else:
            t.state = TrialState.COMPLETE
            t.value = t.intermediate_values[9]
        trials.append(t)
    assert reached[1] == 243
    assert 243 / 3 * 0.8 <= reached[3] <= 243 / 3 * 1.3
    assert 243 / 9 * 0.7 <= reached[9] <= 243 / 9 * 1.5


def test_a_promoted_trial_is_not_judged_again_at_that_rung():
    pruner = make_pruner("successive-halving")
    t = running(0, [1.0])
    assert not pruner.prune(t, [t], MIN)  # alone: promoted
    better = _at_rung([0.1, 0.2, 0.3, 0.4])
    for n, b in enumerate(better):
        b.number = 10 + n
    t.intermediate_values[2] = 1.0  # no rung between steps 1 and 2
    assert not pruner.prune(t, [*better, t], MIN)


def test_the_rung_value_is_the_report_at_the_largest_step_not_past_the_rung():
    pruner = make_pruner("successive-halving")
    # the others reached rung 3 with 5 and 6 (values at steps 2 and 3)
    others = [trial(0, {1: 9.0, 2: 5.0, 4: 0.0}), trial(1, {1: 9.0, 3: 6.0})]
    t = running(2, {1: 9.0, 2: 9.0, 3: 4.0})
    assert not pruner.prune(t, [*others, t], MIN)
    t2 = running(3, {1: 9.0, 2: 9.0, 3: 7.0})
    assert pruner.prune(t2, [*others, t2], MIN)


def test_min_early_stopping_rate_moves_the_first_rung():
    pruner = make_pruner("successive-halving", {"min_early_stopping_rate": 1})
    others = _at_rung([0.0, 0.0, 0.0])
    t = running(10, [5.0, 5.0])
    assert not pruner.prune(t, [*others, t], MIN)  # no rung at 1 or 2
    assert crossed_rungs(running(0, [1.0, 1.0, 1.0]), 1, 3, 1) == [3]
    assert crossed_rungs(running(0, {2: 1.0, 10: 1.0}), 1, 3, 0) == [3, 9]
    assert crossed_rungs(running(0, {27: 1.0}), 1, 3, 0, max_resource=27) == [1, 3, 9]


def test_nan_at_a_rung_is_pruned():
    t = running(0, [math.nan])
    assert make_pruner("successive-halving").prune(t, [t], MIN)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"min_resource": 0}, "min_resource must be an integer >= 1"),
        ({"reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
        ({"reduction_factor": 2.5}, "reduction_factor must be an integer >= 2"),
        ({"min_early_stopping_rate": -1}, "min_early_stopping_rate must be an integer >= 0"),
    ],
)
def test_bad_options_are_refused_at_construction(options, needle):
    with pytest.raises(ValueError, match=f"successive-halving pruner: {needle}"):
        make_pruner("successive-halving", options)
