"""TensorBoardCallback: the scalars and HParams runs a study writes, read back with
TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Categorical, Float, Pipeline, Stage, Study
from metatune.pipeline import StageResult

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from metatune.integrations.tensorboard import TensorBoardCallback  # noqa: E402


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_plain_study_logs_values_failures_and_best(tmp_path: Path) -> None:
    def objective(p: dict) -> float:
        if p["x"] > 1.5:
            raise ValueError("too far")
        return (p["x"] - 0.2) ** 2

    cb = TensorBoardCallback(tmp_path)
    study = Study({"x": Float(-2, 2)}, optimizer="random", seed=0, name="tb")
    study.optimize(objective, n_trials=12, callbacks=[cb], show_progress=False)
    cb.close()
    s = _scalars(tmp_path)
    done = [t for t in study.trials if t.state.value == "complete"]
    failed = [t for t in study.trials if t.state.value == "failed"]
    assert [step for step, _ in s["trial/value"]] == [t.number for t in done]
    assert s["study/best_value"][-1][1] == pytest.approx(min(t.value for t in done))
    assert len(s.get("trial/failed", [])) == len(failed)
    runs = sorted(p.name for p in (tmp_path / "trials").iterdir())
    assert runs == [f"trial-{t.number:05d}" for t in done]  # one HParams run per trial


def _prep(scaler: str) -> StageResult:
    return StageResult(scaler, cost=1.0)


def _fit(data: str, lr: float) -> StageResult:
    return StageResult((lr - 0.3) ** 2 + (0.1 if data == "a" else 0.0), cost=2.0)


def test_a_pipeline_study_logs_costs_and_cache(tmp_path: Path) -> None:
    pipe = Pipeline(
        [
            Stage("prep", _prep, {"scaler": Categorical(["a", "b"])}),
            Stage("fit", _fit, {"lr": Float(0.0, 1.0)}),
        ],
        cache=tmp_path / "cache",
    )
    cb = TensorBoardCallback(tmp_path / "tb", hparams=False)
    study = Study(pipe, optimizer="random", seed=0, name="tbp")
    study.optimize(pipe, budget=12, callbacks=[cb], show_progress=False)
    cb.close()
    s = _scalars(tmp_path / "tb")
    assert {"trial/cost", "trial/cache_depth", "study/cost_spent", "stage_cost/prep"} <= set(s)
    assert s["study/cost_spent"][-1][1] == pytest.approx(study.cost_spent)
    assert max(v for _, v in s["trial/cache_depth"]) == 1  # a cached prefix was reused
    assert not (tmp_path / "tb" / "trials").exists()


def test_pruned_trials_curves_and_lr_schedules_go_to_per_trial_runs(tmp_path: Path) -> None:
    from metatune import TrialPruned
    from metatune.integrations.schedule import LR_SCHEDULE_ATTR

    def objective(trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(LR_SCHEDULE_ATTR, {"step": [0, 10], "lr": [0.1, 0.05]})
        for step in range(3):
            trial.report(x + 1.0 / (step + 1), step)
            if step == 1 and x > 0.5:
                raise TrialPruned()
        return x

    cb = TensorBoardCallback(tmp_path, hparams=False)
    study = Study(optimizer="random", seed=0, name="tbc", pruner="none")
    study.optimize(objective, n_trials=8, callbacks=[cb], show_progress=False)
    cb.close()
    s = _scalars(tmp_path)
    pruned = [t for t in study.trials if t.state.value == "pruned"]
    assert pruned and [step for step, _ in s["trial/pruned"]] == [t.number for t in pruned]
    for t in study.trials:
        run = _scalars(tmp_path / "trials" / f"trial-{t.number:05d}")
        curve = run["intermediate_value"]
        assert [step for step, _ in curve] == sorted(t.intermediate_values)
        assert [v for _, v in curve] == pytest.approx(list(t.intermediate_values.values()))
        assert run["lhopt/lr"] == [(0, pytest.approx(0.1)), (10, pytest.approx(0.05))]


def test_several_objectives_log_each_value_and_no_best(tmp_path: Path) -> None:
    cb = TensorBoardCallback(tmp_path, hparams=False)
    study = Study(
        {"x": Float(0, 1)}, directions=["minimize", "maximize"], optimizer="random", seed=0
    )
    study.optimize(lambda p: [p["x"], 2 * p["x"]], n_trials=4, callbacks=[cb], show_progress=False)
    cb.close()
    s = _scalars(tmp_path)
    assert [v for _, v in s["trial/value_1"]] == pytest.approx([t.values[1] for t in study.trials])
    assert "study/best_value" not in s
