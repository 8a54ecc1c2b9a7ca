"""Pipelines: stages run in order, each stage's output memoized so shared prefixes run once.

A Pipeline is an objective: ``pipeline(params)`` runs it and returns the last stage's result, so
``study.optimize(pipeline, ...)`` works. The Study recognizes a Pipeline and does more: it tells
the optimizer the stage structure, the cost budget and which prefixes are cached, records every
stage's cost and cache hit with the trial, and stops when a cost budget is spent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metatune.direction import Direction
from metatune.pipeline.cache import Cache, get_serializer
from metatune.pipeline.context import CachedPrefix, PipelineContext, StageInfo
from metatune.pipeline.stage import Stage, StageError, StageResult
from metatune.space import Categorical, Float, Int, Param, ParamType, Space
from metatune.trial import SystemAttr, Trial, TrialState, counted_cost

__all__ = ["Pipeline", "PipelineRun", "StageRecord", "cost_spent", "summarize"]

log = logging.getLogger("metatune")

_KEY_VERSION = 1


@dataclass
class StageRecord:
    """What one stage cost in one trial: its own reported cost (else wall seconds), and whether
    its output came from the cache (then the cost is the time to load it, or 0 for a stage that
    reports its own cost)."""

    name: str
    cost: float
    cache_hit: bool
    seconds: float
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "cost": float(self.cost),
            "cache_hit": bool(self.cache_hit),
            "seconds": float(self.seconds),
        }
        if self.failed:
            d["failed"] = True
        return d


@dataclass
class PipelineRun:
    """The outcome of one run: the last stage's result, or the error of the stage that failed."""

    result: Any
    stages: list[StageRecord] = field(default_factory=list)
    error: StageError | None = None
    cache_depth: int = 0
    seconds_saved: float = 0.0
    cost_saved: float = 0.0
    trial_cost: float = 0.0  # the pipeline's fixed charge per trial, on top of its stages
    tuner_cost: float = 0.0  # the tuner's seconds charged to the trial (see Pipeline)
    in_seconds: bool = False  # some stage's cost is its wall seconds (none reported its own)

    @property
    def cost(self) -> float:
        return float(sum(r.cost for r in self.stages)) + self.trial_cost + self.tuner_cost

    @property
    def system_attrs(self) -> dict[str, Any]:
        """What the Study stores with the trial: per-stage records, total cost, cached depth."""
        return {
            SystemAttr.STAGES: [r.to_dict() for r in self.stages],
            SystemAttr.COST: self.cost,
            SystemAttr.CACHE_DEPTH: self.cache_depth,
            SystemAttr.SECONDS_SAVED: float(self.seconds_saved),
            SystemAttr.COST_SAVED: float(self.cost_saved),
            SystemAttr.TRIAL_COST: float(self.trial_cost),
            SystemAttr.TUNER_COST: float(self.tuner_cost),
        }


def cost_spent(trials: Iterable[Trial]) -> float:
    """Sum of the recorded costs (system_attrs["cost"]) of finished trials."""
    return float(sum(counted_cost(t) for t in trials if t.state.finished))


def summarize(trials: Iterable[Trial]) -> dict[str, Any]:
    """Totals over pipeline trials: candidates, completed, failed, trials that reused a cached
    prefix, stage runs served from the cache, cost spent, and seconds and cost saved."""
    out: dict[str, Any] = {
        "candidates": 0,
        "completed": 0,
        "failed": 0,
        "trials_with_cache_hits": 0,
        "stage_cache_hits": 0,
        "stage_runs": 0,
        "cost_spent": 0.0,
        "seconds_saved": 0.0,
        "cost_saved": 0.0,
    }
    trials = [t for t in trials if t.state.finished]
    for t in trials:
        out["candidates"] += 1
        out["completed" if t.state is TrialState.COMPLETE else "failed"] += 1
        stages = t.system_attrs.get(SystemAttr.STAGES) or []
        hits = sum(1 for r in stages if r.get("cache_hit"))
        out["stage_cache_hits"] += hits
        out["stage_runs"] += len(stages) - hits
        out["trials_with_cache_hits"] += 1 if hits else 0
        out["seconds_saved"] += float(t.system_attrs.get(SystemAttr.SECONDS_SAVED) or 0.0)
        out["cost_saved"] += float(t.system_attrs.get(SystemAttr.COST_SAVED) or 0.0)
    out["cost_spent"] = cost_spent(trials)
    return out


