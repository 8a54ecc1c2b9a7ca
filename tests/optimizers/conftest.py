"""Fixtures shared by the optimizer tests."""

from collections.abc import Callable
from typing import Any

import pytest

from metatune import Float, Study


@pytest.fixture
def small_mo_study() -> Callable[..., Study]:
    """A two-objective mo-gp study on x, y in [0, 1], with a model small enough for a unit test
    (4 start-up trials, 32 candidates, short fits, 16 MC samples) and `options` on top."""

    def make(seed: int = 0, **options: Any) -> Study:
        return Study(
            {"x": Float(0, 1), "y": Float(0, 1)},
            directions=["minimize", "minimize"],
            optimizer="mo-gp",
            optimizer_options={
                "n_startup_trials": 4,
                "n_candidates": 32,
                "fit_iters": 6,
                "mc_samples": 16,
                **options,
            },
            seed=seed,
        )

    return make
