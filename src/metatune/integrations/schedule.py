"""The learning-rate schedule an LHOPT controller chose in a trial, kept with the trial so the
report and the dashboard can plot it.

The record lives in the trial's ``user_attrs[LR_SCHEDULE_ATTR]`` as plain JSON::

    {"step": [0, 40, 80, ...], "lr": [0.001, 0.0014, 0.0014, ...], "guard": [120]}

``step`` are training steps (0: before training, then each policy step of the controller),
``lr`` the learning rate of the optimizer's first param group from that step on, and ``guard``
the steps at which the divergence guard restored a state and cut the rate tenfold.
`MetatuneCallback` (metatune.integrations.lightning) writes it; a hand-written loop can too::

    ctl = Controller(optimizer, total_steps)
    ...  # train, calling ctl.step(loss)
    trial.set_user_attr(LR_SCHEDULE_ATTR, schedule_record(ctl, start_lr))
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["LR_SCHEDULE_ATTR", "read_schedule", "schedule_record"]

LR_SCHEDULE_ATTR = "lhopt_schedule"


def schedule_record(controller: Any, start_lr: float | None = None) -> dict[str, list[Any]]:
    """The record of `controller`'s decisions so far (its ``history``), starting from
    `start_lr` at step 0 when given."""
    steps: list[int] = []
    lrs: list[float] = []
    guard: list[int] = []
    if start_lr is not None:
        steps.append(0)
        lrs.append(float(start_lr))
    for h in getattr(controller, "history", []):
        steps.append(int(h["step"]))
        lrs.append(float(h["lr"]))
        if h.get("guard_restored"):
            guard.append(int(h["step"]))
    return {"step": steps, "lr": lrs, "guard": guard}


def _finite(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def read_schedule(user_attrs: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The trial's schedule record when it holds one that can be plotted (equal-length lists of
    finite numbers, positive rates), else None: a malformed record is not an error, just
    nothing to show."""
    rec = user_attrs.get(LR_SCHEDULE_ATTR) if isinstance(user_attrs, dict) else None
    if not isinstance(rec, dict):
        return None
    steps, lrs = rec.get("step"), rec.get("lr")
    if not isinstance(steps, list) or not isinstance(lrs, list) or len(steps) != len(lrs):
        return None
    if not steps or not all(_finite(s) for s in steps):
        return None
    if not all(_finite(v) and float(v) > 0 for v in lrs):
        return None
    guard = rec.get("guard") if isinstance(rec.get("guard"), list) else []
    return {
        "step": [int(s) for s in steps],
        "lr": [float(v) for v in lrs],
        "guard": [int(g) for g in guard if _finite(g)],
    }