def _check_signature(stage: Stage, takes_output: bool) -> None:
    """Fail at construction, not in every trial, if the stage cannot take its arguments."""
    try:
        sig = inspect.signature(stage.fn)
    except (TypeError, ValueError):  # some builtins have no signature: trust the caller
        return
    args = (None,) if takes_output else ()
    try:
        sig.bind(*args, **dict.fromkeys(stage.params))
    except TypeError as exc:
        first = "previous_output, " if takes_output else ""
        call = f"fn({first}{', '.join(f'{p}=...' for p in stage.params)})"
        raise TypeError(
            f"stage {stage.name!r}: {getattr(stage.fn, '__name__', stage.fn)!r} cannot be called "
            f"as {call}: {exc}"
        ) from None


def _full_condition(stage: Stage, p: Param) -> Param:
    """`p` with a `when` parent of its own stage named by its full name ("train.optimizer"),
    so that a stage declares its conditions in its own names."""
    when = getattr(p, "when", None)
    if when is None or when[0] not in stage.params:
        return p
    full = (stage.full_name(when[0]), when[1])
    if isinstance(p, Categorical):
        return Categorical(p.choices, when={full[0]: list(full[1])})
    return dataclasses.replace(p, when=full)


def _normalize(p: Param, value: Any) -> Any:
    """The value a stage receives and the cache key sees: plain Python float / int / choice."""
    if isinstance(p, Float):
        return float(value)
    if isinstance(p, Int):
        return int(value)
    if isinstance(p, Categorical):
        return p.choices[p.index(value)]
    if isinstance(p, ParamType):
        return p.normalize(value)
    return value


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class Pipeline:
    """Stages run in order: ``stages[0].fn(input, **p0)``, then ``stages[1].fn(out0, **p1)``, ...

    `cache` is a folder path, a `Cache`, None for ./metatune-runs/cache, or False for no caching.
    `input` (optional; None means none) is passed to the first stage; its fingerprint (a hash of
    its pickled bytes, or `input_fingerprint` if given, e.g. for data too big to pickle or whose
    pickle is not stable across processes, like a set of strings) is part of every cache key.
    The last stage returns the objective: a float, or a dict with "objective" and extra metrics.
    A stage may return `StageResult(output, cost=...)` to report its own cost instead of its wall
    seconds.
    Outputs of every stage but the last are cached; loading a cache trusts whoever wrote it.
    `trial_cost` is a fixed cost charged to every trial on top of its stages (in the stages'
    units), for what each candidate costs whatever is cached: starting a job, loading data,
    the tuner's own time. The budget counts it, and cost-aware optimizers add it to every
    candidate's predicted cost, so a nearly free last stage is not taken for a free trial.

    `count_tuner_time` charges each trial a Study runs with the tuner's own seconds: the time
    since the previous trial's run ended (its tell, the budget check, the cached prefixes, the
    optimizer's ask) plus this run's bookkeeping outside the stages (cache keys, reads, writes).
    So a budget in wall seconds bounds the wall time (to within one trial and one ask), a cache
    hit that costs nothing in a stage's units still costs the tuner's time, and cost-aware
    optimizers see that time as part of every candidate's cost. "auto" (the default) charges
    it when the costs are wall seconds, i.e. unless every stage reported its own cost
    (`StageResult(cost=...)`: a simulated clock, GPU-seconds); True always, False never.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        cache: str | os.PathLike[str] | Cache | None | bool = None,
        input: Any = None,
        input_fingerprint: str | None = None,
        trial_cost: float = 0.0,
        count_tuner_time: bool | str = "auto",
    ) -> None:
        if isinstance(stages, Stage) or not isinstance(stages, Sequence):
            raise TypeError(f"stages must be a list of Stage, got {stages!r}")
        if not stages:
            raise ValueError("a Pipeline needs at least one stage, got an empty list")
        seen: set[str] = set()
        for s in stages:
            if not isinstance(s, Stage):
                raise TypeError(f"every stage must be a metatune Stage, got {s!r}")
            if s.name in seen:
                raise ValueError(f"duplicate stage name {s.name!r}; stage names must be unique")
            seen.add(s.name)
        params = {
            s.full_name(n): _full_condition(s, p) for s in stages for n, p in s.params.items()
        }
        if not params:
            raise ValueError("a Pipeline needs at least one parameter in some stage")
        self.trial_cost = trial_cost
        if not (isinstance(count_tuner_time, bool) or count_tuner_time == "auto"):
            raise ValueError(
                f"count_tuner_time must be True, False or 'auto', got {count_tuner_time!r}"
            )
        self.count_tuner_time = count_tuner_time
        self.stages: list[Stage] = list(stages)
        self.space = Space(params)

        if cache is None or cache is True:
            self.cache: Cache | None = Cache()
        elif cache is False:
            self.cache = None
        elif isinstance(cache, Cache):
            self.cache = cache
        elif isinstance(cache, (str, os.PathLike)):
            self.cache = Cache(cache)
        else:
            raise TypeError(f"cache must be a folder path, a Cache, None or False, got {cache!r}")

        if self.cache is not None:
            for s in self.stages[:-1]:  # the last stage's output is never cached
                if not s.has_source:
                    raise ValueError(
                        f"stage {s.name!r}: the source of {s.fn!r} cannot be read (code made by "
                        "exec or `python -c`), so the cache could not tell when it changes; "
                        "give the stage version=... (and change it with the code), or cache=False"
                    )
        self._has_input = input is not None
        self.input = input
        if input_fingerprint is not None:
            if not isinstance(input_fingerprint, str) or not input_fingerprint:
                raise ValueError(
                    f"input_fingerprint must be a non-empty string, got {input_fingerprint!r}"
                )
            self.input_fingerprint = "user:" + input_fingerprint
        elif not self._has_input:
            self.input_fingerprint = "none"
        else:
            try:
                data = pickle.dumps(input, protocol=4)
            except Exception as exc:
                raise TypeError(
                    f"the pipeline input cannot be pickled to fingerprint it ({exc}); "
                    "pass input_fingerprint='...' that changes whenever the input does"
                ) from exc
            self.input_fingerprint = "pickle:" + hashlib.sha256(data).hexdigest()
        for i, stage in enumerate(self.stages):
            _check_signature(stage, takes_output=i > 0 or self._has_input)

    @property
    def trial_cost(self) -> float:
        """Checked on every assignment, not only in the constructor."""
        return self._trial_cost

    @trial_cost.setter
    def trial_cost(self, value: float) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"trial_cost must be a finite number >= 0, got {value!r}")
        self._trial_cost = float(value)

    def __repr__(self) -> str:
        return f"Pipeline({[s.name for s in self.stages]}, cache={self.cache!r})"

    # Structure ---------------------------------------------------------------------------------
    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage_info(self) -> list[dict[str, Any]]:
        """[{"name": stage, "params": [full parameter names in the space's order]}, ...]."""
        return [{"name": s.name, "params": [s.full_name(n) for n in s.params]} for s in self.stages]

    def _local(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                n: _normalize(p, params[s.full_name(n)])
                for n, p in s.params.items()
                if s.full_name(n) in params  # an inactive conditional parameter is left out
            }
            for s in self.stages
        ]

    def keys(self, params: Mapping[str, Any]) -> list[str]:
        """Cache key of each stage's output: a chain over code, exact params and the input."""
        self.space.validate(params)
        return self._keys(self._local(params))

    def _keys(self, local: list[dict[str, Any]]) -> list[str]:
        keys, parent = [], self.input_fingerprint
        for s, p in zip(self.stages, local, strict=True):
            parent = _digest(
                {
                    "v": _KEY_VERSION,
                    "parent": parent,
                    "stage": s.name,
                    "code": s.code_id,
                    "params": p,
                }
            )
            keys.append(parent)
        return keys

    # Running -----------------------------------------------------------------------------------
    records_cost = True  # `evaluate` records system_attrs["cost"]: a cost budget can be counted

    def run(self, params: Mapping[str, Any]) -> PipelineRun:
        """Run the stages for `params`, serving the longest cached prefix; never raises for a
        failing stage (see `PipelineRun.error`), only for invalid params or KeyboardInterrupt."""
        run = PipelineRun(None, trial_cost=self.trial_cost)
        self._execute(params, run)
        return run

    def evaluate(self, params: Mapping[str, Any], system_attrs: dict[str, Any]) -> Any:
        """Run for a Study: the last stage's result, or StageError for a failing stage. The
        per-stage records go into `system_attrs` whatever happens, Ctrl-C included, so the cost
        of the stages that ran is kept."""
        start = time.perf_counter()
        run = PipelineRun(None, trial_cost=self.trial_cost)
        try:
            self._execute(params, run)
        finally:
            run.tuner_cost = self._tuner_cost(run, system_attrs, time.perf_counter() - start)
            system_attrs.update(run.system_attrs)
        if run.error is not None:
            raise run.error from run.error.original
        return run.result

    def _tuner_cost(self, run: PipelineRun, attrs: Mapping[str, Any], seconds: float) -> float:
        """The tuner's seconds to charge `run` (see `count_tuner_time`): the study's time before
        the run (its records in `attrs`) and the run's `seconds` not spent in a stage."""
        if not (self.count_tuner_time is True or (self.count_tuner_time and run.in_seconds)):
            return 0.0
        before = attrs.get(SystemAttr.TUNER_SECONDS, attrs.get(SystemAttr.ASK_SECONDS))
        if isinstance(before, bool) or not isinstance(before, (int, float)):
            before = 0.0
        before = float(before) if math.isfinite(before) and before > 0 else 0.0
        return before + max(seconds - sum(r.seconds for r in run.stages), 0.0)

    def _execute(self, params: Mapping[str, Any], run: PipelineRun) -> None:
        """Fill `run` in place as the stages go, so a caller interrupted midway keeps it."""
        self.space.validate(params)
        local = self._local(params)
        keys = self._keys(local)
        n = len(self.stages)
        records = run.stages
        value: Any = self.input
        prefix_seconds = prefix_cost = 0.0  # what computing `value` from scratch took
        cache = self.cache
        if cache is not None:
            for k in range(n - 1, 0, -1):  # k leading stages served from the cache
                if not cache.contains(keys[k - 1]):
                    continue
                ser = self.stages[k - 1].serializer
                got = cache.get(
                    keys[k - 1], ser if not isinstance(ser, (str, type(None))) else None
                )
                if got is None:  # unreadable: deleted, try a shorter prefix
                    continue
                run.cache_depth, value = k, got.value
                prefix_seconds = run.seconds_saved = got.prefix_seconds
                prefix_cost = run.cost_saved = got.prefix_cost
                for s in self.stages[: k - 1]:
                    records.append(StageRecord(s.name, 0.0, True, 0.0))
                # a stage that reports its own cost (GPU-seconds, a simulated clock) is charged
                # nothing for a hit: the load's wall seconds are not in its units
                hit_cost = 0.0 if got.own_cost else got.load_seconds
                run.in_seconds = not got.own_cost
                records.append(
                    StageRecord(self.stages[k - 1].name, hit_cost, True, got.load_seconds)
                )
                break
        for i in range(run.cache_depth, n):
            stage = self.stages[i]
            args = (value,) if (i > 0 or self._has_input) else ()
            start = time.perf_counter()
            try:
                out = stage.fn(*args, **local[i])
            except (KeyboardInterrupt, Exception) as exc:
                seconds = time.perf_counter() - start
                records.append(StageRecord(stage.name, seconds, False, seconds, failed=True))
                run.in_seconds = True
                if isinstance(exc, KeyboardInterrupt):  # `run` keeps what the stages cost
                    raise
                run.error = StageError(stage.name, exc)
                return
            seconds = time.perf_counter() - start
            cost, own_cost = seconds, False
            if isinstance(out, StageResult):
                own_cost = out.cost is not None
                cost = seconds if out.cost is None else float(out.cost)
                out = out.output
            records.append(StageRecord(stage.name, cost, False, seconds))
            run.in_seconds = run.in_seconds or not own_cost
            prefix_seconds += seconds
            prefix_cost += cost
            if cache is not None and i < n - 1:
                cache.record_miss()
                try:
                    cache.put(
                        keys[i],
                        out,
                        serializer=get_serializer(stage.serializer, out),
                        seconds=seconds,
                        cost=cost,
                        prefix_seconds=prefix_seconds,
                        prefix_cost=prefix_cost,
                        label=stage.name,
                        own_cost=own_cost,
                    )
                except Exception as exc:  # an unpicklable output, a full disk: run uncached
                    log.warning("could not cache the output of stage %r: %s", stage.name, exc)
            value = out
        run.result = value

    def __call__(self, params: Mapping[str, Any]) -> Any:
        """Run and return the last stage's result; a failing stage raises StageError."""
        result = self.run(params)
        if result.error is not None:
            raise result.error from result.error.original
        return result.result

    # What the study tells the optimizer ------------------------------------------------------
    def cached_prefixes(
        self,
        trials: Sequence[Trial],
        direction: str = "minimize",
        n_best: int = 20,
        n_recent: int = 20,
    ) -> list[CachedPrefix]:
        """Prefixes (depth k in 1..K-1, exact stored values) of the `n_best` best completed and
        the `n_recent` latest finished trials whose stage-k output is in the cache now."""
        n = len(self.stages)
        if self.cache is None or n < 2:
            return []
        best = Direction.parse(direction).best_first(trials)[:n_best]
        finished = [t for t in trials if t.state.finished and t.params]
        recent = sorted(finished, key=lambda t: t.number)[-n_recent:] if n_recent > 0 else []
        out: list[CachedPrefix] = []
        seen: set[str] = set()
        for t in [*best, *recent]:
            try:
                keys = self.keys(t.params)
            except (ValueError, TypeError, KeyError):  # params from another space
                continue
            for k in range(1, n):
                if keys[k - 1] in seen:
                    continue
                seen.add(keys[k - 1])
                if self.cache.contains(keys[k - 1]):
                    names = [s.full_name(p) for s in self.stages[:k] for p in s.params]
                    out.append(CachedPrefix(k, {m: t.params[m] for m in names if m in t.params}))
        return out

    def suggest_context(
        self, trials: Sequence[Trial], direction: str = "minimize", budget: float | None = None
    ) -> PipelineContext:
        """What a Study tells the optimizer on each ask (usable with `Study.ask(pipeline=...)`)."""
        return PipelineContext(
            stages=tuple(
                StageInfo(s.name, tuple(s.full_name(p) for p in s.params)) for s in self.stages
            ),
            budget_total=None if budget is None else float(budget),
            budget_spent=cost_spent(trials),
            cached_prefixes=tuple(self.cached_prefixes(trials, direction)),
            trial_cost=self.trial_cost,
        )
