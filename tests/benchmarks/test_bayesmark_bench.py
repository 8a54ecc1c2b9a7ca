"""benchmarks/bayesmark.py's helpers: peer spaces, coercion of suggestions, resuming, scoring."""

import json

import numpy as np
import pytest

from metatune.space import Categorical, Float, Int, Space


@pytest.fixture(scope="module")
def bm(load_benchmark):
    return load_benchmark("bayesmark")


SPACE = Space(
    {
        "C": Float(1e-2, 1e2, log=True),
        "k": Int(1, 25),
        "w": Categorical(["uniform", "distance"]),
    }
)


def test_space_spec_keeps_types_and_scales(bm) -> None:
    spec = {p["name"]: p for p in bm.space_spec(SPACE)}
    assert spec["C"] == {"name": "C", "type": "float", "low": 1e-2, "high": 1e2, "log": True}
    assert spec["k"]["type"] == "int" and spec["k"]["log"] is False
    assert spec["w"] == {"name": "w", "type": "cat", "choices": ["uniform", "distance"]}


def test_coerce_rounds_clips_and_checks(bm) -> None:
    x = bm.coerce(SPACE, {"C": 500.0, "k": 3.6, "w": "distance"})
    assert x == {"C": 100.0, "k": 4, "w": "distance"}
    SPACE.validate(x)
    with pytest.raises(ValueError, match="w="):
        bm.coerce(SPACE, {"C": 1.0, "k": 3, "w": "manhattan"})


def test_results_file_resumes_and_skips_a_torn_line(bm, tmp_path) -> None:
    path = tmp_path / "runs.jsonl"
    rec = {"problem": "p", "method": "random", "seed": 0, "n_evals": 2, "values": [2.0, 1.0]}
    bm.append_run(path, rec)
    bm.append_run(path, {**rec, "values": [3.0, 0.5]})  # the same run again: the later wins
    with path.open("a") as fh:
        fh.write(json.dumps(rec)[:20])  # an interrupted write
    runs = bm.load_runs(path)
    assert len(runs) == 1 and runs[0]["values"] == [3.0, 0.5]


def _run(problem: str, method: str, seed: int, values: list[float]) -> dict:
    return {
        "problem": problem,
        "method": method,
        "seed": seed,
        "n_evals": len(values),
        "values": values,
        "ask_seconds": [0.0] * len(values),
        "error": None,
    }


def test_summarize_scores_a_method_that_always_finds_the_best(bm) -> None:
    runs = []
    for p in ("a", "b"):
        for s in range(3):
            runs.append(_run(p, "random", s, [5.0 + s, 3.0 + s, 2.0 + s]))
            runs.append(_run(p, "metatune", s, [5.0, 1.0, 1.0]))
    summary = bm.summarize(runs, ["a", "b"], ["metatune", "random"])
    ours, rand = summary["suite"]["metatune"], summary["suite"]["random"]
    assert ours["leaderboard"] == pytest.approx(100.0)
    assert ours["mean"] == pytest.approx(100.0)
    assert rand["leaderboard"] == pytest.approx(0.0)
    assert np.isfinite(rand["mean"]) and ours["seeds"] == 3 and ours["problems"] == 2
    lines = bm.check_lines(summary, ["metatune", "random", "optuna-tpe"], 2)
    assert lines[-2:] == [
        "FAIL: metatune's Bayesmark score above every peer's",
        "FAIL: metatune's mean normalized score above every peer's",
    ]  # optuna-tpe was asked for but has no runs
