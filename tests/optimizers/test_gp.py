import numpy as np
import pytest
import torch
from botorch.test_functions import Branin

from metatune import Categorical, Float, Int, Space, Study, TrialState


def _branin_study(optimizer, seed, n_trials):
    fn = Branin()
    space = Space({"x0": Float(-5, 10), "x1": Float(0, 15)})
    study = Study(space, optimizer=optimizer, seed=seed)
    study.optimize(lambda p: float(fn(torch.tensor([[p["x0"], p["x1"]]]))), n_trials=n_trials)
    return study.best.value - fn.optimal_value


def test_gp_beats_random_on_branin_over_seeds():
    gp = [_branin_study("gp", s, 25) for s in range(5)]
    rnd = [_branin_study("random", s, 25) for s in range(5)]
    assert np.median(gp) < np.median(rnd) / 10
    assert np.median(gp) < 0.05
    assert sum(g < r for g, r in zip(gp, rnd, strict=True)) >= 4


def _mixed_space():
    return Space(
        {
            "x": Float(0, 1),
            "lr": Float(1e-4, 1, log=True),
            "n": Int(1, 6),
            "w": Int(1, 1000, log=True),
            "c": Categorical(["a", "b", "c", "d"]),
        }
    )


def _mixed_objective(p):
    # The best category is "c": the third of four, so an ordinal treatment gains nothing.
    cat = {"a": 1.0, "b": 0.8, "c": 0.0, "d": 0.9}[p["c"]]
    return (p["x"] - 0.3) ** 2 + (np.log10(p["lr"]) + 2) ** 2 / 4 + abs(p["n"] - 4) / 3 + cat


def test_gp_handles_integers_and_categoricals():
    study = Study(_mixed_space(), optimizer="gp", seed=0, optimizer_options={"n_startup_trials": 8})
    study.optimize(_mixed_objective, n_trials=30)
    for t in study.trials:
        study.space.validate(t.params)  # never outside the space
        assert isinstance(t.params["n"], int) and isinstance(t.params["w"], int)
    best = study.best.params
    assert best["c"] == "c" and best["n"] == 4
    assert study.best.value < 0.2


def test_pending_trials_give_distinct_good_points():
    space = Space({"x0": Float(-5, 10), "x1": Float(0, 15)})
    fn = Branin()
    study = Study(space, optimizer="gp", seed=1)
    study.optimize(lambda p: float(fn(torch.tensor([[p["x0"], p["x1"]]]))), n_trials=15)
    a, b = study.ask(), study.ask()
    assert a.params != b.params
    xa = np.array([a.params["x0"], a.params["x1"]])
    xb = np.array([b.params["x0"], b.params["x1"]])
    assert np.linalg.norm((xa - xb) / 15) > 1e-3
    assert b.state is TrialState.RUNNING


def test_ucb_option_and_maximize():
    space = Space({"x": Float(-2, 2)})
    study = Study(
        space,
        direction="maximize",
        optimizer="gp",
        seed=0,
        optimizer_options={"acquisition": "ucb", "n_startup_trials": 4},
    )
    study.optimize(lambda p: -((p["x"] - 0.7) ** 2), n_trials=14)
    assert abs(study.best.params["x"] - 0.7) < 0.05


def test_failed_region_is_not_proposed_again():
    space = Space({"x": Float(0, 1), "y": Float(0, 1)})

    def objective(p):
        if p["x"] < 0.2:
            raise RuntimeError("diverged")
        return (p["x"] - 0.25) ** 2 + (p["y"] - 0.5) ** 2

    study = Study(space, optimizer="gp", seed=0, optimizer_options={"n_startup_trials": 5})
    study.optimize(objective, n_trials=20)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 20
    assert study.best.value < 0.01


@pytest.mark.parametrize("n_startup", [3, 10])
def test_startup_trials_are_sobol(n_startup):
    space = Space({"x": Float(0, 1)})
    study = Study(space, optimizer="gp", seed=0, optimizer_options={"n_startup_trials": n_startup})
    study.optimize(lambda p: p["x"], n_trials=n_startup)
    random = Study(space, optimizer="random", seed=0)
    random.optimize(lambda p: p["x"], n_trials=n_startup)
    assert [t.params for t in study.trials] == [t.params for t in random.trials]


def test_gradient_polish_option_gives_valid_good_points():
    space = Space({"x": Float(-2, 2), "k": Categorical(["a", "b"])})
    study = Study(
        space,
        optimizer="gp",
        seed=0,
        optimizer_options={"polish_iters": 5, "n_startup_trials": 4},
    )
    study.optimize(lambda p: (p["x"] - 0.5) ** 2 + (p["k"] == "b"), n_trials=12)
    assert study.best.params["k"] == "a" and abs(study.best.params["x"] - 0.5) < 0.05


def test_model_failure_falls_back_to_sobol(monkeypatch, caplog):
    from metatune.optimizers.gp import GPOptimizer

    def broken(self, *args, **kwargs):
        raise RuntimeError("not positive definite")

    monkeypatch.setattr(GPOptimizer, "_suggest_params", broken)
    space = Space({"x": Float(0, 1)})
    study = Study(space, optimizer="gp", seed=0, optimizer_options={"n_startup_trials": 2})
    study.optimize(lambda p: p["x"], n_trials=4)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert "GP suggestion failed" in caplog.text


def test_constant_objective_does_not_break_the_model():
    space = Space({"x": Float(0, 1), "y": Float(0, 1)})
    study = Study(space, optimizer="gp", seed=0, optimizer_options={"n_startup_trials": 3})
    study.optimize(lambda p: 1.0, n_trials=6)
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 6


def test_default_startup_grows_with_the_dimension():
    from metatune.optimizers.gp import GPOptimizer

    opt = GPOptimizer()
    assert opt._startup(Space({"x": Float(0, 1)})) == 5
    assert opt._startup(Space({f"x{i}": Float(0, 1) for i in range(6)})) == 20
    assert opt._startup(Space({f"x{i}": Float(0, 1) for i in range(40)})) == 20


def test_search_with_bounds_stays_in_the_box():
    from metatune.optimizers._gp.search import Layout, maximize

    space = Space({"x": Float(0, 1), "y": Float(0, 1), "k": Categorical(["a", "b"])})
    layout = Layout(space)
    rng = np.random.default_rng(0)
    X_obs = np.array([space.encode({"x": 0.5, "y": 0.5, "k": "a"})])
    lo = np.array([0.4, 0.45, 0.0, 0.0])
    hi = np.array([0.6, 0.55, 1.0, 1.0])

    def acqf(X):  # best at the cube's corner (1, 1): outside the box
        return X[:, 0, 0] + X[:, 0, 1] + X[:, 0, 3]

    for polish in (0, 3):
        x = maximize(
            acqf,
            space,
            layout,
            X_obs,
            np.zeros(1),
            rng,
            n_candidates=64,
            n_restarts=2,
            polish_iters=polish,
            bounds=(lo, hi),
        )
        assert np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12)
        assert x[0] == pytest.approx(0.6, abs=0.02) and x[1] == pytest.approx(0.55, abs=0.02)
        assert space.decode(x)["k"] == "b"  # discrete columns are searched everywhere
