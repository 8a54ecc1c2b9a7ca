"""Pipelines: construction, stage-by-stage runs, prefix reuse from the cache, invalidation."""

from __future__ import annotations

from collections import Counter

import pytest

from metatune import Categorical, Float, Int, Pipeline, Stage
from metatune.pipeline import Cache, StageError, StageResult
from metatune.pipeline.context import CachedPrefix
from metatune.trial import Trial, TrialState

PARAMS = {"prep.scale": 2.0, "prep.mode": "a", "train.lr": 0.1, "train.steps": 3, "eval.k": 1}


def _make(tmp_path, calls: Counter, versions=(None, None, None), **kw) -> Pipeline:
    def prep(data, scale, mode):
        calls["prep"] += 1
        return [x * scale for x in data] + ([0.0] if mode == "b" else [])

    def train(xs, lr, steps):
        calls["train"] += 1
        return StageResult({"w": sum(xs) * lr * steps}, cost=10.0 * steps)

    def evaluate(model, k):
        calls["eval"] += 1
        return {"objective": model["w"] + k, "k_used": k}

    stages = [
        Stage("prep", prep, {"scale": Float(0.5, 4), "mode": Categorical(["a", "b"])}, versions[0]),
        Stage("train", train, {"lr": Float(1e-3, 1, log=True), "steps": Int(1, 5)}, versions[1]),
        Stage("eval", evaluate, {"k": Int(0, 3)}, versions[2]),
    ]
    kw.setdefault("cache", tmp_path / "cache")
    return Pipeline(stages, input=[1.0, 2.0, 3.0], **kw)


def test_space_and_structure(tmp_path):
    p = _make(tmp_path, Counter())
    assert list(p.space) == ["prep.scale", "prep.mode", "train.lr", "train.steps", "eval.k"]
    assert p.stage_info() == [
        {"name": "prep", "params": ["prep.scale", "prep.mode"]},
        {"name": "train", "params": ["train.lr", "train.steps"]},
        {"name": "eval", "params": ["eval.k"]},
    ]


