"""The CLI shows pruned trials and multi-objective studies (their Pareto front as the best)."""

from __future__ import annotations

import json

import pytest

from metatune import Float, Study, TrialPruned, cli


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().out


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    mo = Study(
        {"x": Float(0, 1)},
        directions=["minimize", "maximize"],
        storage=url,
        name="mo",
        optimizer="random",
        seed=0,
    )
    for values in ([1.0, 1.0], [2.0, 3.0], [3.0, 2.0]):
        mo.tell(mo.ask(), values)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, 0)
        if trial.number % 2:
            raise TrialPruned()
        return x

    Study(storage=url, name="dbr", optimizer="random", seed=0).optimize(objective, n_trials=4)
    return url


def test_best_of_a_multi_objective_study_is_its_front(capsys, url):
    code, out = _run(capsys, "best", "--study", "mo", "--storage", url, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["directions"] == ["minimize", "maximize"]
    assert [t["values"] for t in payload["best_trials"]] == [[1.0, 1.0], [2.0, 3.0]]
    code, out = _run(capsys, "best", "--study", "mo", "--storage", url)
    assert code == 0 and "Pareto front of mo" in out and "2 of 3 trials" in out


def test_pruned_trials_are_listed_and_counted(capsys, url):
    code, out = _run(capsys, "trials", "--study", "dbr", "--storage", url, "--state", "pruned")
    assert code == 0 and out.count("pruned") >= 2
    code, out = _run(capsys, "studies", "--storage", url, "--json")
    by_name = {s["name"]: s for s in json.loads(out)}
    assert by_name["dbr"]["n_pruned"] == 2 and by_name["dbr"]["n_complete"] == 2
    assert by_name["mo"]["direction"] == "minimize, maximize"
    assert by_name["mo"]["best_value"] is None
