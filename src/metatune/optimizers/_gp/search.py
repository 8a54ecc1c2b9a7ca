"""Acquisition search over a mixed space, in the model encoding (the unit cube, one-hot blocks).

Sobol points and perturbations of the best trials are scored in one batched call, then the 8
best are refined in rounds of shrinking steps (each round one batched call). Through GPyTorch a
gradient step costs about as much as scoring a thousand points, so gradient polishing
(L-BFGS-B on the continuous coordinates) is optional. Integers and categoricals move only to
valid neighbours, so every candidate is a valid point and categoricals are never ordered.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.stats import qmc

from metatune.optimizers._gp.acquisition import Acquisition, BatchScore, score_together
from metatune.space import Categorical, Float, Int, ParamType, Space

__all__ = [
    "Bounds",
    "Layout",
    "Search",
    "candidates",
    "maximize",
    "maximize_all",
    "perturb",
    "polish",
    "sobol_batch",
]

# Step sizes (in the unit cube) of the local-search rounds around the best acquisition values:
# each round scores _N_REFINED x _N_STEPS perturbed points in one batched call.
REFINE_SCALES = (0.05, 0.01, 0.002, 4e-4, 1e-4)
_N_REFINED = 8
_N_STEPS = 16
_N_TOP_TRIALS = 5  # best trials whose neighbourhoods seed the first batch
_HILL_CLIMB_STEPS = 10
_WIDE_INT = 32  # integers with more values than this are searched as reals, then rounded
_MASK_DIMS = 20  # a trust region's masked candidates change about this many coordinates

Bounds = tuple[np.ndarray, np.ndarray]
"""(lower, upper) (d,) arrays of a box in the model encoding."""


class Layout:
    """Which model dimensions are continuous, and the discrete moves on the rest."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.continuous = np.zeros(space.dim, dtype=bool)
        self.int_dims: list[tuple[int, Int]] = []
        self.cat_blocks: list[slice] = []
        self.custom_blocks: list[tuple[slice, ParamType]] = []  # cells, ...: their own moves
        for name, p in space.items():
            sl = space.slice_of(name)
            if isinstance(p, Float) or (isinstance(p, Int) and p.n_values > _WIDE_INT):
                self.continuous[sl] = True
            elif isinstance(p, Int):
                self.int_dims.append((sl.start, p))
            elif isinstance(p, Categorical):
                self.cat_blocks.append(sl)
            elif isinstance(p, ParamType):
                self.custom_blocks.append((sl, p))

    @property
    def has_discrete(self) -> bool:
        return bool(self.int_dims or self.cat_blocks or self.custom_blocks)

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Valid points one discrete step away from the valid point `x` (d,), as (m, d)."""
        out = []
        for dim, p in self.int_dims:
            k = p.decode([x[dim]])
            for step in (-1, 1):
                if p.low <= k + step <= p.high:
                    y = x.copy()
                    y[dim] = p.encode(k + step)[0]
                    out.append(y)
        for sl in self.cat_blocks:
            cur = int(np.argmax(x[sl]))
            for j in range(sl.stop - sl.start):
                if j != cur:
                    y = x.copy()
                    y[sl] = 0.0
                    y[sl.start + j] = 1.0
                    out.append(y)
        for sl, p in self.custom_blocks:
            for cols in p.model_neighbours(x[sl][None, :]):
                y = x.copy()
                y[sl] = cols
                out.append(y)
        return np.array(out) if out else np.empty((0, len(x)))


def _sobol(space: Space, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` scrambled Sobol points of the space, encoded, (n, d)."""
    sobol = qmc.Sobol(d=len(space), scramble=True, seed=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance-properties warning for non powers of two
        U = sobol.random(n)
    return space.uniform_to_model(np.minimum(U, 1 - 1e-12))


def sobol_batch(space: Space, rng: np.random.Generator, n: int) -> torch.Tensor:
    """`n` scrambled Sobol points as candidates to score, (n, 1, d)."""
    return torch.from_numpy(_sobol(space, rng, n)).unsqueeze(1)


def perturb(
    X: np.ndarray,
    layout: Layout,
    space: Space,
    rng: np.random.Generator,
    scale: Any,
    bounds: Bounds | None = None,
) -> np.ndarray:
    """Gaussian steps of `scale` (a number or (n, 1)) on the continuous dimensions of X (n, d),
    and a random discrete move on half the rows; every row stays a valid point (inside
    `bounds`, the (lower, upper) (d,) box of a trust region, when given)."""
    X = X + rng.normal(size=X.shape) * scale * layout.continuous
    lo, hi = bounds if bounds is not None else (0.0, 1.0)
    X = space.round(np.clip(X, lo, hi))
    if layout.has_discrete:
        for i in np.flatnonzero(rng.random(len(X)) < 0.5):
            nb = layout.neighbours(X[i])
            if len(nb):
                X[i] = nb[rng.integers(len(nb))]
    return X


def candidates(
    space: Space,
    layout: Layout,
    X_obs: np.ndarray,
    z: np.ndarray,
    rng: np.random.Generator,
    n_candidates: int,
    bounds: Bounds | None = None,
) -> np.ndarray:
    """Valid points to score: `n_candidates` Sobol points plus perturbations of the best
    observed points X_obs (n, d) by their model outputs z (n,), higher is better.

    With `bounds` (a trust region's box) the Sobol points fill the box on the continuous
    dimensions, and half of them, as in TuRBO, change only a random subset of about 20 of the
    incumbent's continuous coordinates (all of them in up to 20 dimensions)."""
    U = _sobol(space, rng, n_candidates)
    n_local = max(n_candidates // 4, 16)
    order = np.argsort(-z)
    top = X_obs[order[: min(_N_TOP_TRIALS, len(z))]]
    if bounds is not None:
        lo, hi = bounds
        cont = layout.continuous
        U[:, cont] = lo[cont] + U[:, cont] * (hi[cont] - lo[cont])
        n_cont = int(cont.sum())
        if n_cont > _MASK_DIMS:  # perturbation masks on half the batch
            half = len(U) // 2
            mask = rng.random((half, n_cont)) < _MASK_DIMS / n_cont
            mask[np.arange(half), rng.integers(n_cont, size=half)] = True  # at least one
            centre = np.repeat(X_obs[order[:1]], half, axis=0)
            sub = centre[:, cont]
            sub[mask] = U[:half, cont][mask]
            centre[:, cont] = sub
            U[:half] = centre
        U = space.round(U)
    local = top[np.arange(n_local) % len(top)]
    local = perturb(local, layout, space, rng, 10 ** rng.uniform(-3, -1, (n_local, 1)), bounds)
    return np.vstack([U, local])


def maximize(
    acqf: Acquisition,
    space: Space,
    layout: Layout,
    X_obs: np.ndarray,
    z: np.ndarray,
    rng: np.random.Generator,
    *,
    n_candidates: int,
    n_restarts: int,
    polish_iters: int,
    bounds: Bounds | None = None,
) -> np.ndarray:
    """The best valid point (d,) found for `acqf`: score candidates, refine the best by
    shrinking local sampling, polish by L-BFGS-B (when `polish_iters` > 0), then hill-climb
    over integer and categorical neighbours.

    Args:
        X_obs, z: the observed points (n, d) and their model outputs (n,), higher is better.
        n_candidates: Sobol candidates in the first batch.
        n_restarts: best candidates polished by L-BFGS-B.
        polish_iters: L-BFGS-B iterations (0: no polish).
        bounds: (lower, upper) (d,) arrays of a trust region's box on the continuous
            dimensions; None searches the whole unit cube.
    """
    search = Search({}, acqf, n_candidates)
    [(best_x, _)] = maximize_all(
        [search],
        space,
        layout,
        X_obs,
        z,
        rng,
        n_restarts=n_restarts,
        polish_iters=polish_iters,
        bounds=bounds,
    )
    return best_x


def maximize_all(
    searches: Sequence[Search],
    space: Space,
    layout: Layout,
    X_obs: np.ndarray,
    z: np.ndarray,
    rng: np.random.Generator,
    *,
    n_restarts: int,
    polish_iters: int,
    bounds: Bounds | None = None,
    score_batches: BatchScore | None = None,
) -> list[tuple[np.ndarray, float]]:
    """`maximize` for several searches in lockstep: the best point (d,) and its value for each.

    Each round scores the batches of every search in one `score_batches` call (default: each
    search's acquisition on its own batch; `score_together` scores searches that share their
    model in one posterior call), so a suggestion with several searches costs about as many
    calls as one search. The random draws are made search by search within each round.
    """
    if score_batches is None:
        score_batches = score_together([s.acquisition for s in searches])

    def score(Cs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        with torch.no_grad():
            return score_batches([torch.from_numpy(C).unsqueeze(1) for C in Cs])

    Cs = [candidates(space, layout, X_obs, z, rng, s.n_candidates, bounds) for s in searches]
    vals = score(Cs)
    for scale in REFINE_SCALES:  # cheap zeroth-order refinement of the best candidates
        Ps = []
        for C, v in zip(Cs, vals, strict=True):
            top = C[torch.argsort(v, descending=True)[:_N_REFINED].numpy()]
            Ps.append(perturb(np.repeat(top, _N_STEPS, axis=0), layout, space, rng, scale, bounds))
        Cs = [np.vstack([C, P]) for C, P in zip(Cs, Ps, strict=True)]
        vals = [torch.cat([v, pv]) for v, pv in zip(vals, score(Ps), strict=True)]
    best: list[tuple[np.ndarray, float]] = []
    for i, (C, v) in enumerate(zip(Cs, vals, strict=True)):
        order = torch.argsort(v, descending=True).numpy()
        best_x, best_v = C[order[0]], float(v[order[0]])
        if layout.continuous.any() and n_restarts and polish_iters:
            acqf = searches[i].acquisition
            starts = torch.from_numpy(C[order[:n_restarts]])
            xs = polish(acqf, starts, torch.from_numpy(layout.continuous), polish_iters, bounds)
            xs = space.round(xs.numpy())
            with torch.no_grad():
                vs = acqf(torch.from_numpy(xs).unsqueeze(1))
            j = int(torch.argmax(vs))
            if float(vs[j]) > best_v:
                best_x, best_v = xs[j], float(vs[j])
        best.append((best_x, best_v))

    if layout.has_discrete:  # hill-climb every search over its discrete neighbours
        climbing = list(range(len(searches)))
        for _ in range(_HILL_CLIMB_STEPS):
            nbs = {i: layout.neighbours(best[i][0]) for i in climbing}
            climbing = [i for i in climbing if len(nbs[i])]
            if not climbing:
                break
            scores = score_subset(score_batches, len(searches), {i: nbs[i] for i in climbing})
            still = []
            for i in climbing:
                j = int(torch.argmax(scores[i]))
                if float(scores[i][j]) > best[i][1]:
                    best[i] = (nbs[i][j], float(scores[i][j]))
                    still.append(i)
            climbing = still
            if not climbing:
                break
    return best


def score_subset(
    score_batches: BatchScore, n: int, batches: Mapping[int, np.ndarray]
) -> dict[int, torch.Tensor]:
    """Scores of the `batches` of some of `n` searches (the others get an empty batch)."""
    d = next(iter(batches.values())).shape[1]
    Xs = [
        torch.from_numpy(batches[i] if i in batches else np.empty((0, d))).unsqueeze(1)
        for i in range(n)
    ]
    with torch.no_grad():
        out = score_batches(Xs)
    return {i: out[i] for i in batches}


def polish(
    acqf: Acquisition,
    starts: torch.Tensor,
    free: torch.Tensor,
    iters: int,
    bounds: Bounds | None = None,
) -> torch.Tensor:
    """L-BFGS-B on the `free` (d,) coordinates of every start (b, d) at once, the rest held
    fixed, inside `bounds` (the unit cube when None); the starts themselves on numerical
    trouble."""
    b, k = starts.shape[0], int(free.sum())
    fr = free.numpy()
    lo = np.tile(bounds[0][fr], b) if bounds is not None else np.zeros(b * k)
    hi = np.tile(bounds[1][fr], b) if bounds is not None else np.ones(b * k)

    def assemble(z: np.ndarray | torch.Tensor) -> torch.Tensor:
        X = starts.clone()
        X[:, free] = torch.as_tensor(z, dtype=starts.dtype).view(b, k)
        return X

    def loss_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        Z = torch.tensor(z, dtype=starts.dtype, requires_grad=True)
        loss = -acqf(assemble(Z).unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(loss, Z)
        if not torch.isfinite(loss):
            return 1e10, np.zeros_like(z)
        return float(loss.detach()), torch.nan_to_num(grad).numpy()

    z0 = starts[:, free].reshape(-1).numpy()
    try:
        res = minimize(
            loss_and_grad,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lo, hi, strict=True)),
            options={"maxiter": iters},
        )
        return assemble(np.clip(res.x, lo, hi)).detach()
    except (ValueError, RuntimeError):  # numerical trouble: keep the starts
        return starts


@dataclass(frozen=True)
class Search:
    """One acquisition search of a suggestion: the parameter values it holds fixed (their exact
    stored values, merged into the suggestion), its acquisition, and its first batch size."""

    fixed: Mapping[str, Any]
    acquisition: Acquisition
    n_candidates: int
