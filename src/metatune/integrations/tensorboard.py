"""TensorBoard logging of a study: pass `TensorBoardCallback(log_dir)` in ``callbacks=`` of
`Study.optimize`.

Each finished trial adds, at step = trial number, the scalars ``trial/value``,
``study/best_value`` (one objective; several: ``trial/value_<k>``) and, for pipelines,
``trial/cost``, ``trial/cache_depth``, ``trial/cost_saved``, ``study/cost_spent`` and
``stage_cost/<stage>``; a failed trial adds ``trial/failed`` = 1, a pruned one
``trial/pruned`` = 1. A trial's learning curve (``intermediate_value`` at each reported step)
and an LHOPT controller's learning rate (``lhopt/lr`` at each training step, when recorded) go
to its own run ``trials/trial-NNNNN``, so TensorBoard overlays the trials' curves on one chart. With ``hparams=True`` (default) each completed trial is also a run of
TensorBoard's HParams plugin (its parameters against its value, cost and cache depth), so
the parameters can be compared across trials there. Needs the ``tensorboard`` package
(through ``torch.utils.tensorboard``).
"""

from __future__ import annotations

import math
import os
from typing import Any

from metatune.trial import SystemAttr, Trial, TrialState, counted_cost

__all__ = ["TensorBoardCallback"]


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


def _hparam(v: Any) -> Any:
    """What the HParams plugin accepts: numbers, strings and booleans (the rest as text)."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class TensorBoardCallback:
    """A `Study.optimize` callback writing each finished trial to TensorBoard in `log_dir`.

    Args:
        log_dir: the folder TensorBoard reads (``tensorboard --logdir LOG_DIR``).
        hparams: also log each completed trial as an HParams run under ``log_dir/trials``.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, hparams: bool = True) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch is there; the tensorboard package may not be
            raise ImportError(
                "TensorBoardCallback needs tensorboard: pip install 'metatune[tensorboard]'"
            ) from exc
        self.log_dir = os.fspath(log_dir)
        self.hparams = bool(hparams)
        self._writer = SummaryWriter(log_dir=self.log_dir)
        self._best: float | None = None
        self._spent = 0.0

    def __call__(self, study: Any, trial: Trial) -> None:
        w, step = self._writer, trial.number
        sign = -1.0 if getattr(study, "direction", "minimize") == "maximize" else 1.0
        value = _number(trial.value)
        several = trial.values is not None and len(trial.values) > 1
        if trial.state is TrialState.COMPLETE and value is not None:
            w.add_scalar("trial/value", value, step)
            if several:  # no single best across objectives
                for k, v in enumerate(trial.values or ()):
                    if _number(v) is not None:
                        w.add_scalar(f"trial/value_{k}", float(v), step)
            elif self._best is None or sign * value < sign * self._best:
                self._best = value
        elif trial.state is TrialState.FAILED:
            w.add_scalar("trial/failed", 1.0, step)
        elif trial.state is TrialState.PRUNED:
            w.add_scalar("trial/pruned", 1.0, step)
        self._trial_curves(trial)
        if self._best is not None:
            w.add_scalar("study/best_value", self._best, step)
        attrs = trial.system_attrs
        metrics: dict[str, float] = {}
        if attrs.get(SystemAttr.COST) is not None:
            self._spent += counted_cost(trial)
            w.add_scalar("study/cost_spent", self._spent, step)
            for key in (SystemAttr.COST, SystemAttr.CACHE_DEPTH, SystemAttr.COST_SAVED):
                v = _number(attrs.get(key))
                if v is not None:
                    w.add_scalar(f"trial/{key}", v, step)
                    metrics[f"trial/{key}"] = v
            for record in attrs.get(SystemAttr.STAGES) or []:
                cost = _number(record.get("cost"))
                if cost is not None:
                    w.add_scalar(f"stage_cost/{record.get('name')}", cost, step)
        if self.hparams and trial.state is TrialState.COMPLETE and value is not None:
            w.add_hparams(
                {k: _hparam(v) for k, v in trial.params.items()},
                {"trial/value": value, **metrics},
                run_name=os.path.join("trials", f"trial-{trial.number:05d}"),
                global_step=step,
            )
        w.flush()

    def _trial_curves(self, trial: Trial) -> None:
        """The trial's learning curve and LR schedule in its own run (one chart for all)."""
        from torch.utils.tensorboard import SummaryWriter

        from metatune.integrations.schedule import read_schedule

        schedule = read_schedule(trial.user_attrs)
        if not trial.intermediate_values and schedule is None:
            return
        folder = os.path.join(self.log_dir, "trials", f"trial-{trial.number:05d}")
        with SummaryWriter(log_dir=folder) as tw:
            for s, v in sorted(trial.intermediate_values.items()):
                if _number(v) is not None:
                    tw.add_scalar("intermediate_value", float(v), int(s))
            if schedule is not None:
                for s, lr in zip(schedule["step"], schedule["lr"], strict=True):
                    tw.add_scalar("lhopt/lr", lr, s)

    def close(self) -> None:
        """Flush and close the event files (also done when the callback is garbage-collected)."""
        self._writer.close()
