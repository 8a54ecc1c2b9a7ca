"""Model-based architecture search: a GP on an architecture encoding, maximized by mutation.

BANANAS (White et al., AAAI 2021) and "Mutation is all you need" found that an acquisition
optimized by mutating the best architectures carries much of the gain, more than the choice of
predictor. Here the predictor is a BoTorch GP with one length scale over the encoding's binary
columns (per-column scales fitted from a hundred points did not help on the tables we tried;
they are an option), the candidates are every neighbour of the best trials plus two-move
mutations and random points, and the acquisition is LogEI; running trials enter as
kriging-believer fantasies so concurrent asks spread out. The encoding is the adjacency one by
default (which operation sits where); BANANAS' path encoding is an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metatune.nas.searchers.moves import (
    completed_by_loss,
    mutate,
    neighbours,
    point_key,
    random_unseen,
    seen_keys,
)
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.space import ParamType, Space
from metatune.trial import Trial

__all__ = ["NASBO", "ENCODINGS", "encode_point"]

ENCODINGS = ("path", "adjacency", "both")


def encode_point(space: Space, params: dict[str, Any], encoding: str = "adjacency") -> np.ndarray:
    """What the GP sees of a point: architecture parameters by `encoding` (path: BANANAS' path
    bits; adjacency: one-hot operations; both), the others by their model encoding."""
    parts = []
    for name, p in space.items():
        v = params[name]
        if isinstance(p, ParamType):
            if encoding in ("path", "both"):
                parts.append(p.features(v))
            if encoding in ("adjacency", "both"):
                parts.append(np.asarray(p.encode(v), dtype=float))
        else:
            parts.append(np.asarray(p.encode(v), dtype=float))
    return np.concatenate(parts)


@dataclass(frozen=True)
class _Candidates:
    params: list[dict[str, Any]]
    X: np.ndarray


@register_optimizer("nas-bo")
class NASBO(Optimizer):
    """A GP on an architecture encoding, LogEI maximized over mutations of the best trials.

    Args:
        n_initial: random points before the first model suggestion.
        encoding: "adjacency", "path" or "both" (see `encode_point`).
        n_parents: best trials whose neighbours are candidates.
        n_mutations: two-move mutations of the parents added as candidates.
        n_random: random points added as candidates.
        lengthscales: "one" for the whole encoding, or "per-column" (ARD).
        refit_every: fit the GP's hyperparameters every this many finished trials; in between
            the last fit's are kept (they move slowly once a few dozen points are in).
    """

    def __init__(
        self,
        n_initial: int = 10,
        encoding: str = "adjacency",
        n_parents: int = 10,
        n_mutations: int = 100,
        n_random: int = 100,
        refit_every: int = 5,
        lengthscales: str = "one",
    ) -> None:
        for label, v, low in (
            ("n_initial", n_initial, 2),
            ("n_parents", n_parents, 1),
            ("n_mutations", n_mutations, 0),
            ("n_random", n_random, 0),
            ("refit_every", refit_every, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {v!r}")
        if lengthscales not in ("one", "per-column"):
            raise ValueError(f"lengthscales must be 'one' or 'per-column'; got {lengthscales!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}; got {encoding!r}")
        self.n_initial = n_initial
        self.encoding = encoding
        self.n_parents = n_parents
        self.n_mutations = n_mutations
        self.n_random = n_random
        self.refit_every = refit_every
        self.lengthscales = lengthscales
        self._fitter: Any = None  # WarmStartFitter, made on first use (BoTorch imports slowly)

    def _candidates(
        self, space: Space, parents: list[Trial], seen: set[str], rng: np.random.Generator
    ) -> _Candidates:
        pool: dict[str, dict[str, Any]] = {}

        def add(p: dict[str, Any]) -> None:
            key = point_key(space, p)
            if key not in seen and key not in pool:
                pool[key] = p

        for t in parents:
            for n in neighbours(space, t.params):
                add(n)
        for _ in range(self.n_mutations):
            parent = parents[int(rng.integers(len(parents)))].params
            add(mutate(space, mutate(space, parent, rng), rng))
        for _ in range(self.n_random):
            add(space.sample(rng))
        params = list(pool.values())
        X = np.array([encode_point(space, p, self.encoding) for p in params]).reshape(
            len(params), -1
        )
        return _Candidates(params, X)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        from metatune.optimizers._gp.seeds import suggestion_seeds

        space = context.space
        torch_seed, rng = suggestion_seeds(context)
        seen = seen_keys(space, (*history, *pending))
        ranked = completed_by_loss(history, context.sign)
        if len(ranked) < self.n_initial:
            return random_unseen(space, rng, seen)
        cands = self._candidates(space, [t for _, t in ranked[: self.n_parents]], seen, rng)
        if not cands.params:
            return random_unseen(space, rng, seen)
        running = [t for t in pending if t.params and all(n in t.params for n in space)]
        X_obs = np.array([encode_point(space, t.params, self.encoding) for _, t in ranked])
        X_run = np.array([encode_point(space, t.params, self.encoding) for t in running])
        X_run = X_run.reshape(len(running), X_obs.shape[1])
        y = -np.array([loss for loss, _ in ranked])
        refit = len(ranked) % self.refit_every == 0
        best = int(np.argmax(self._score(X_obs, y, X_run, cands.X, torch_seed, refit)))
        return cands.params[best]

    def _score(
        self,
        X_obs: np.ndarray,
        y: np.ndarray,
        X_run: np.ndarray,
        X_cand: np.ndarray,
        seed: int,
        refit: bool,
    ) -> np.ndarray:
        """LogEI of every candidate under a GP fitted to (X_obs, y), higher is better."""
        import torch

        from metatune.nas.searchers._model import fit_isotropic_gp, log_ei

        # Columns that vary among the observed points: the only ones the GP can learn from (a
        # path no observed architecture has would add the same distance to every one of them).
        columns = np.ptp(np.vstack([X_obs, X_run]), axis=0) > 0
        if not columns.any():
            return np.zeros(len(X_cand))
        torch.manual_seed(seed)
        model, best_f, self._fitter = fit_isotropic_gp(
            X_obs[:, columns],
            y,
            X_run[:, columns],
            self._fitter,
            refit,
            self.lengthscales,
            # per-column length scales carry over only while the columns stay the same
            key=tuple(np.flatnonzero(columns)) if self.lengthscales == "per-column" else "nas-bo",
        )
        return log_ei(model, best_f, X_cand[:, columns])
