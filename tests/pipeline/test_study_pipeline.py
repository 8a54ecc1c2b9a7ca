"""Studies that optimize a Pipeline: context for the optimizer, stage records, cost budgets."""

from __future__ import annotations

from collections import Counter

import pytest

from metatune import Float, Int, Pipeline, Stage, Study, TrialState
from metatune.optimizers import Optimizer
from metatune.pipeline import StageResult, summarize
from metatune.pipeline.context import CachedPrefix, PipelineContext, StageInfo


def _pipeline(tmp_path, calls: Counter, fail_when=None) -> Pipeline:
    """Three stages with simulated costs 5, 3 and 1 per run; the middle one can be made to fail."""

    def prep(n):
        calls["prep"] += 1
        return StageResult(list(range(n)), cost=5.0)

    def train(xs, lr):
        calls["train"] += 1
        if fail_when is not None and fail_when(lr):
            raise RuntimeError(f"diverged at lr={lr}")
        return StageResult(sum(xs) * lr, cost=3.0)

    def evaluate(w, k):
        calls["eval"] += 1
        return StageResult({"objective": (w - 2.0) ** 2 + k, "w": w}, cost=1.0)

    return Pipeline(
        [
            Stage("prep", prep, {"n": Int(2, 4)}),
            Stage("train", train, {"lr": Float(0.01, 1.0, log=True)}),
            Stage("eval", evaluate, {"k": Int(0, 2)}),
        ],
        cache=tmp_path / "cache",
    )


class _Replay(Optimizer):
    """Reuses the first cached prefix offered (exact values) and records every context."""

    name = "replay"

    def __init__(self) -> None:
        self.contexts: list[PipelineContext] = []

    def suggest(self, history, pending, context):
        self.contexts.append(context.pipeline)
        params = context.space.sample(context.seed + context.trial_number)
        for prefix in context.pipeline.cached_prefixes:
            if prefix.depth == 2:
                params.update(prefix.params)
                break
        return params


def test_stage_records_and_context_for_the_optimizer(tmp_path):
    calls = Counter()
    pipe = _pipeline(tmp_path, calls)
    opt = _Replay()
    study = Study(pipe, optimizer=opt, seed=3)
    study.optimize(pipe, n_trials=4)
    trials = study.trials
    assert all(t.state is TrialState.COMPLETE for t in trials)
    first, later = trials[0], trials[1:]
    assert first.stages == [
        {"name": "prep", "cost": 5.0, "cache_hit": False, "seconds": first.stages[0]["seconds"]},
        {"name": "train", "cost": 3.0, "cache_hit": False, "seconds": first.stages[1]["seconds"]},
        {"name": "eval", "cost": 1.0, "cache_hit": False, "seconds": first.stages[2]["seconds"]},
    ]
    assert first.cost == first.system_attrs["cost"] == 9.0
    for t in trials:  # the tuner's own time goes with every trial
        assert 0.0 <= t.system_attrs["ask_seconds"] < 60.0
    assert "w" in first.user_attrs  # extra metrics of the last stage
    for t in later:  # the optimizer reused the cached two-stage prefix
        assert [s["cache_hit"] for s in t.stages] == [True, True, False]
        assert t.cost < 1.5 and t.system_attrs["cache_depth"] == 2
        assert {k: t.params[k] for k in ("prep.n", "train.lr")} == {
            k: first.params[k] for k in ("prep.n", "train.lr")
        }
    assert calls == Counter(prep=1, train=1, eval=4)

    ctx = opt.contexts[0]
    assert isinstance(ctx, PipelineContext)
    assert ctx.stages == (
        StageInfo("prep", ("prep.n",)),
        StageInfo("train", ("train.lr",)),
        StageInfo("eval", ("eval.k",)),
    )
    assert (ctx.budget_total, ctx.budget_spent) == (None, 0.0) and ctx.cached_prefixes == ()
    second = opt.contexts[1]
    assert second.budget_spent == 9.0
    assert second.cached_prefixes == (
        CachedPrefix(1, {"prep.n": first.params["prep.n"]}),
        CachedPrefix(2, {"prep.n": first.params["prep.n"], "train.lr": first.params["train.lr"]}),
    )
    assert study.cost_spent == pytest.approx(sum(t.cost for t in trials))


