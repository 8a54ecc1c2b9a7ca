"""The architecture searchers on a cell space and on a joint cell + hyperparameter space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metatune import Float, Space, Study
from metatune.nas import Cell
from metatune.nas.searchers.moves import neighbours, point_key

SEARCHERS = ["regularized-evolution", "local-search", "nas-bo"]
CELL = Cell()
_WEIGHTS = np.random.default_rng(42).normal(size=(len(CELL.edges), len(CELL.ops)))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _score(cell: list[str]) -> float:
    """A fixed additive landscape over (edge, operation) with one interaction term."""
    idx = [CELL.ops.index(op) for op in cell]
    base = sum(_WEIGHTS[e, i] for e, i in enumerate(idx))
    return base + 1.5 * (cell[3] == cell[5] == "nor_conv_3x3")


def _best_after(method: str, seed: int, n: int) -> float:
    study = Study(Space({"cell": CELL}), optimizer=method, direction="maximize", seed=seed)
    study.optimize(lambda p: _score(p["cell"]), n_trials=n)
    return float(study.best_value)


@pytest.mark.parametrize("method", SEARCHERS)
def test_searchers_beat_random_over_seeds(method):
    ours = [_best_after(method, s, 40) for s in range(5)]
    rand = [_best_after("random", s, 40) for s in range(5)]
    assert np.median(ours) > np.median(rand)


@pytest.mark.parametrize("method", SEARCHERS)
def test_no_architecture_is_proposed_twice_even_up_to_isomorphism(method):
    study = Study(Space({"cell": CELL}), optimizer=method, direction="maximize", seed=3)
    study.optimize(lambda p: _score(p["cell"]), n_trials=30)
    keys = [CELL.canonical(t.params["cell"]) for t in study.trials]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("method", SEARCHERS)
def test_a_joint_space_of_a_cell_and_a_learning_rate(method):
    space = Space({"cell": CELL, "lr": Float(1e-4, 1.0, log=True)})

    def objective(p):
        return _score(p["cell"]) - (np.log10(p["lr"]) + 2) ** 2

    study = Study(space, optimizer=method, direction="maximize", seed=0)
    study.optimize(objective, n_trials=25)
    for t in study.trials:
        space.validate(t.params)
    assert len({point_key(space, t.params) for t in study.trials}) == 25


def test_local_search_moves_to_a_neighbour_of_the_best():
    study = Study(Space({"cell": CELL}), optimizer="local-search", direction="maximize", seed=1)
    study.optimize(lambda p: _score(p["cell"]), n_trials=10)  # the random start
    best = study.best_params
    trial = study.ask()
    assert trial.params in neighbours(study.space, best)


def test_evolution_options_are_checked_before_any_trial():
    with pytest.raises(ValueError, match="sample_size"):
        Study(
            Space({"cell": CELL}),
            optimizer="regularized-evolution",
            optimizer_options={"population_size": 5, "sample_size": 6},
        )
    with pytest.raises(ValueError, match="encoding must be one of"):
        Study(Space({"cell": CELL}), optimizer="nas-bo", optimizer_options={"encoding": "wl"})
