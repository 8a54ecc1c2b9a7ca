"""Hand-made trials for the pruner tests."""

from __future__ import annotations

from collections.abc import Mapping

from metatune.trial import Trial, TrialState


def trial(
    number: int,
    curve: Mapping[int, float] | list[float],
    state: TrialState = TrialState.COMPLETE,
) -> Trial:
    """A trial that reported `curve` (a list is steps 1, 2, ...); a complete one's value is its
    last report."""
    values = dict(enumerate(curve, start=1)) if isinstance(curve, list) else dict(curve)
    t = Trial(number=number, params={"x": float(number)}, state=state)
    t.intermediate_values = {int(k): float(v) for k, v in values.items()}
    if state is TrialState.COMPLETE and values:
        t.value = float(values[max(values)])
    return t


def running(number: int, curve: Mapping[int, float] | list[float]) -> Trial:
    return trial(number, curve, TrialState.RUNNING)
