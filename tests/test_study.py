import math

import pytest

import metatune as mt
from metatune import Categorical, Float, Int, Space, Study, TrialState
from metatune.optimizers import Optimizer, available_optimizers, register_optimizer


def _space():
    return Space({"x": Float(-5, 5), "n": Int(1, 4), "c": Categorical(["a", "b"])})


def _objective(p):
    return (p["x"] - 1) ** 2 + p["n"] + (0 if p["c"] == "a" else 1)


def test_ask_tell_and_best():
    study = Study(_space(), optimizer="random", seed=0)
    values = []
    for _ in range(8):
        t = study.ask()
        assert t.state is TrialState.RUNNING
        values.append(_objective(t.params))
        done = study.tell(t, values[-1])
        assert done.state is TrialState.COMPLETE and done.value == values[-1]
    assert [t.number for t in study.trials] == list(range(8))
    assert study.best.value == min(values)
    assert study.best_params == study.best.params


def test_maximize_picks_the_largest():
    study = Study(_space(), direction="maximize", optimizer="random", seed=1)
    study.optimize(_objective, n_trials=6)
    assert study.best.value == max(t.value for t in study.trials)


def test_failures_are_recorded_and_the_study_goes_on():
    calls = []

    def objective(p):
        calls.append(p)
        if len(calls) == 2:
            raise RuntimeError("boom")
        if len(calls) == 3:
            return float("nan")
        if len(calls) == 4:
            return math.inf
        return _objective(p)

    study = Study(_space(), optimizer="random", seed=0)
    study.optimize(objective, n_trials=6)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAILED) == 3 and states.count(TrialState.COMPLETE) == 3
    assert "RuntimeError: boom" in study.trials[1].error
    assert "nan" in study.trials[2].error and "inf" in study.trials[3].error
    assert study.trials[1].value is None


def test_dict_result_keeps_extra_metrics():
    study = Study(_space(), optimizer="random", seed=0)
    study.optimize(lambda p: {"objective": 1.5, "accuracy": 0.9}, n_trials=1)
    t = study.trials[0]
    assert t.value == 1.5 and t.user_attrs == {"accuracy": 0.9}


def test_tell_validation():
    study = Study(_space(), optimizer="random", seed=0)
    t = study.ask()
    with pytest.raises(ValueError, match="needs a value"):
        study.tell(t)
    done = study.tell(t, "not a number")
    assert done.state is TrialState.FAILED and "non-number" in done.error
    with pytest.raises(ValueError, match="already failed"):
        study.tell(t, 1.0)
    t2 = study.ask()
    assert study.tell(t2.number, error=ValueError("bad")).error.startswith("ValueError: bad")


def test_keyboard_interrupt_fails_the_running_trial_and_keeps_the_rest():
    def objective(p):
        if len(study.trials) == 4:
            raise KeyboardInterrupt
        return 0.0

    study = Study(_space(), optimizer="random", seed=0)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=10)
    trials = study.trials
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 3
    assert trials[3].state is TrialState.FAILED and "interrupted" in trials[3].error
    assert len(trials) == 4


def test_callbacks_and_timeout():
    seen = []
    study = Study(_space(), optimizer="random", seed=0)
    study.optimize(_objective, n_trials=3, callbacks=[lambda s, t: seen.append(t.number)])
    assert seen == [0, 1, 2]
    study.optimize(_objective, timeout=0.2)  # stops on time
    assert len(study.trials) > 3


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"direction": "up"}, ValueError, "direction must be 'minimize' or 'maximize'"),
        ({"optimizer": "nope"}, ValueError, "unknown optimizer 'nope'; available: .*gp.*random"),
        (
            {"optimizer": "gp", "optimizer_options": {"acq": "ei"}},
            ValueError,
            r"unknown option.*\['acq'\]",
        ),
        (
            {"optimizer": "gp", "optimizer_options": {"acquisition": "pi"}},
            ValueError,
            "acquisition must be one of",
        ),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"name": ""}, ValueError, "name must be a non-empty string"),
        ({"storage": "not-a-url"}, ValueError, "SQLAlchemy URL"),
    ],
)
def test_bad_study_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Study(_space(), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_trials": 0}, "n_trials must be a positive integer"),
        ({"n_trials": 2.5}, "n_trials must be a positive integer"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"callbacks": [3]}, "callback must be callable"),
    ],
)
def test_bad_optimize_arguments_fail_before_any_trial(kwargs, match):
    study = Study(_space(), optimizer="random", seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        study.optimize(_objective, **kwargs)
    assert study.trials == []


def test_best_without_trials_is_a_clear_error():
    with pytest.raises(ValueError, match="no completed trial"):
        _ = Study(_space(), optimizer="random").best


def test_resume_by_name_checks_the_space():
    storage = mt.storage.InMemoryStorage()
    a = Study(_space(), optimizer="random", storage=storage, name="s", seed=3)
    a.optimize(_objective, n_trials=4)
    b = Study(_space(), storage=storage, name="s")
    assert len(b.trials) == 4 and b.seed == 3 and b.optimizer.name == "random"
    b.optimize(_objective, n_trials=2)
    assert [t.number for t in a.trials] == list(range(6))
    with pytest.raises(ValueError, match="different space"):
        Study(Space({"x": Float(0, 1)}), storage=storage, name="s")
    with pytest.raises(ValueError, match="direction 'minimize'"):
        Study(_space(), storage=storage, name="s", direction="maximize")
    assert mt.load_study("s", storage).best.value == a.best.value
    with pytest.raises(ValueError, match="no study named 'zzz'"):
        mt.load_study("zzz", storage)


def test_seeded_studies_are_reproducible():
    runs = []
    for _ in range(2):
        study = Study(_space(), optimizer="gp", seed=7, optimizer_options={"n_startup_trials": 3})
        study.optimize(_objective, n_trials=5)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_user_registered_optimizer():
    @register_optimizer("always-low")
    class AlwaysLow(Optimizer):
        def __init__(self, offset: int = 0):
            self.offset = offset

        def suggest(self, history, pending, context):
            return {"x": -5.0, "n": 1 + self.offset, "c": "a"}

    assert "always-low" in available_optimizers()
    study = Study(_space(), optimizer="always-low", optimizer_options={"offset": 1})
    study.optimize(_objective, n_trials=2)
    assert all(t.params["n"] == 2 for t in study.trials)


def test_optimizer_returning_invalid_params_fails_the_trial_not_silently():
    @register_optimizer("broken")
    class Broken(Optimizer):
        def suggest(self, history, pending, context):
            return {"x": 99.0, "n": 1, "c": "a"}

    study = Study(_space(), optimizer="broken")
    with pytest.raises(ValueError, match="'x'=99.0 is outside"):
        study.ask()
    assert study.trials[0].state is TrialState.FAILED


def test_malformed_dict_result_fails_the_trial_only():
    study = Study(_space(), optimizer="random", seed=0)
    study.optimize(lambda p: {"loss": 1.0}, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 2
    assert "objective" in study.trials[0].error


def test_a_trial_failed_as_stale_by_another_process_does_not_stop_the_study():
    storage = mt.storage.InMemoryStorage()
    study = Study(_space(), optimizer="random", storage=storage, name="s", seed=0)

    def objective(p):
        n = len(study.trials) - 1
        if n == 1:  # simulate another worker's stale-trial sweep while this trial runs
            storage.finish_trial(study._record.id, n, TrialState.FAILED, error="stale trial")
        return 1.0

    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.FAILED,
        TrialState.COMPLETE,
    ]
    assert study.trials[1].error == "stale trial"
