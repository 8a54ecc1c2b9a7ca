"""Cache keys see the state of a bound method's instance; code without source is not cached
without a version."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Float, Pipeline, Stage


class Scaler:
    def __init__(self, k: float) -> None:
        self.k = k

    def prep(self, x: float) -> float:
        return x * self.k


def _evaluate(v: float, unused: float) -> float:
    return v


def _pipeline(fn, tmp_path: Path) -> Pipeline:
    return Pipeline(
        [Stage("prep", fn, {"x": Float(0, 1)}), Stage("eval", _evaluate, {"unused": Float(0, 1)})],
        cache=tmp_path / "cache",
    )


def test_a_bound_methods_instance_state_is_in_its_key(tmp_path: Path) -> None:
    params = {"prep.x": 0.5, "eval.unused": 0.0}
    assert _pipeline(Scaler(1).prep, tmp_path).run(params).result == 0.5
    again = _pipeline(Scaler(10).prep, tmp_path).run(params)
    assert again.cache_depth == 0 and again.result == 5.0  # not the cached 0.5
    same = _pipeline(Scaler(10).prep, tmp_path).run(params)
    assert same.cache_depth == 1 and same.result == 5.0


def test_changing_the_instance_between_runs_changes_the_key(tmp_path: Path) -> None:
    scaler = Scaler(1)
    pipe = _pipeline(scaler.prep, tmp_path)
    params = {"prep.x": 0.5, "eval.unused": 0.0}
    assert pipe.run(params).result == 0.5
    scaler.k = 10
    assert pipe.run(params).result == 5.0


def test_code_without_source_is_cached_only_with_a_version(tmp_path: Path) -> None:
    scope: dict = {}
    exec("def prep(x):\n    return x * 2\n", scope)  # no file: inspect cannot read its source
    with pytest.raises(ValueError, match=r"stage 'prep'.*cannot be read.*version="):
        _pipeline(scope["prep"], tmp_path)
    with_version = Pipeline(
        [
            Stage("prep", scope["prep"], {"x": Float(0, 1)}, version=1),
            Stage("eval", _evaluate, {"unused": Float(0, 1)}),
        ],
        cache=tmp_path / "cache",
    )
    assert with_version.run({"prep.x": 0.5, "eval.unused": 0.0}).result == 1.0
    uncached = Pipeline(
        [
            Stage("prep", scope["prep"], {"x": Float(0, 1)}),
            Stage("eval", _evaluate, {"unused": Float(0, 1)}),
        ],
        cache=False,
    )
    assert uncached.run({"prep.x": 0.5, "eval.unused": 0.0}).result == 1.0
    # The last stage's output is never cached, so it may be source-less without a version.
    last = Pipeline([Stage("only", scope["prep"], {"x": Float(0, 1)})], cache=tmp_path / "c2")
    assert last.run({"only.x": 0.5}).result == 1.0
