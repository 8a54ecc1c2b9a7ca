"""Random search with a scrambled Sobol sequence: better coverage than i.i.d. draws."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc

from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.space import Space
from metatune.trial import Trial


def sobol_point(space: Space, seed: int, index: int) -> dict[str, Any]:
    """The `index`-th point of the study's scrambled Sobol sequence, as parameters.

    Indexing by trial number keeps workers that share a storage on distinct points.
    """
    engine = qmc.Sobol(d=len(space), scramble=True, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance-properties warning for non powers of two
        if index:
            engine.fast_forward(index)
        u = engine.random(1)[0]
    return space.from_uniform(np.clip(u, 0.0, 1.0 - 1e-12))


@register_optimizer("random")
class RandomOptimizer(Optimizer):
    """Scrambled Sobol points in the sampling cube; ignores the history."""

    multi_objective = True

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        return sobol_point(context.space, context.seed, context.trial_number)