def test_construction_errors(tmp_path):
    f = Float(0, 1)
    with pytest.raises(ValueError, match="at least one stage"):
        Pipeline([])
    with pytest.raises(ValueError, match="duplicate stage name 'a'"):
        Pipeline([Stage("a", print, {"x": f}), Stage("a", print, {"y": f})])
    with pytest.raises(ValueError, match="bad stage name 'a.b'"):
        Stage("a.b", print, {"x": f})
    with pytest.raises(ValueError, match="bad stage name"):
        Stage("", print, {"x": f})
    with pytest.raises(TypeError, match="fn must be callable"):
        Stage("a", 3, {"x": f})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad parameter name 'x.y'"):
        Stage("a", print, {"x.y": f})
    with pytest.raises(TypeError, match="must be Float, Int, Categorical or a"):
        Stage("a", print, {"x": (0, 1)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="every stage must be"):
        Pipeline([print])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of Stage"):
        Pipeline(Stage("a", print, {"x": f}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one parameter"):
        Pipeline([Stage("a", print)])
    with pytest.raises(ValueError, match="unknown serializer"):
        Stage("a", print, {"x": f}, serializer="yaml")
    with pytest.raises(TypeError, match="cache must be"):
        Pipeline([Stage("a", print, {"x": f})], cache=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="input_fingerprint"):
        Pipeline([Stage("a", print, {"x": f})], input=lambda: 1)


def test_runs_stage_by_stage_and_reuses_the_longest_prefix(tmp_path):
    calls = Counter()
    p = _make(tmp_path, calls)
    first = p.run(PARAMS)
    assert first.error is None and first.cache_depth == 0
    assert first.result == {"objective": 2.0 * 6 * 0.1 * 3 + 1, "k_used": 1}
    assert [r.name for r in first.stages] == ["prep", "train", "eval"]
    assert [r.cache_hit for r in first.stages] == [False, False, False]
    assert first.stages[1].cost == 30.0  # reported by the stage
    assert first.stages[0].cost == first.stages[0].seconds  # wall seconds by default
    assert calls == Counter(prep=1, train=1, eval=1)

    again = p.run({**PARAMS, "eval.k": 2})  # stages 1-2 from the cache
    assert again.cache_depth == 2 and calls == Counter(prep=1, train=1, eval=2)
    assert [r.cache_hit for r in again.stages] == [True, True, False]
    assert again.stages[1].cost < 1.0 and again.stages[0].cost == 0.0
    assert again.result["objective"] == pytest.approx(first.result["objective"] + 1)
    attrs = again.system_attrs
    assert attrs["cost"] == pytest.approx(sum(s["cost"] for s in attrs["stages"]))
    assert set(attrs["stages"][0]) == {"name", "cost", "cache_hit", "seconds"}

    p.run({**PARAMS, "train.lr": 0.2})  # only the first stage from the cache
    assert calls == Counter(prep=1, train=2, eval=3)
    p.run({**PARAMS, "prep.mode": "b"})  # nothing reusable
    assert calls == Counter(prep=2, train=3, eval=4)
    stats = p.cache.stats
    assert stats.hits == 2 and stats.misses == 5 and stats.writes == 5
    assert stats.seconds_saved > 0 and stats.bytes > 0


def test_plain_call_returns_the_result_and_raises_stage_errors(tmp_path):
    p = _make(tmp_path, Counter())
    assert p(PARAMS)["objective"] == pytest.approx(4.6)

    def broken(a):
        raise ZeroDivisionError("nope")

    bad = Pipeline([Stage("one", broken, {"a": Float(0, 1)})], cache=False)
    with pytest.raises(StageError, match="stage 'one' failed: ZeroDivisionError: nope") as info:
        bad({"one.a": 0.5})
    assert info.value.stage == "one"


def test_exact_values_matter(tmp_path):
    calls = Counter()
    p = _make(tmp_path, calls)
    p.run(PARAMS)
    p.run({**PARAMS, "train.lr": 0.1 + 1e-18})  # the same float: cached
    assert calls["train"] == 1
    p.run({**PARAMS, "train.lr": 0.1000000000000001})  # one ulp away: recomputed
    assert calls["train"] == 2
    keys = p.keys(PARAMS)
    assert p.keys({**PARAMS, "train.steps": 3.0}) == keys  # an Int given as float is the same


@pytest.mark.parametrize("changed", [0, 1, 2])
def test_a_new_version_invalidates_that_stage_and_later_ones(tmp_path, changed):
    calls = Counter()
    _make(tmp_path, calls, versions=("1", "1", "1")).run(PARAMS)
    versions = ["1", "1", "1"]
    versions[changed] = "2"
    p = _make(tmp_path, calls, versions=tuple(versions))
    run = p.run(PARAMS)
    assert run.cache_depth == changed
    expected = {"prep": 1, "train": 1, "eval": 1}
    for name in ["prep", "train", "eval"][changed:]:
        expected[name] += 1
    expected["eval"] = 2  # the last stage always runs
    assert dict(calls) == expected


def test_source_hash_and_input_fingerprint_are_in_the_key(tmp_path):
    def one(x, a):
        return x + a

    def two(x, a):
        return x + a + 0

    def last(x, b):
        return x * b

    params = {"s.a": 0.5, "t.b": 1.0}

    def pipe(fn, **kw):
        stages = [Stage("s", fn, {"a": Float(0, 1)}), Stage("t", last, {"b": Float(0, 1)})]
        return Pipeline(stages, cache=tmp_path, **kw)

    base = pipe(one, input=1.0).keys(params)
    assert pipe(one, input=1.0).keys(params) == base
    assert pipe(two, input=1.0).keys(params)[0] != base[0]  # a different source
    assert pipe(one, input=2.0).keys(params)[0] != base[0]  # a different input
    fp = pipe(one, input=1.0, input_fingerprint="data-v1").keys(params)
    assert fp != base and pipe(one, input=2.0, input_fingerprint="data-v1").keys(params) == fp
    # Without an input the first stage is called with its params only.
    assert pipe(lambda a: a).run(params).result == 0.5


def test_a_corrupt_entry_is_recomputed(tmp_path):
    calls = Counter()
    p = _make(tmp_path, calls)
    p.run(PARAMS)
    keys = p.keys(PARAMS)
    (tmp_path / "cache" / f"{keys[1]}.entry").write_bytes(b"\x00garbage")
    run = p.run(PARAMS)  # stage 2 is unreadable: served from stage 1, stage 2 recomputed
    assert run.cache_depth == 1 and calls["train"] == 2 and run.error is None
    assert p.cache.stats.corrupt == 1
    assert p.run(PARAMS).cache_depth == 2 and calls["train"] == 2


def test_failing_stage_keeps_the_costs_of_stages_that_ran(tmp_path):
    def prep(a):
        return a

    def train(x, b):
        raise ValueError("diverged")

    p = Pipeline(
        [Stage("prep", prep, {"a": Float(0, 1)}), Stage("train", train, {"b": Float(0, 1)})],
        cache=tmp_path,
    )
    run = p.run({"prep.a": 0.5, "train.b": 0.5})
    assert isinstance(run.error, StageError) and run.error.stage == "train"
    assert [r.name for r in run.stages] == ["prep", "train"]
    assert run.stages[1].failed and run.system_attrs["stages"][1]["failed"] is True
    # The first stage's output was cached before the failure.
    assert p.run({"prep.a": 0.5, "train.b": 0.1}).cache_depth == 1


def test_unpicklable_output_runs_uncached(tmp_path, caplog):
    p = Pipeline(
        [
            Stage("gen", lambda a: lambda: a, {"a": Float(0, 1)}),
            Stage("use", lambda f, b: f() + b, {"b": Float(0, 1)}),
        ],
        cache=tmp_path,
    )
    assert p({"gen.a": 0.25, "use.b": 0.5}) == 0.75
    assert "could not cache" in caplog.text and len(p.cache) == 0


def _trial(number, params, value=None, state=TrialState.COMPLETE):
    return Trial(number=number, params=params, state=state, value=value)


def test_cached_prefixes_carry_exact_stored_values(tmp_path):
    calls = Counter()
    p = _make(tmp_path, calls)
    a = {**PARAMS, "train.lr": 0.123456789012345678}
    b = {**PARAMS, "prep.scale": 3.0000000000000004, "eval.k": 3}
    p.run(a)
    p.run(b)
    trials = [_trial(0, a, 5.0), _trial(1, b, 1.0), _trial(2, {**b, "eval.k": 0}, 2.0)]
    prefixes = p.cached_prefixes(trials)
    assert prefixes[0] == CachedPrefix(
        1, {"prep.scale": 3.0000000000000004, "prep.mode": "a"}
    )  # the best trial first
    assert CachedPrefix(2, {k: a[k] for k in list(a)[:4]}) in prefixes
    assert len(prefixes) == 4  # trial 2 shares trial 1's prefixes
    for pre in prefixes:
        assert set(pre.params) == set(list(PARAMS)[: 2 * pre.depth])
    # Evicted entries are no longer offered.
    p.cache.clear()
    assert p.cached_prefixes(trials) == []
    assert Pipeline(p.stages, cache=False, input=[1.0]).cached_prefixes(trials) == []


def test_cache_accepts_a_path_a_cache_or_false(tmp_path, monkeypatch):
    f = {"x": Float(0, 1)}
    stages = [Stage("a", lambda x: x, f), Stage("b", lambda v, x: v + x, f)]
    assert Pipeline(stages, cache=str(tmp_path)).cache.folder == tmp_path.resolve()
    c = Cache(tmp_path, max_bytes=10_000)
    assert Pipeline(stages, cache=c).cache is c
    assert Pipeline(stages, cache=False).cache is None
    monkeypatch.chdir(tmp_path)
    default = Pipeline(stages)
    assert default.cache.folder == (tmp_path / "metatune-runs" / "cache").resolve()
    assert default({"a.x": 0.25, "b.x": 0.5}) == 0.75
    assert len(default.cache) == 1


def test_hits_report_what_the_whole_prefix_cost(tmp_path):
    p = _make(tmp_path, Counter())
    first = p.run(PARAMS)
    assert first.seconds_saved == 0.0 and first.cost_saved == 0.0
    again = p.run({**PARAMS, "eval.k": 0})
    expected_cost = first.stages[0].cost + first.stages[1].cost
    assert again.cost_saved == pytest.approx(expected_cost)
    assert again.system_attrs["cost_saved"] == pytest.approx(expected_cost)
    seconds = first.stages[0].seconds + first.stages[1].seconds
    assert again.seconds_saved == pytest.approx(seconds)
    assert p.cache.stats.seconds_saved == pytest.approx(seconds)


def test_partials_and_callable_objects_get_distinct_code_ids(tmp_path):
    import functools

    def scaled(x, factor):
        return x * factor

    class Adder:
        def __call__(self, x):
            return x + 1

    a = Stage("s", functools.partial(scaled, factor=2), {"x": Float(0, 1)})
    b = Stage("s", functools.partial(scaled, factor=3), {"x": Float(0, 1)})
    assert a.code_id != b.code_id and a.code_id.startswith("source:")
    assert Stage("s", Adder(), {"x": Float(0, 1)}).code_id.startswith("source:")
    # (len, not print: another test's library may replace builtins.print in this process)
    assert Stage("s", len, {"x": Float(0, 1)}).code_id == "name:builtins.len"
    assert Stage("s", print, {"x": Float(0, 1)}, version=2).code_id == "version:2"


def test_torch_outputs_flow_through_the_cache(tmp_path):
    import torch

    calls = Counter()

    def make(n):
        calls["make"] += 1
        return torch.nn.Linear(n, 1)

    def score(model, b):
        return float(model.weight.detach().sum()) + b

    p = Pipeline(
        [
            Stage("make", make, {"n": Int(1, 3)}, serializer="torch"),
            Stage("score", score, {"b": Float(0, 1)}),
        ],
        cache=tmp_path,
    )
    first = p({"make.n": 2, "score.b": 0.0})
    assert p({"make.n": 2, "score.b": 0.5}) == pytest.approx(first + 0.5)
    assert calls["make"] == 1
    entry = next(tmp_path.glob("*.entry")).read_bytes()[:300]
    assert b'"serializer": "torch"' in entry


def test_stage_signatures_are_checked_at_construction():
    def needs_two(x, lr):
        return x

    def no_input(lr):
        return lr

    with pytest.raises(TypeError, match=r"stage 'b'.*fn\(previous_output, lr=...\)"):
        Pipeline(
            [Stage("a", no_input, {"lr": Float(0, 1)}), Stage("b", no_input, {"lr": Float(0, 1)})]
        )
    with pytest.raises(TypeError, match=r"stage 'a'.*fn\(lr=...\)"):
        Pipeline([Stage("a", needs_two, {"lr": Float(0, 1)})], cache=False)
    Pipeline([Stage("a", needs_two, {"lr": Float(0, 1)})], input=3, cache=False)
    Pipeline([Stage("a", lambda *a, **k: 0, {"lr": Float(0, 1)})], cache=False)


def _stage_module(tmp_path, name: str, helper_body: str):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(
        "def inner(x):\n"
        f"    {helper_body}\n"
        "\n"
        "def helper(x):\n"
        "    return inner(x)\n"
        "\n"
        "def unrelated():\n"
        "    return 0\n"
        "\n"
        "def train(x):\n"
        "    return [helper(v) for v in (x,)][0]\n"
    )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_hash_follows_same_module_helpers(tmp_path):
    # a stage that calls a helper (here through a comprehension and a second helper) must get a
    # new cache key when that helper's code changes, and keep it when nothing it uses changed
    a = _stage_module(tmp_path, "stages_a", "return x + 1")
    b = _stage_module(tmp_path, "stages_b", "return x + 2")
    same = _stage_module(tmp_path, "stages_c", "return x + 1")
    ids = [Stage("s", m.train, {"x": Float(0, 1)}).code_id for m in (a, b, same)]
    assert ids[0] != ids[1] and ids[0] == ids[2]


def _scaled_sum(xs, scale):
    return sum(xs) * scale


def test_captured_data_changes_the_code_id():
    import functools
    import types

    import numpy as np

    def make(n):
        def fn(x):
            return x * n

        return fn

    assert (
        Stage("s", make(1), {"x": Float(0, 1)}).code_id
        != Stage("s", make(1000), {"x": Float(0, 1)}).code_id
    )
    # numpy's repr hides the middle of a large array; the key must not
    a, b = np.zeros(5000), np.zeros(5000)
    b[2500] = 1.0
    pa = Stage("s", functools.partial(_scaled_sum, a), {"scale": Float(0, 1)})
    pb = Stage("s", functools.partial(_scaled_sum, b), {"scale": Float(0, 1)})
    assert repr(a) == repr(b) and pa.code_id != pb.code_id
    # bound arguments that are objects (an estimator with other settings) count too
    from sklearn.linear_model import Ridge

    ra = Stage("s", functools.partial(_scaled_sum, Ridge(alpha=1.0)), {"scale": Float(0, 1)})
    rb = Stage("s", functools.partial(_scaled_sum, Ridge(alpha=2.0)), {"scale": Float(0, 1)})
    assert ra.code_id != rb.code_id

    class Shift:
        def __init__(self, by):
            self.by = by

        def __call__(self, x):
            return x + self.by

    assert (
        Stage("s", Shift(1), {"x": Float(0, 1)}).code_id
        != Stage("s", Shift(2), {"x": Float(0, 1)}).code_id
    )

    # a module constant the function reads (same code, other globals)
    def scaled(x):
        return x * SCALE  # noqa: F821

    with_2 = types.FunctionType(scaled.__code__, {"SCALE": 2})
    with_3 = types.FunctionType(scaled.__code__, {"SCALE": 3})
    assert (
        Stage("s", with_2, {"x": Float(0, 1)}).code_id
        != Stage("s", with_3, {"x": Float(0, 1)}).code_id
    )


def test_state_objects_in_closures_do_not_change_the_code_id():
    calls = Counter()

    def fn(x):
        calls["fn"] += 1
        return x

    before = Stage("s", fn, {"x": Float(0, 1)}).code_id
    calls["fn"] += 5  # a counter is state, not data: the key must stay put
    assert Stage("s", fn, {"x": Float(0, 1)}).code_id == before


def test_a_hit_on_a_stage_reporting_its_own_cost_is_charged_nothing(tmp_path):
    p = _make(tmp_path, Counter())
    p.run(PARAMS)
    again = p.run({**PARAMS, "eval.k": 0})
    train = [r for r in again.stages if r.name == "train"][0]
    assert train.cache_hit and train.cost == 0.0 and train.seconds > 0.0
    prep = [r for r in again.stages if r.name == "prep"][0]
    assert prep.cache_hit and prep.cost == 0.0
