"""Outcome constraints: parsing, feasibility, and mo-gp steering its suggestions to them."""

import pytest

from metatune import Float, Study
from metatune.constraints import OutcomeConstraint, feasible, parse_constraints
from metatune.trial import Trial, TrialState


def _trial(**attrs):
    return Trial(number=0, params={"x": 0.5}, state=TrialState.COMPLETE, user_attrs=attrs)


def test_constraints_parse_and_judge_trials():
    upper, lower = parse_constraints(["latency <= 0.05", " acc>=0.9 "])
    assert upper == OutcomeConstraint("latency", 0.05, True) and str(lower) == "acc >= 0.9"
    assert feasible(_trial(latency=0.01, acc=0.95), [upper, lower])
    assert not feasible(_trial(latency=0.06, acc=0.95), [upper, lower])
    assert not feasible(_trial(latency=0.01), [upper, lower])  # a missing metric is not met
    assert not feasible(_trial(latency=float("nan"), acc=1.0), [upper, lower])
    assert parse_constraints(None) == []


@pytest.mark.parametrize("bad", ["latency < 0.05", "latency <= fast", "<= 1", "x <= inf"])
def test_a_bad_constraint_is_refused_when_the_study_is_made(bad):
    with pytest.raises(ValueError, match="a constraint must read 'metric <= bound'"):
        Study(
            {"x": Float(0, 1)},
            directions=["minimize", "minimize"],
            optimizer="mo-gp",
            optimizer_options={"constraints": [bad]},
        )
    with pytest.raises(ValueError, match="constraints must be a list of strings"):
        parse_constraints("latency <= 0.05")


def _share_feasible(make_study, constraints, seed, n_trials=10):
    # Every x is on the front (y = 0); only x >= 0.6 satisfies "c >= 0.6". The metric is
    # missing from trial 1: it counts as infeasible and is left out of the constraint's GP.
    study = make_study(seed=seed, constraints=constraints)
    for i in range(n_trials):
        t = study.ask()
        x, y = t.params["x"], t.params["y"]
        metrics = {} if i == 1 else {"c": x}
        study.tell(t, {"objective": [x, 1 - x + y], **metrics})
    model = sorted(study.trials, key=lambda t: t.number)[4:]
    return sum(t.params["x"] >= 0.6 for t in model) / len(model)


def test_mo_gp_runs_with_a_constraint_and_a_missing_metric(small_mo_study):
    assert 0.0 <= _share_feasible(small_mo_study, ["c >= 0.6"], seed=0, n_trials=6) <= 1.0


@pytest.mark.slow
def test_mo_gp_suggests_feasible_points_under_a_constraint(small_mo_study):
    constrained = [_share_feasible(small_mo_study, ["c >= 0.6"], seed) for seed in (0, 1, 2)]
    free = [_share_feasible(small_mo_study, None, seed) for seed in (0, 1, 2)]
    assert sum(constrained) / 3 >= 0.75
    assert sum(constrained) / 3 > sum(free) / 3 + 0.3


def test_constraints_need_several_objectives():
    study = Study(
        {"x": Float(0, 1)},
        optimizer="mo-gp",
        optimizer_options={"n_startup_trials": 1, "constraints": ["c <= 1"]},
    )
    with pytest.raises(ValueError, match="constraints need a study with several directions"):
        study.ask()
