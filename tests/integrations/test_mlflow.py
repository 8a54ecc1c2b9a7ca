"""MLflowCallback: a run per study with a nested run per trial, read back with MLflow's client."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Categorical, Float, Pipeline, Stage, Study
from metatune.pipeline import StageResult

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from metatune.integrations.mlflow import MLflowCallback  # noqa: E402


def _prep(scaler: str) -> StageResult:
    return StageResult(scaler, cost=1.0)


def _fit(data: str, lr: float) -> StageResult:
    if lr > 0.9:
        raise RuntimeError("loss is nan")
    return StageResult((lr - 0.3) ** 2 + (0.1 if data == "a" else 0.0), cost=2.0)


@pytest.mark.slow  # MLflow creates its database through some 50 migrations first (~15 s)
def test_a_pipeline_study_in_mlflow(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipe = Pipeline(
        [
            Stage("prep", _prep, {"scaler": Categorical(["a", "b"])}),
            Stage("fit", _fit, {"lr": Float(0.0, 1.0)}),
        ],
        cache=tmp_path / "cache",
    )
    cb = MLflowCallback(uri)
    study = Study(pipe, optimizer="random", seed=2, name="mlp")
    study.optimize(pipe, budget=20, callbacks=[cb], show_progress=False)
    cb.close()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("mlp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = [r for r in runs if r.info.run_id == cb.study_run_id]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == cb.study_run_id]
    assert len(parent) == 1 and len(children) == len(study.trials)
    by_name = {r.info.run_name: r for r in children}
    for t in study.trials:
        r = by_name[f"trial-{t.number:05d}"]
        assert r.data.params == {k: str(v) for k, v in t.params.items()}
        assert r.data.metrics["cost"] == pytest.approx(t.cost)
        assert "stage_cost.prep" in r.data.metrics
        if t.state.value == "complete":
            assert r.info.status == "FINISHED" and r.data.metrics["value"] == pytest.approx(t.value)
        else:
            assert r.info.status == "FAILED" and "loss is nan" in r.data.tags["metatune.error"]
    assert any(t.state.value == "failed" for t in study.trials)
    best = client.get_metric_history(cb.study_run_id, "best_value")
    assert best[-1].value == pytest.approx(study.best_value)
    spent = client.get_metric_history(cb.study_run_id, "cost_spent")
    assert spent[-1].value == pytest.approx(study.cost_spent)
    assert client.get_run(cb.study_run_id).info.status == "FINISHED"


class _Recorder:
    """Stands in for MlflowClient: records what the callback logs (no database to migrate)."""

    def __init__(self, tracking_uri=None) -> None:
        self.metrics: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.status: dict[str, str] = {}
        self._n = 0

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name):
        return "0"

    def create_run(self, experiment_id, run_name, tags):
        from types import SimpleNamespace

        self._n += 1
        return SimpleNamespace(info=SimpleNamespace(run_id=run_name))

    def log_param(self, rid, key, value):
        pass

    def log_metric(self, rid, key, value, step):
        self.metrics.setdefault((rid, key), []).append((step, value))

    def set_terminated(self, rid, status):
        self.status[rid] = status


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.tracking

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", _Recorder)


def test_pruned_trials_end_killed_with_their_curves_and_lr(recorded) -> None:
    from metatune import TrialPruned
    from metatune.integrations.schedule import LR_SCHEDULE_ATTR

    def objective(trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(LR_SCHEDULE_ATTR, {"step": [0, 4], "lr": [0.01, 0.02]})
        for step in range(3):
            trial.report(x * step, step)
            if step == 1 and x > 0.5:
                raise TrialPruned()
        return x

    cb = MLflowCallback()
    rec = cb._client
    study = Study(optimizer="random", seed=0, name="mlc", pruner="none")
    study.optimize(objective, n_trials=6, callbacks=[cb], show_progress=False)
    pruned = [t for t in study.trials if t.state.value == "pruned"]
    assert pruned
    for t in study.trials:
        rid = f"trial-{t.number:05d}"
        assert rec.status[rid] == ("KILLED" if t.state.value == "pruned" else "FINISHED")
        assert rec.metrics[(rid, "intermediate_value")] == sorted(t.intermediate_values.items())
        assert rec.metrics[(rid, "lhopt_lr")] == [(0, 0.01), (4, 0.02)]
    best = rec.metrics[("study mlc", "best_value")][-1][1]
    assert best == pytest.approx(study.best_value)


def test_several_objectives_log_values_and_no_best(recorded) -> None:
    cb = MLflowCallback()
    rec = cb._client
    study = Study(
        {"x": Float(0, 1)},
        directions=["minimize", "maximize"],
        optimizer="random",
        seed=0,
        name="mo",
    )
    study.optimize(lambda p: [p["x"], 2 * p["x"]], n_trials=3, callbacks=[cb], show_progress=False)
    for t in study.trials:
        assert rec.metrics[(f"trial-{t.number:05d}", "value_1")] == [(t.number, t.values[1])]
    assert ("study mo", "best_value") not in rec.metrics