def test_budget_stops_the_study_and_survives_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    calls = Counter()
    pipe = _pipeline(tmp_path, calls)
    study = Study(pipe, optimizer="random", storage=url, name="s", seed=0)
    study.optimize(pipe, budget=25.0)
    spent = study.cost_spent
    assert spent >= 25.0
    assert spent - study.trials[-1].cost < 25.0  # stopped right after crossing the budget
    n = len(study.trials)

    assert study.budget == 25.0 and study.budget_left == 0.0
    assert all(t.system_attrs["budget"] == 25.0 for t in study.trials)

    resumed = Study(name="s", storage=url, optimizer="random")
    assert resumed.budget == 25.0  # read back from storage
    resumed.optimize(pipe, budget=25.0)  # already spent: runs nothing
    resumed.optimize(pipe)  # nor does resuming to the recorded budget
    assert len(resumed.trials) == n
    # Values read back from SQLite are exact: their prefixes are found in the cache.
    prefixes = pipe.cached_prefixes(resumed.trials)
    deepest = [p for p in prefixes if p.depth == 2]
    assert deepest and pipe.run({**deepest[0].params, "eval.k": 0}).cache_depth == 2
    resumed.optimize(pipe, budget=40.0, n_trials=100)
    assert resumed.cost_spent >= 40.0 and len(resumed.trials) > n
    assert resumed.cost_spent - resumed.trials[-1].cost < 40.0
    n2 = len(resumed.trials)
    resumed.optimize(pipe, budget=1000.0, n_trials=2)  # n_trials still applies
    assert len(resumed.trials) == n2 + 2
    assert resumed.budget == 1000.0
    assert resumed.budget_left == pytest.approx(1000.0 - resumed.cost_spent)


def test_optimize_without_a_budget_resumes_to_the_recorded_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    pipe = _pipeline(tmp_path, Counter())
    study = Study(pipe, optimizer="random", storage=url, name="s", seed=0)
    assert study.budget is None and study.budget_left is None
    study.optimize(pipe, budget=30.0, n_trials=2)  # stopped early by n_trials
    left = study.budget_left
    assert 0 < left < 30.0
    Study(name="s", storage=url, optimizer="random").optimize(pipe)  # goes on to 30
    done = Study(name="s", storage=url, optimizer="random")
    assert done.cost_spent >= 30.0 and done.budget_left == 0.0
    assert done.cost_spent - done.trials[-1].cost < 30.0
    n = len(done.trials)
    done.optimize(pipe, n_trials=1)  # an explicit n_trials runs without the budget
    assert len(done.trials) == n + 1 and "budget" not in done.trials[-1].system_attrs


def test_budget_context_counts_spent_cost(tmp_path):
    pipe = _pipeline(tmp_path, Counter())
    opt = _Replay()
    study = Study(pipe, optimizer=opt, seed=1)
    study.optimize(pipe, budget=100.0, n_trials=3)
    assert [c.budget_total for c in opt.contexts] == [100.0] * 3
    spent = [c.budget_spent for c in opt.contexts]
    costs = [t.cost for t in study.trials]
    assert spent == pytest.approx([0.0, costs[0], costs[0] + costs[1]])


def test_failing_stage_fails_the_trial_and_the_study_goes_on(tmp_path):
    calls = Counter()
    pipe = _pipeline(tmp_path, calls, fail_when=lambda lr: lr > 0.1)
    study = Study(pipe, optimizer="random", seed=0)
    study.optimize(pipe, n_trials=12)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert failed and done and len(study.trials) == 12
    for t in failed:
        assert "stage 'train' failed: RuntimeError: diverged" in t.error
        assert [s["name"] for s in t.stages] == ["prep", "train"]
        assert t.stages[1]["failed"] is True and t.cost >= t.stages[0]["cost"]
    assert study.cost_spent == pytest.approx(sum(t.cost for t in study.trials))


def test_optimize_validates_budget_before_any_work(tmp_path):
    pipe = _pipeline(tmp_path, Counter())
    study = Study(pipe, optimizer="random", seed=0)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "10"):
        with pytest.raises(ValueError, match="budget must be a positive number"):
            study.optimize(pipe, budget=bad)
    plain = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    with pytest.raises(ValueError, match="budget .* needs a Pipeline"):
        plain.optimize(lambda p: p["x"], budget=10.0)
    with pytest.raises(ValueError, match="pipeline's space"):
        plain.optimize(pipe, n_trials=1)
    assert study.trials == [] and plain.trials == []


