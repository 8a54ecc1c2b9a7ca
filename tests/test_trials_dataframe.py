"""study.trials_dataframe(): the export's rows as a pandas DataFrame, as Optuna users expect."""

from __future__ import annotations

import pytest

from metatune import Float, Study, TrialState

pd = pytest.importorskip("pandas")


def test_trials_dataframe_has_a_row_per_trial_and_the_export_columns() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    results = iter([{"objective": 0.5, "acc": 0.9}, RuntimeError("boom"), {"objective": 0.2}])

    def objective(p: dict) -> object:
        out = next(results)
        if isinstance(out, Exception):
            raise out
        return out

    study.optimize(objective, n_trials=3)
    frame = study.trials_dataframe()
    assert list(frame["number"]) == [0, 1, 2]
    assert list(frame["state"]) == ["complete", "failed", "complete"]
    assert frame.loc[1, "error"].startswith("RuntimeError: boom")
    assert frame.loc[0, "user_attrs.acc"] == 0.9 and pd.isna(frame.loc[2, "user_attrs.acc"])
    assert [c for c in frame.columns if c.startswith("params.")] == ["params.x"]
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert study.trials[0].state is TrialState.COMPLETE


def test_an_empty_study_gives_an_empty_frame() -> None:
    frame = Study({"x": Float(0, 1)}, optimizer="random").trials_dataframe()
    assert len(frame) == 0 and "value" in frame.columns
