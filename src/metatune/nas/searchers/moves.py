"""Moves in a whole Space: identity up to isomorphism, one-parameter mutation, neighbours.

Shared by the architecture searchers, so that a joint space (a cell next to a learning rate)
is searched the same way as a cell alone: a move changes one parameter, chosen uniformly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from metatune.space import Categorical, Float, Int, ParamType, Space
from metatune.trial import Trial, TrialState

__all__ = [
    "completed_by_loss",
    "mutate",
    "neighbours",
    "point_key",
    "random_unseen",
    "seen_keys",
]

_FLOAT_STEPS = (-0.2, -0.05, 0.05, 0.2)  # neighbours of a float, in its unit encoding


def point_key(space: Space, params: Mapping[str, Any]) -> str:
    """One string per point; isomorphic cells (same canonical form) share it."""
    parts = []
    for name, p in space.items():
        if name not in params:  # an inactive conditional parameter
            parts.append("\x00")
            continue
        v = params[name]
        canonical = getattr(p, "canonical", None)
        parts.append(canonical(v) if canonical is not None else json.dumps(v, default=str))
    return "\x1f".join(parts)


def seen_keys(space: Space, trials: Iterable[Trial]) -> set[str]:
    """Keys of every trial with parameters of this space (finished, failed or running)."""
    out = set()
    for t in trials:
        if t.params:
            try:
                space.validate(t.params)
                out.add(point_key(space, t.params))
            except (TypeError, ValueError):
                continue  # a trial told by hand with values outside the space
    return out


def mutate(space: Space, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """`params` with one parameter, chosen uniformly, moved by that parameter's own mutation
    (in a conditional space, parameters it switches on are drawn and those it switches off
    dropped)."""
    movable = [
        n
        for n, p in space.items()
        if n in params and not (isinstance(p, Categorical) and len(p.choices) < 2)
    ]
    name = movable[int(rng.integers(len(movable)))]
    moved = {**params, name: space[name].mutate(params[name], rng)}
    return space.repair(moved, rng) if space.is_conditional else moved


def _param_neighbours(p: Any, value: Any) -> list[Any]:
    if isinstance(p, ParamType):
        return p.neighbours(value) if hasattr(p, "neighbours") else []
    if isinstance(p, Categorical):
        return [c for c in p.choices if not (type(c) is type(value) and c == value)]
    if isinstance(p, Int):
        return [k for k in (int(value) - 1, int(value) + 1) if p.low <= k <= p.high]
    if isinstance(p, Float):
        u = p.encode(value)[0]
        return sorted({p.decode([u + s]) for s in _FLOAT_STEPS} - {value})
    return []


def neighbours(space: Space, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every point one move away: one parameter changed to one of its neighbouring values (a
    parameter a move switches on gets a value drawn from a generator seeded by the move)."""
    out = []
    for name, p in space.items():
        if name not in params:
            continue
        for i, v in enumerate(_param_neighbours(p, params[name])):
            moved = {**params, name: v}
            if space.is_conditional:
                moved = space.repair(moved, np.random.default_rng([len(out), i]))
            out.append(moved)
    return out


def random_unseen(
    space: Space, rng: np.random.Generator, seen: set[str], tries: int = 200
) -> dict[str, Any]:
    """A uniform random point not in `seen` (after `tries` draws, the last one anyway)."""
    params = space.sample(rng)
    for _ in range(tries):
        if point_key(space, params) not in seen:
            return params
        params = space.sample(rng)
    return params


def completed_by_loss(history: Sequence[Trial], sign: float) -> list[tuple[float, Trial]]:
    """Finished trials with a finite value as (loss, trial), best first (ties by number)."""
    done = [
        (sign * float(t.value), t)
        for t in history
        if t.value is not None
        and np.isfinite(t.value)
        and t.params
        and t.state is TrialState.COMPLETE
    ]
    return sorted(done, key=lambda lt: (lt[0], lt[1].number))