def test_a_plain_objective_still_works_and_a_pipeline_works_via_ask_tell(tmp_path):
    calls = Counter()
    pipe = _pipeline(tmp_path, calls)
    study = Study(pipe.space, optimizer="random", seed=0)
    trial = study.ask(pipeline=pipe.suggest_context(study.trials, study.direction, budget=50.0))
    run = pipe.run(trial.params)
    done = study.tell(trial, run.result, system_attrs=run.system_attrs)
    assert done.state is TrialState.COMPLETE and done.cost == 9.0
    assert study.cost_spent == 9.0
    # As a plain callable (no context, no stage records) a Pipeline is an ordinary objective.
    plain = Study(pipe.space, optimizer="random", seed=0)
    plain.optimize(lambda p: pipe(p), n_trials=2)
    assert all(t.state is TrialState.COMPLETE for t in plain.trials)


def test_progress_shows_which_stages_came_from_the_cache(tmp_path, capsys):
    pipe = _pipeline(tmp_path, Counter())
    study = Study(pipe, optimizer=_Replay(), seed=0)
    study.optimize(pipe, n_trials=2, show_progress=True)
    err = capsys.readouterr().err
    assert "trial 0: prep (5) -> train (3) -> eval (1)  cost 9" in err
    assert "trial 1: prep (cache) -> train (cache) -> eval (1)" in err


def test_summarize_counts_candidates_hits_and_savings(tmp_path):
    pipe = _pipeline(tmp_path, Counter())
    study = Study(pipe, optimizer=_Replay(), seed=0)
    study.optimize(pipe, n_trials=3)
    s = summarize(study.trials)
    assert s["candidates"] == s["completed"] == 3 and s["failed"] == 0
    assert s["trials_with_cache_hits"] == 2 and s["stage_cache_hits"] == 4
    assert s["stage_runs"] == 5 and s["cost_saved"] == pytest.approx(16.0)
    assert s["cost_spent"] == pytest.approx(study.cost_spent) and s["seconds_saved"] >= 0


def test_trial_cost_is_charged_to_every_trial_and_the_budget(tmp_path):
    calls = Counter()
    pipe = _pipeline(tmp_path, calls)
    charged = Pipeline(pipe.stages, cache=tmp_path / "cache2", trial_cost=4.0)
    run = charged.run({"prep.n": 2, "train.lr": 0.1, "eval.k": 0})
    assert run.cost == pytest.approx(5.0 + 3.0 + 1.0 + 4.0)
    again = charged.run({"prep.n": 2, "train.lr": 0.1, "eval.k": 1})  # two stages cached
    assert again.cache_depth == 2 and again.cost >= 4.0 + 1.0
    assert again.system_attrs["trial_cost"] == 4.0
    assert charged.suggest_context([], "minimize", 10.0).trial_cost == 4.0

    study = Study(charged, optimizer="random", seed=0)
    study.optimize(charged, budget=60.0)
    assert all(t.cost >= 4.0 for t in study.trials)
    assert study.cost_spent == pytest.approx(sum(t.cost for t in study.trials))
    assert study.cost_spent - study.trials[-1].cost < 60.0 <= study.cost_spent
    for bad in (-1.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="trial_cost"):
            Pipeline(pipe.stages, cache=False, trial_cost=bad)
        with pytest.raises(ValueError, match="trial_cost"):  # a later assignment too
            charged.trial_cost = bad
    assert charged.trial_cost == 4.0


def test_an_interrupted_trial_keeps_the_cost_of_the_stages_that_ran(tmp_path):
    def prep(n):
        return StageResult(list(range(n)), cost=5.0)

    def train(xs, lr):
        raise KeyboardInterrupt  # Ctrl-C while the second stage runs

    pipe = Pipeline(
        [
            Stage("prep", prep, {"n": Int(2, 4)}),
            Stage("train", train, {"lr": Float(0.01, 1.0, log=True)}),
        ],
        cache=tmp_path / "cache",
    )
    study = Study(pipe, optimizer="random", seed=0)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(pipe, budget=100.0)
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED and "KeyboardInterrupt" in trial.error
    assert [s["name"] for s in trial.stages] == ["prep", "train"]
    assert study.cost_spent >= 5.0  # prep ran (and was cached) before the interrupt
