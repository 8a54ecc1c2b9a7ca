"""Conditional parameters in a declared Space: present exactly when their parent says so."""

from __future__ import annotations

import numpy as np
import pytest

from metatune import Categorical, Float, Int, Space, Study, TrialState


def _space() -> Space:
    return Space(
        {
            "optimizer": Categorical(["sgd", "adam"]),
            "lr": Float(1e-4, 1.0, log=True),
            "momentum": Float(0.0, 0.99, when={"optimizer": "sgd"}),
            "nesterov": Categorical([True, False], when={"optimizer": "sgd"}),
            "beta2": Float(0.9, 0.9999, when={"optimizer": ["adam"]}),
            "depth": Int(1, 3),
            "width2": Int(4, 32, when={"depth": [2, 3]}),
        }
    )


def _active(p):
    names = {"optimizer", "lr", "depth"}
    names |= {"momentum", "nesterov"} if p["optimizer"] == "sgd" else {"beta2"}
    if p["depth"] >= 2:
        names.add("width2")
    return names


def test_samples_hold_exactly_the_active_parameters():
    space = _space()
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = space.sample(rng)
        assert set(p) == _active(p)
        space.validate(p)


def test_validation_names_an_inactive_parameter_and_its_rule():
    space = _space()
    p = {"optimizer": "adam", "lr": 0.1, "beta2": 0.99, "depth": 1, "momentum": 0.5}
    with pytest.raises(ValueError, match="'momentum' is inactive.*'optimizer' is one of"):
        space.validate(p)
    with pytest.raises(ValueError, match="missing \\['beta2'\\]"):
        space.validate({"optimizer": "adam", "lr": 0.1, "depth": 1})


def test_inactive_parameters_are_one_point_in_the_model_view():
    space = _space()
    a = {"optimizer": "adam", "lr": 0.1, "beta2": 0.99, "depth": 1}
    b = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.3, "nesterov": True, "depth": 1}
    ea, eb = space.encode(a), space.encode(b)
    sl = space.slice_of("momentum")
    assert ea[space.indicator_of("momentum")] == 0 and np.all(ea[sl] == 0)
    assert eb[space.indicator_of("momentum")] == 1
    for point, encoded in ((a, ea), (b, eb)):
        decoded = space.decode(encoded)
        assert decoded.keys() == point.keys()
        assert decoded["lr"] == pytest.approx(point["lr"])
    # rounding a point whose parent changed switches the children with it
    moved = ea.copy()
    opt = space.slice_of("optimizer")
    moved[opt] = [1.0, 0.0]  # sgd
    rounded = space.round(moved[None, :])[0]
    assert rounded[space.indicator_of("beta2")] == 0
    assert rounded[space.indicator_of("momentum")] == 1
    assert set(space.decode(rounded)) == _active(space.decode(rounded))


def test_bad_conditions_are_refused_when_the_space_is_built():
    with pytest.raises(ValueError, match="not in the space"):
        Space({"x": Float(0, 1, when={"missing": 1})})
    with pytest.raises(ValueError, match="declared after it"):
        Space({"x": Float(0, 1, when={"c": "a"}), "c": Categorical(["a", "b"])})
    with pytest.raises(ValueError, match="cannot take"):
        Space({"c": Categorical(["a", "b"]), "x": Float(0, 1, when={"c": "z"})})
    with pytest.raises(ValueError, match="one parent parameter"):
        Float(0, 1, when={"a": 1, "b": 2})


def test_a_conditional_space_round_trips_through_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Study(_space(), storage=url, name="c", optimizer="random").optimize(
        lambda p: p["lr"], n_trials=2
    )
    assert Study(name="c", storage=url).space == _space()


@pytest.mark.parametrize("optimizer", ["random", "gp", "regularized-evolution", "local-search"])
def test_optimizers_propose_only_valid_conditional_points(optimizer):
    options = {"n_startup_trials": 4} if optimizer == "gp" else None
    study = Study(_space(), optimizer=optimizer, optimizer_options=options, seed=2)

    def objective(p):
        loss = (np.log10(p["lr"]) + 2) ** 2
        loss += (p["momentum"] - 0.9) ** 2 if p["optimizer"] == "sgd" else 0.5
        return loss + 0.1 * p["depth"]

    study.optimize(objective, n_trials=12)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert set(t.params) == _active(t.params)


@pytest.mark.parametrize("optimizer", ["gp", "eeipu"])
def test_a_pipeline_stage_with_conditional_parameters(tmp_path, optimizer):
    from metatune import Pipeline, Stage
    from metatune.pipeline import StageResult

    seen = []

    def prep(scale):
        return StageResult(scale, cost=2.0)

    def train(x, opt, momentum=None, beta2=None):
        seen.append((opt, momentum, beta2))
        penalty = (momentum - 0.9) ** 2 if opt == "sgd" else (beta2 - 0.99) ** 2 + 0.1
        return StageResult(x * 0.1 + penalty, cost=1.0)

    pipe = Pipeline(
        [
            Stage("prep", prep, {"scale": Float(0.0, 1.0)}),
            Stage(
                "train",
                train,
                {
                    "opt": Categorical(["sgd", "adam"]),
                    "momentum": Float(0.0, 0.99, when={"opt": "sgd"}),
                    "beta2": Float(0.9, 0.999, when={"opt": "adam"}),
                },
            ),
        ],
        cache=tmp_path / "cache",
    )
    assert pipe.space.condition_of("train.momentum") == ("train.opt", ("sgd",))
    study = Study(pipe, optimizer=optimizer, seed=0, optimizer_options={"n_startup_trials": 4})
    study.optimize(pipe, budget=30.0)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    for opt, momentum, beta2 in seen:
        assert (momentum is not None) == (opt == "sgd") and (beta2 is not None) == (opt == "adam")
