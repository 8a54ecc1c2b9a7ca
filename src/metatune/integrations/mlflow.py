"""MLflow logging of a study: pass `MLflowCallback(tracking_uri)` in ``callbacks=`` of
`Study.optimize`.

The study is one MLflow run (in the experiment named after the study unless told otherwise)
with each finished trial as a nested run: its parameters, its value, and for pipelines its
cost, cache depth, cost saved and each stage's cost (``stage_cost.<stage>``), its reported
``intermediate_value`` at each step (its learning curve), ``value_0`` .. for several objectives
and an LHOPT controller's ``lhopt_lr`` at each training step when the trial recorded it; a
failed trial's run ends FAILED with the error's first line as a tag, a pruned one KILLED. The
study's run gets ``best_value`` (one objective) and, for pipelines, ``cost_spent`` at step =
trial number. Needs the ``mlflow`` extra
(``mlflow-skinny`` is enough).
"""

from __future__ import annotations

import math
from typing import Any

from metatune.integrations.schedule import read_schedule
from metatune.trial import SystemAttr, Trial, TrialState, counted_cost

__all__ = ["MLflowCallback"]

_PARAM_LIMIT = 6000  # MLflow's longest parameter value


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


class MLflowCallback:
    """A `Study.optimize` callback writing the study and its trials to MLflow.

    Args:
        tracking_uri: where MLflow stores runs (e.g. ``sqlite:///mlflow.db``); None: MLflow's
            own default (``MLFLOW_TRACKING_URI``).
        experiment: the experiment's name; None: the study's name.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ImportError(
                "MLflowCallback needs mlflow: pip install 'metatune[mlflow]'"
            ) from exc
        self._client = MlflowClient(tracking_uri)
        self.experiment = experiment
        self.experiment_id: str | None = None
        self.study_run_id: str | None = None
        self._best: float | None = None
        self._spent = 0.0

    def _start(self, study: Any) -> None:
        name = self.experiment or getattr(study, "name", None) or "metatune"
        found = self._client.get_experiment_by_name(name)
        self.experiment_id = (
            found.experiment_id if found is not None else self._client.create_experiment(name)
        )
        tags = {
            "metatune.study": str(getattr(study, "name", "")),
            "metatune.direction": str(getattr(study, "direction", "minimize")),
        }
        optimizer = getattr(getattr(study, "optimizer", None), "name", None)
        if optimizer:
            tags["metatune.optimizer"] = str(optimizer)
        run = self._client.create_run(self.experiment_id, run_name=f"study {name}", tags=tags)
        self.study_run_id = run.info.run_id

    def __call__(self, study: Any, trial: Trial) -> None:
        if self.study_run_id is None:
            self._start(study)
        c = self._client
        tags = {"mlflow.parentRunId": self.study_run_id, "metatune.state": trial.state.value}
        if trial.error:
            tags["metatune.error"] = trial.error.strip().splitlines()[0][:500]
        run = c.create_run(self.experiment_id, run_name=f"trial-{trial.number:05d}", tags=tags)
        rid, step = run.info.run_id, trial.number
        for k, v in trial.params.items():
            c.log_param(rid, k, str(v)[:_PARAM_LIMIT])
        value = _number(trial.value)
        several = trial.values is not None and len(trial.values) > 1
        if trial.state is TrialState.COMPLETE and value is not None:
            c.log_metric(rid, "value", value, step=step)
            if several:  # no single best across objectives
                for k, v in enumerate(trial.values or ()):
                    if _number(v) is not None:
                        c.log_metric(rid, f"value_{k}", float(v), step=step)
            else:
                sign = -1.0 if getattr(study, "direction", "minimize") == "maximize" else 1.0
                if self._best is None or sign * value < sign * self._best:
                    self._best = value
        for s, v in sorted(trial.intermediate_values.items()):
            if _number(v) is not None:
                c.log_metric(rid, "intermediate_value", float(v), step=int(s))
        schedule = read_schedule(trial.user_attrs)
        if schedule is not None:
            for s, lr in zip(schedule["step"], schedule["lr"], strict=True):
                c.log_metric(rid, "lhopt_lr", lr, step=s)
        attrs = trial.system_attrs
        if attrs.get(SystemAttr.COST) is not None:
            for key in (SystemAttr.COST, SystemAttr.CACHE_DEPTH, SystemAttr.COST_SAVED):
                v = _number(attrs.get(key))
                if v is not None:
                    c.log_metric(rid, key, v, step=step)
            for record in attrs.get(SystemAttr.STAGES) or []:
                cost = _number(record.get("cost"))
                if cost is not None:
                    c.log_metric(rid, f"stage_cost.{record.get('name')}", cost, step=step)
            self._spent += counted_cost(trial)
            c.log_metric(self.study_run_id, "cost_spent", self._spent, step=step)
        if self._best is not None:
            c.log_metric(self.study_run_id, "best_value", self._best, step=step)
        status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}
        c.set_terminated(rid, status.get(trial.state, "FAILED"))

    def close(self) -> None:
        """End the study's run."""
        if self.study_run_id is not None:
            self._client.set_terminated(self.study_run_id, "FINISHED")
