"""Hyperband on hand-made trials: bracket weights and assignment, judging within a bracket."""

from collections import Counter

import pytest
from _pruner_trials import running, trial

from metatune.direction import Direction
from metatune.pruners import make_pruner
from metatune.pruners.hyperband import HyperbandPruner, bracket_weights
from metatune.trial import TrialState

MIN = Direction.MINIMIZE


def test_bracket_weights_are_li_et_al_s_numbers_of_configurations():
    assert bracket_weights(1, 81, 3) == [81, 34, 15, 8, 5]  # Li et al., Table 1 (R=81, eta=3)
    assert bracket_weights(1, 27, 3) == [27, 12, 6, 4]
    assert bracket_weights(1, 1, 3) == [1]
    assert bracket_weights(2, 30, 3) == [9, 5, 3]  # rungs 2, 6, 18 fit under 30


def test_bracket_assignment_is_deterministic_and_spread_by_weight():
    a = HyperbandPruner(max_resource=27)
    b = HyperbandPruner(max_resource=27)
    numbers = range(4900)
    first = [a.bracket(n, 27) for n in numbers]
    assert first == [b.bracket(n, 27) for n in numbers]
    counts = Counter(first)
    weights = bracket_weights(1, 27, 3)
    for bracket, w in enumerate(weights):
        expected = len(numbers) * w / sum(weights)
        assert abs(counts[bracket] - expected) < 0.15 * expected, (bracket, counts)
    # consecutive numbers are not all in one bracket
    assert len(set(first[:10])) >= 2
    salted = HyperbandPruner(max_resource=27, salt="other")
    assert [salted.bracket(n, 27) for n in numbers] != first


def _in_bracket(pruner, b, count, start=0):
    out, n = [], start
    while len(out) < count:
        if pruner.bracket(n, 27) == b:
            out.append(n)
        n += 1
    return out


def test_trials_compete_only_within_their_bracket():
    pruner = HyperbandPruner(max_resource=27)
    b0 = _in_bracket(pruner, 0, 2)
    others_b0 = [n for n in range(200) if pruner.bracket(n, 27) != 0][:6]
    great_elsewhere = [trial(n, [0.0], TrialState.PRUNED) for n in others_b0]
    t = running(b0[1], [5.0])
    assert not pruner.prune(t, [*great_elsewhere, t], MIN)  # alone in bracket 0
    rival = trial(b0[0], [1.0], TrialState.PRUNED)
    assert pruner.prune(t, [*great_elsewhere, rival, t], MIN)


def test_a_bracket_starts_halving_at_min_resource_times_eta_to_its_index():
    pruner = HyperbandPruner(max_resource=27)
    n1, n1b = _in_bracket(pruner, 1, 2)
    rival = trial(n1, [1.0] * 27)
    t = running(n1b, [5.0])
    assert not pruner.prune(t, [rival, t], MIN)  # bracket 1 has no rung at 1
    t.intermediate_values.update({2: 5.0, 3: 5.0})
    assert pruner.prune(t, [rival, t], MIN)  # its first rung is 3


def test_the_last_bracket_never_prunes():
    pruner = HyperbandPruner(max_resource=27)
    n3 = _in_bracket(pruner, 3, 1)[0]
    rivals = [trial(n, [0.0] * 27) for n in _in_bracket(pruner, 3, 5, start=n3 + 1)]
    t = running(n3, {s: 10.0 for s in range(1, 28)})
    for step in range(1, 28):
        t.intermediate_values = {s: 10.0 for s in range(1, step + 1)}
        assert not pruner.prune(t, [*rivals, t], MIN)


def test_auto_max_resource_waits_for_a_completed_trial():
    pruner = make_pruner("hyperband")
    b0 = _in_bracket(HyperbandPruner(max_resource=27), 0, 2)
    rival = trial(b0[0], [1.0], TrialState.PRUNED)
    t = running(b0[1], [5.0])
    assert not pruner.prune(t, [rival, t], MIN)  # nothing completed: no max resource yet
    done = trial(10_000, [1.0] * 27)
    assert pruner._max_resource([rival, done, t]) == 27


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"min_resource": 0}, "min_resource must be an integer >= 1"),
        ({"max_resource": 0}, "max_resource must be an integer >= 1"),
        ({"max_resource": "big"}, "max_resource must be an integer >= 1"),
        ({"min_resource": 5, "max_resource": 3}, "max_resource must be 'auto' or an integer"),
        ({"reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
        ({"salt": 3}, "salt must be a string"),
    ],
)
def test_bad_options_are_refused_at_construction(options, needle):
    with pytest.raises(ValueError, match=f"hyperband pruner: {needle}"):
        make_pruner("hyperband", options)
