"""Median and percentile pruning on hand-made trials."""

import math

import pytest
from _pruner_trials import running, trial

from metatune.direction import Direction
from metatune.pruners import make_pruner
from metatune.trial import TrialState

MIN = Direction.MINIMIZE
MAX = Direction.MAXIMIZE


def _done(n: int = 5):
    """Completed trials 0..n-1 whose losses at every step are 1 + i (0 best)."""
    return [trial(i, [10.0 - s + i for s in range(5)]) for i in range(n)]


def test_prunes_below_the_median_and_keeps_above():
    others = _done(5)  # at step 2 their values are 9 + i: median 11
    bad = running(10, [20.0, 12.0])
    good = running(11, [20.0, 10.0])
    pruner = make_pruner("median")
    assert pruner.prune(bad, [*others, bad], MIN)
    assert not pruner.prune(good, [*others, good], MIN)


def test_never_prunes_before_startup_trials_complete():
    others = _done(4)
    bad = running(10, [100.0])
    assert not make_pruner("median", {"n_startup_trials": 5}).prune(bad, [*others, bad], MIN)
    # running and pruned trials do not count as started up
    extra = [trial(20, [0.0], TrialState.PRUNED), running(21, [0.0])]
    assert not make_pruner("median").prune(bad, [*others, *extra, bad], MIN)
    assert make_pruner("median", {"n_startup_trials": 4}).prune(bad, [*others, bad], MIN)


def test_never_prunes_during_warmup_steps():
    others = _done(5)
    bad = running(10, [100.0, 100.0, 100.0])
    pruner = make_pruner("median", {"n_warmup_steps": 4})
    assert not pruner.prune(bad, [*others, bad], MIN)
    bad.intermediate_values[4] = 100.0
    assert pruner.prune(bad, [*others, bad], MIN)


def test_interval_steps_judges_only_the_first_report_of_an_interval():
    others = [trial(i, {s: 1.0 for s in range(0, 9)}) for i in range(5)]
    pruner = make_pruner("median", {"interval_steps": 3, "n_warmup_steps": 1})
    t = running(10, {1: 5.0})
    assert pruner.prune(t, [*others, t], MIN)  # step 1: first of [1, 4)
    t.intermediate_values[2] = 5.0
    assert not pruner.prune(t, [*others, t], MIN)  # step 2: not judged
    t.intermediate_values[4] = 5.0
    assert pruner.prune(t, [*others, t], MIN)  # step 4: first of [4, 7)


def test_n_min_trials_needs_that_many_trials_at_the_step():
    short = [trial(i, [1.0, 1.0]) for i in range(5)]  # completed after step 2
    t = running(10, [5.0, 5.0, 5.0])
    assert not make_pruner("median").prune(t, [*short, t], MIN)  # nobody reached step 3
    long = [trial(20 + i, [1.0, 1.0, 1.0]) for i in range(2)]
    pruner = make_pruner("median", {"n_min_trials": 3})
    assert not pruner.prune(t, [*short, *long, t], MIN)
    assert make_pruner("median", {"n_min_trials": 2}).prune(t, [*short, *long, t], MIN)


def test_compares_best_so_far_values():
    # the other trials dipped to 1 at step 1 then rose to 9: their best-so-far at step 2 is 1
    others = [trial(i, [1.0, 9.0, 9.0]) for i in range(5)]
    t = running(10, [5.0, 5.0])
    assert make_pruner("median").prune(t, [*others, t], MIN)
    # and the trial's own best so far counts: it was at 0.5 at step 1
    t2 = running(11, [0.5, 5.0])
    assert not make_pruner("median").prune(t2, [*others, t2], MIN)


def test_maximize_flips_the_comparison():
    others = [trial(i, [float(i)] * 3) for i in range(5)]  # median 2
    low, high = running(10, [1.0, 1.0]), running(11, [3.0, 3.0])
    pruner = make_pruner("median")
    assert pruner.prune(low, [*others, low], MAX)
    assert not pruner.prune(high, [*others, high], MAX)
    assert not pruner.prune(low, [*others, low], MIN)


def test_percentile_keeps_only_the_best_fraction():
    others = [trial(i, [float(i)] * 2) for i in range(11)]  # 0..10 at every step
    t = running(20, [3.0, 3.0])
    assert make_pruner("percentile", {"percentile": 25.0}).prune(t, [*others, t], MIN)  # 2.5
    assert not make_pruner("percentile", {"percentile": 50.0}).prune(t, [*others, t], MIN)


def test_nan_reports_are_pruned_and_nan_peers_are_worst():
    others = _done(5)
    t = running(10, [math.nan])
    assert make_pruner("median").prune(t, [*others, t], MIN)
    nan_peers = [trial(i, [math.nan] * 3) for i in range(5)]
    ok = running(10, [50.0])
    assert not make_pruner("median").prune(ok, [*nan_peers, ok], MIN)


def test_a_trial_without_reports_is_never_pruned():
    t = running(10, {})
    assert not make_pruner("median", {"n_startup_trials": 0}).prune(t, [*_done(), t], MIN)


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("percentile", {"percentile": 101}, "percentile must be a number in [0, 100]"),
        ("percentile", {"percentile": "50"}, "percentile must be a number in [0, 100]"),
        ("median", {"n_startup_trials": -1}, "n_startup_trials must be an integer >= 0"),
        ("median", {"n_warmup_steps": 1.5}, "n_warmup_steps must be an integer >= 0"),
        ("median", {"interval_steps": 0}, "interval_steps must be an integer >= 1"),
        ("median", {"n_min_trials": 0}, "n_min_trials must be an integer >= 1"),
        ("median", {"n_startup_trials": True}, "n_startup_trials must be an integer >= 0"),
    ],
)
def test_bad_options_are_refused_at_construction(name, options, needle):
    with pytest.raises(ValueError, match=f"{name} pruner: {needle}".replace("[", r"\[")):
        make_pruner(name, options)
