"""Studies: ask / tell / optimize over a space, persisted in a storage and resumable by name."""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metatune._text import check_text
from metatune._trial_history import TrialHistory
from metatune.constraints import feasible_trials
from metatune.direction import Direction
from metatune.exceptions import (
    DuplicateStudyError,
    StudyNotFoundError,
    TrialAlreadyFinished,
    TrialPruned,
)
from metatune.objective import TrialObjective, as_trial_objective
from metatune.optimizers import Optimizer, SuggestContext, make_optimizer
from metatune.outcome import as_value as _as_value
from metatune.outcome import as_values as _as_values
from metatune.outcome import describe_error as _describe_error
from metatune.outcome import split_result as _split_result
from metatune.pareto import front_trials
from metatune.pipeline.context import PipelineContext
from metatune.pipeline.pipeline import cost_spent
from metatune.pruners import Pruner, make_pruner
from metatune.report.progress import StudyProgress
from metatune.reporting import StudyReporter, reporting
from metatune.space import Space
from metatune.storage import BaseStorage, get_storage
from metatune.trial import SystemAttr, Trial, TrialState, to_json_attrs

__all__ = ["Study", "load_study", "Objective", "Callback"]

log = logging.getLogger("metatune")

_monotonic = time.monotonic  # the sweep's clock (a test replaces it)
MAX_SEED = 2**63 - 1  # what every storage holds (a signed 64-bit integer)

Objective = Callable[[dict[str, Any]], Any]
Callback = Callable[["Study", Trial], None]


class _Heartbeat:
    """Background thread that tells the storage a trial's owner is alive while it runs."""

    def __init__(self, storage: BaseStorage, study_id: int, number: int, interval: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(storage, study_id, number, interval), daemon=True
        )

    def _run(self, storage: BaseStorage, study_id: int, number: int, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                storage.heartbeat(study_id, number)
            except Exception:  # a missed heartbeat must never kill the trial
                log.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Study:
    """An optimization of one objective over `space`, stored under `name` in `storage`.

    Opening a name that already exists in the storage resumes that study (its space must match).
    Without a space the study is define-by-run: its objective is ``objective(trial)`` calling
    ``trial.suggest_*``, and the space is learned from the trials. `direction` defaults to
    "minimize" and `optimizer` to "gp" for new studies, and to the stored values for resumed
    ones; `directions=[...]` makes a multi-objective study (default optimizer "mo-gp", result
    `best_trials`, the Pareto front). `pruner` (a name from `metatune.pruners.PRUNERS` or an
    instance; default `metatune.pruners.DEFAULT_PRUNER`) judges `should_prune` from the values
    trials `report`; it is this process's choice, not stored. With the default optimizer, once a
    trial is pruned, suggestions come from the multi-fidelity GP ("mf-gp"). `seed` makes every suggestion reproducible; without one a seed is
    drawn once and stored, so a resumed study continues the same sequence. `space` may also be
    an objective that carries its own space, such as a Pipeline (its `.space` is used).
    """

    def __init__(
        self,
        space: Space | Mapping[str, Any] | None = None,
        direction: str | None = None,
        optimizer: str | Optimizer | None = None,
        storage: str | BaseStorage | None = None,
        name: str | None = None,
        seed: int | None = None,
        optimizer_options: dict[str, Any] | None = None,
        heartbeat_interval: float = 10.0,
        stale_after: float = 120.0,
        *,
        directions: Iterable[str] | None = None,
        pruner: str | Pruner | None = None,
        pruner_options: dict[str, Any] | None = None,
    ) -> None:
        if space is not None and not isinstance(space, (Space, Mapping)):
            space = getattr(space, "space", space)  # e.g. a Pipeline: its own space
        if space is not None and not isinstance(space, Space):
            space = Space(space)
        if direction is not None:
            direction = Direction.parse(direction).value
        parsed_directions = _parse_directions(directions, direction)
        if parsed_directions is not None and len(parsed_directions) == 1:
            direction, parsed_directions = parsed_directions[0], None
        if parsed_directions is not None:
            direction = parsed_directions[0]
        self._pruner = make_pruner(pruner, pruner_options)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name is not None:
            check_text(name, "name")
        for label, v in (("heartbeat_interval", heartbeat_interval), ("stale_after", stale_after)):
            if not _positive_seconds(v):
                raise ValueError(f"{label} must be a positive number of seconds, got {v!r}")
        if isinstance(optimizer, Optimizer) or optimizer is None:
            opt_name = getattr(optimizer, "name", None)
        else:
            opt_name = optimizer
        self._pruned_optimizer: Optimizer | None = None  # see _optimizer_for
        # Build the optimizer first so a bad name or option fails before anything is stored.
        self._optimizer = (
            make_optimizer(optimizer, optimizer_options) if optimizer is not None else None
        )

        self._storage = get_storage(storage)
        self._heartbeat_interval = float(heartbeat_interval)
        record = self._storage.get_study(name) if name is not None else None
        if record is None:
            try:
                record = self._storage.create_study(
                    name=name or f"study-{uuid.uuid4().hex[:8]}",
                    direction=direction or "minimize",
                    space=space.to_dict() if space is not None else {},
                    optimizer=opt_name or ("mo-gp" if parsed_directions else "gp"),
                    optimizer_options=optimizer_options or {},
                    seed=int(seed) if seed is not None else secrets.randbelow(2**31),
                    directions=parsed_directions,
                )
            except DuplicateStudyError:  # another process created it first: resume it
                record = self._storage.get_study(name)  # type: ignore[arg-type]
                assert record is not None
        stored_space = Space.from_dict(record.space) if record.space else None
        if space is not None and space != stored_space:
            raise ValueError(
                f"study {record.name!r} exists with a different space: stored "
                f"{stored_space.to_dict()}, given {space.to_dict()}; use another name"
            )
        if direction is not None and direction != record.direction:
            raise ValueError(
                f"study {record.name!r} exists with direction {record.direction!r}, "
                f"given {direction!r}"
            )
        if parsed_directions is not None and parsed_directions != (record.directions or None):
            raise ValueError(
                f"study {record.name!r} exists with directions "
                f"{record.directions or [record.direction]}, given {parsed_directions}"
            )
        self._record = record
        self.space = stored_space
        if self._optimizer is None:
            self._optimizer = make_optimizer(record.optimizer, record.optimizer_options)
        if record.directions and not getattr(self._optimizer, "multi_objective", False):
            raise ValueError(
                f"optimizer {self._optimizer.name!r} optimizes one objective; study "
                f"{record.name!r} has {len(record.directions)} (directions="
                f"{record.directions}): use 'mo-gp', 'nsga2' or 'random'"
            )
        self._history = TrialHistory(self._storage, record.id)
        self._stale_after = float(stale_after)
        self._last_sweep = -math.inf
        self._sweep_stale()

    def _sweep_stale(self) -> None:
        """Fail running trials whose owner died or went silent: on opening, then at most once a
        heartbeat interval, so a killed worker's trial does not stay a pending point."""
        if not self._storage.supports_heartbeats:
            return
        now = _monotonic()
        if now - self._last_sweep < self._heartbeat_interval:
            return
        self._last_sweep = now
        failed = self._storage.fail_stale_trials(self._record.id, grace_seconds=self._stale_after)
        if failed:
            log.warning("marked stale running trials as failed: %s", failed)

    # Properties ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def direction(self) -> str:
        return self._record.direction

    @property
    def directions(self) -> list[str]:
        """Every objective's direction (one for a single-objective study)."""
        return list(self._record.directions or [self._record.direction])

    @property
    def is_multi_objective(self) -> bool:
        return bool(self._record.directions) and len(self._record.directions) > 1

    @property
    def is_define_by_run(self) -> bool:
        """True when the study declares no space: it learns one from `trial.suggest_*`."""
        return self.space is None

    @property
    def pruner(self) -> Pruner:
        return self._pruner

    @property
    def _direction(self) -> Direction:
        return Direction.parse(self._record.direction)

    @property
    def seed(self) -> int:
        return int(self._record.seed or 0)

    @property
    def optimizer(self) -> Optimizer:
        assert self._optimizer is not None
        return self._optimizer

    @property
    def storage(self) -> BaseStorage:
        return self._storage

    @property
    def trials(self) -> list[Trial]:
        """Every trial, ordered by number, as currently stored."""
        return self._storage.get_trials(self._record.id)

    def trials_dataframe(self) -> Any:
        """Every trial as a pandas DataFrame, one row per trial, with the columns of
        `metatune export` (number, state, value, values_<i> for several objectives, error,
        times, duration, last_step and last_intermediate of reporting trials, a pipeline's
        cost, cached depth and seconds saved, params.<name> (NaN where a conditional parameter
        is absent), user_attrs.<name>). Needs pandas (``pip install metatune[report]``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "trials_dataframe needs pandas: pip install 'metatune[report]'"
            ) from exc
        from metatune.report.export import trial_columns, trial_rows

        trials = self.trials
        frame = pd.DataFrame(trial_rows(trials), columns=trial_columns(trials))
        for column in ("started_at", "finished_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def completed_trials(self) -> list[Trial]:
        return self._storage.get_trials(self._record.id, [TrialState.COMPLETE])

    @property
    def cost_spent(self) -> float:
        """Total recorded cost (system_attrs["cost"], e.g. pipeline stage costs) of finished
        trials; a cost budget counts this, across resumes and workers."""
        return cost_spent(self.trials)

    @property
    def budget(self) -> float | None:
        """The cost budget of the latest `optimize(pipeline, budget=...)`, as recorded with its
        trials (so it survives restarts and is shared by workers); None if never given."""
        return _recorded_budget(self.trials)

    @property
    def budget_left(self) -> float | None:
        """`budget` minus `cost_spent` (never below 0); None without a recorded budget."""
        trials = self.trials
        budget = _recorded_budget(trials)
        return None if budget is None else max(budget - cost_spent(trials), 0.0)

    @property
    def best_trials(self) -> list[Trial]:
        """The completed trials no other completed trial dominates (the Pareto front), by
        number; for a single-objective study, the best trial (and those tied with it). With
        outcome constraints (mo-gp's `constraints`), only trials that meet them count, as in
        Optuna."""
        done = [t for t in self.completed_trials() if t.value is not None]
        constraints = self.optimizer.constraints
        if not self.is_multi_objective:
            done = feasible_trials(done, constraints)
            if not done:
                return []
            best = self._direction.loss(self.best.value)  # type: ignore[arg-type]
            return [t for t in done if self._direction.loss(t.value) == best]  # type: ignore[arg-type]
        return front_trials(done, self.directions, constraints)

    @property
    def best_trial(self) -> Trial:
        """The best completed trial (Optuna's name for `best`)."""
        return self.best

    @property
    def best(self) -> Trial:
        """The best completed trial (the earliest among ties); a pruned trial never is."""
        if self.is_multi_objective:
            raise ValueError(
                f"study {self.name!r} has {len(self.directions)} objectives: its result is "
                "the Pareto front, study.best_trials"
            )
        best = self._direction.best(self.completed_trials())
        if best is None:
            raise ValueError(f"study {self.name!r} has no completed trial yet")
        return best

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best.params

    @property
    def best_value(self) -> float:
        return float(self.best.value)  # type: ignore[arg-type]

    # Ask / tell ----------------------------------------------------------------------------
    def ask(
        self,
        n: int | None = None,
        *,
        extra: dict[str, Any] | None = None,
        pipeline: PipelineContext | None = None,
    ) -> Any:
        """Create the next trial: reserve its number, then let the optimizer choose its params.

        With `n`, create n trials at once and return them as a list: each is asked with the
        ones before it running, so the optimizer spreads them (its pending points) instead of
        proposing one point n times. `pipeline` tells the optimizer about a pipeline
        (``pipe.suggest_context(study.trials, study.direction, budget)``); `extra` is passed on
        as `SuggestContext.extra`.
        """
        if pipeline is not None and not isinstance(pipeline, PipelineContext):
            raise TypeError(f"pipeline must be a PipelineContext or None, got {pipeline!r}")
        if extra is not None and not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict or None, got {extra!r}")
        if n is None:
            return self._ask_one(extra, pipeline)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be a positive integer or None, got {n!r}")
        return [self._ask_one(extra, pipeline) for _ in range(int(n))]

    def _ask_one(self, extra: Mapping[str, Any] | None, pipeline: PipelineContext | None) -> Trial:
        self._sweep_stale()
        trial = self._storage.create_trial(self._record.id, {})
        try:
            self._history.refresh()
            history, running = self._history.split()
            pending = [t for t in running if t.number != trial.number and t.params]
            space = self.space
            if space is None:  # define-by-run: the space the trials asked for so far
                from metatune.define_by_run import learned_space, project

                space = learned_space(history)
                if space is not None:
                    history, pending = project(history, space), project(pending, space)
            if space is None:
                params: dict[str, Any] = {}  # nothing asked yet: the objective draws
            else:
                context = SuggestContext(
                    space=space,
                    direction=self.direction,
                    seed=self.seed,
                    trial_number=trial.number,
                    extra=dict(extra or {}),
                    pipeline=pipeline,
                    directions=self.directions if self.is_multi_objective else None,
                )
                params = self._optimizer_for(history).suggest(history, pending, context)
                space.validate(params)
            self._storage.set_trial_params(self._record.id, trial.number, params)
        except BaseException as exc:
            self._storage.finish_trial(
                self._record.id, trial.number, TrialState.FAILED, error=_describe_error(exc)
            )
            raise
        trial.params = dict(params)
        return trial

    def tell(
        self,
        trial: Trial | int,
        value: Any = None,
        *,
        error: BaseException | str | None = None,
        user_attrs: dict[str, Any] | None = None,
        system_attrs: dict[str, Any] | None = None,
        state: TrialState | str | None = None,
    ) -> Trial:
        """Record the outcome of a RUNNING trial: a finite value, or `error` to mark it failed.

        A value that is NaN, infinite or not a number marks the trial failed. `value` may also be
        a dict with key "objective" plus extra metrics, which are stored in `user_attrs`; for a
        multi-objective study it is a list with one number per direction. ``state="pruned"``
        ends a trial a pruner stopped (no value needed: its last report is kept as its value);
        ``state="failed"`` fails it. `system_attrs` is for metatune's own records (e.g.
        per-stage costs of a pipeline). Raises TrialAlreadyFinished if the trial is finished
        already (for example failed as stale by another process).
        """
        number = _trial_number(trial)
        told = None if state is None else TrialState(state)
        if told is TrialState.RUNNING:
            raise ValueError("state must be 'complete', 'pruned' or 'failed', got 'running'")
        attrs = dict(user_attrs or {})
        if told is TrialState.PRUNED:
            return self._finish(number, None, None, attrs, system_attrs, pruned=True)
        if told is TrialState.FAILED and error is None:
            error = "told failed"
        if error is None:
            value, metrics = _split_result(value)
            attrs.update(metrics)
        return self._finish(number, value, error, attrs, system_attrs)

    def _optimizer_for(self, history: list[Trial]) -> Optimizer:
        """The study's optimizer; for the default "gp", once a trial was pruned, the
        multi-fidelity GP, which learns from pruned trials' reports where the plain GP sees only
        the few completed trials."""
        opt = self.optimizer
        if (
            type(opt).__name__ != "GPOptimizer"
            or opt.name != "gp"
            or self._record.optimizer_options
        ):
            return opt
        if not any(t.state is TrialState.PRUNED for t in history):
            return opt
        if self._pruned_optimizer is None:
            self._pruned_optimizer = make_optimizer("mf-gp")
        return self._pruned_optimizer

    def report(self, trial: Trial | int, value: float, step: int) -> None:
        """Store an intermediate `value` at `step` (an epoch, a number of samples) for a
        RUNNING trial; pruners compare trials at equal steps. The first report at a step
        stands."""
        number = _trial_number(trial)
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        reported = _as_value(value)
        if reported is None or not math.isfinite(reported):
            raise ValueError(f"report needs a finite number as value, got {value!r}")
        self._storage.report_intermediate(self._record.id, number, int(step), reported)

    def should_prune(self, trial: Trial | int) -> bool:
        """Whether the study's pruner stops the RUNNING trial at its latest report."""
        number = _trial_number(trial)
        if self.is_multi_objective:
            raise ValueError("pruning needs one objective; this study has several directions")
        self._history.refresh()
        trials = self._history.trials()
        current = next((t for t in trials if t.number == number), None)
        if current is None or current.state.finished or not current.intermediate_values:
            return False
        return bool(self._pruner.prune(current, trials, self._direction))

    def _finish(
        self,
        number: int,
        value: Any,
        error: BaseException | str | None,
        user_attrs: dict[str, Any],
        system_attrs: dict[str, Any] | None,
        pruned: bool = False,
    ) -> Trial:
        """Store the outcome of trial `number`: `value` is the objective value alone (a
        result's metrics are already in `user_attrs`)."""
        system_attrs = dict(system_attrs or {})
        user_attrs = {**system_attrs.pop(SystemAttr.RUN_USER_ATTRS, {}), **user_attrs}
        suggested = system_attrs.get(SystemAttr.SUGGESTED)
        if self.space is None and isinstance(suggested, dict):  # define-by-run: what it used
            used = {name: entry["value"] for name, entry in suggested.items()}
            self._storage.set_trial_params(self._record.id, number, used)
        attrs, bad_metric = to_json_attrs(user_attrs)
        state, stored, values = TrialState.COMPLETE, None, None
        if pruned:
            state, stored = TrialState.PRUNED, self._last_report(number)
        elif error is not None:
            state = TrialState.FAILED
            error = error if isinstance(error, str) else _describe_error(error)
        elif bad_metric is not None:
            state, error = TrialState.FAILED, bad_metric
        elif self.is_multi_objective:
            values, error = _as_values(value, len(self.directions))
            if values is None:
                state = TrialState.FAILED
            else:
                stored = values[0]
        else:
            stored = _as_value(value)
            if stored is None:
                state, error = TrialState.FAILED, f"objective returned a non-number: {value!r}"
            elif not math.isfinite(stored):
                state, error, stored = TrialState.FAILED, f"objective returned {stored}", None
        return self._storage.finish_trial(
            self._record.id,
            number,
            state,
            value=stored,
            error=error,
            user_attrs=attrs,
            system_attrs=system_attrs,
            values=values,
        )

    def _last_report(self, number: int) -> float | None:
        """A pruned trial's value: its report at the latest step, if any."""
        found = self._storage.get_trials(self._record.id, first_number=number)
        reports = found[0].intermediate_values if found and found[0].number == number else {}
        return reports[max(reports)] if reports else None

    # Optimize ----------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        timeout: float | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool | None = None,
        budget: float | None = None,
        *,
        n_workers: int = 1,
        executor: str | Any = "process",
        executor_options: dict[str, Any] | None = None,
    ) -> None:
        """Run `objective(params)` on asked trials until `n_trials`, `timeout` seconds, or (for an
        objective that records costs, such as a Pipeline) until the cost spent by the study's
        finished trials reaches `budget`.

        The budget is recorded with every trial it governs (`study.budget`, `study.budget_left`),
        so `optimize(pipeline)` with no budget, n_trials or timeout resumes a budgeted study to
        the end of its recorded budget.

        An objective that raises or returns NaN/inf fails its trial, and the study goes on.
        Ctrl-C fails the running trial with "interrupted", keeps every finished one, and
        re-raises KeyboardInterrupt. With `n_workers` > 1 trials run concurrently on `executor`
        (a name from `metatune.executors.EXECUTORS`, "process" or "ray", or an instance), the
        driver asking with the running trials as pending points and telling each result as it
        arrives (a parallel `timeout` counts from when the first worker is ready; reports and
        `should_prune` work on workers). For a Pipeline, each ask tells the optimizer the stage
        structure, the budget and the cached prefixes (`SuggestContext.pipeline`), the cache
        serves the longest cached prefix, and each trial stores its per-stage costs and cache
        hits in system_attrs["stages"] and its total cost in system_attrs["cost"].
        """
        if not callable(objective) and not hasattr(objective, "evaluate"):
            raise TypeError(f"objective must be callable, got {objective!r}")
        target = as_trial_objective(objective, self.space, self.seed)
        if budget is not None:
            if (
                isinstance(budget, bool)
                or not isinstance(budget, (int, float))
                or not math.isfinite(budget)
                or budget <= 0
            ):
                raise ValueError(f"budget must be a positive number (total cost), got {budget!r}")
            if not target.records_cost:
                raise ValueError(
                    "budget (a total cost) needs a Pipeline objective, whose stages record costs; "
                    "use n_trials or timeout for a plain objective"
                )
        if (
            target.records_cost
            and budget is None
            and n_trials is None
            and timeout is None
            and self.budget is not None
        ):
            budget = self.budget  # resume to the recorded budget, as the study was started
            log.info("study %r: resuming with its recorded cost budget %g", self.name, budget)
        own_space = getattr(target, "space", None)
        if isinstance(own_space, Space) and self.space is not None and own_space != self.space:
            raise ValueError(
                f"the pipeline's space {own_space.to_dict()} differs from study "
                f"{self.name!r}'s space {self.space.to_dict()}"
            )
        if n_trials is not None and (
            isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1
        ):
            raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
        if timeout is not None and not _positive_seconds(timeout):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        callbacks = list(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"every callback must be callable, got {cb!r}")
        if (
            isinstance(n_workers, bool)
            or not isinstance(n_workers, numbers.Integral)
            or n_workers < 1
        ):
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        if show_progress is None:
            show_progress = sys.stderr.isatty()
        if n_workers == 1 and (executor != "process" or executor_options is not None):
            from metatune.executors import make_executor

            make_executor(executor, executor_options)  # a bad name or option fails now
            log.info(
                "study %r: n_workers=1 runs trials in this process; executor unused", self.name
            )
        if n_workers > 1:
            from metatune.executors import run_parallel

            run_parallel(
                self,
                target,
                n_trials=n_trials,
                timeout=timeout,
                budget=budget,
                callbacks=callbacks,
                show_progress=bool(show_progress),
                n_workers=int(n_workers),
                executor=executor,
                executor_options=executor_options,
            )
            return

        start = time.monotonic()
        progress = StudyProgress(
            self.name, self.direction, n_trials, timeout, enabled=bool(show_progress)
        )
        with progress:
            done = 0
            clock = _TunerClock()
            while n_trials is None or done < n_trials:
                if timeout is not None and time.monotonic() - start >= timeout:
                    break
                self._history.refresh()
                if budget is not None and self._history.cost_spent() >= budget:
                    log.info("study %r: cost budget %g spent", self.name, budget)
                    break
                context = target.suggest_context(self._history.trials(), self.direction, budget)
                finished = self._run_one(target, context, budget, clock)
                done += 1
                progress.update(finished)
                for cb in callbacks:
                    cb(self, finished)

    def _keepalive(self, trial: Trial) -> contextlib.AbstractContextManager[Any]:
        if not self._storage.supports_heartbeats:
            return contextlib.nullcontext()
        return _Heartbeat(self._storage, self._record.id, trial.number, self._heartbeat_interval)

    def _run_one(
        self,
        target: TrialObjective,
        context: PipelineContext | None,
        budget: float | None,
        clock: _TunerClock | None = None,
    ) -> Trial:
        """Ask, evaluate, tell. The objective's own records, the budget and the tuner's time
        go into the trial's system_attrs whatever the outcome."""
        trial, attrs = self._start_trial(context, budget, clock)
        try:
            with self._keepalive(trial), reporting(StudyReporter(self, trial.number)):
                try:
                    result = target.evaluate(dict(trial.params), attrs)
                finally:
                    if clock is not None:
                        clock.mark()  # the tuner's time of the next trial starts here
            value, metrics = _split_result(result)
        except TrialPruned:
            return self._finish_run(trial, attrs, pruned=True)
        except KeyboardInterrupt:
            self._tell_once(trial, error="interrupted by the user (KeyboardInterrupt)", attrs=attrs)
            raise
        except Exception as exc:  # the objective, a pipeline's stage or cache, a bad result
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            return self._tell_once(trial, error=exc, attrs=attrs)
        except BaseException as exc:  # SystemExit, GeneratorExit: stop, but not RUNNING forever
            self._tell_once(trial, error=f"interrupted by {exc!r}", attrs=attrs)
            raise
        return self._finish_run(trial, attrs, value, metrics)

    def _start_trial(
        self,
        context: PipelineContext | None,
        budget: float | None,
        clock: _TunerClock | None = None,
    ) -> tuple[Trial, dict[str, Any]]:
        """Ask a trial for `optimize`; returns it with the system_attrs its run starts from
        (the tuner's time, the budget). Executors call this on the driver."""
        start = time.perf_counter()
        trial = self.ask(pipeline=context)
        attrs: dict[str, Any] = {SystemAttr.ASK_SECONDS: time.perf_counter() - start}
        if clock is not None:
            attrs[SystemAttr.TUNER_SECONDS] = clock.elapsed()
        if budget is not None:
            attrs[SystemAttr.BUDGET] = budget
        return trial, attrs

    def _finish_run(
        self,
        trial: Trial,
        attrs: dict[str, Any],
        value: Any = None,
        metrics: dict[str, Any] | None = None,
        error: BaseException | str | None = None,
        pruned: bool = False,
    ) -> Trial:
        """Tell the outcome of a trial `optimize` ran: `value` and `metrics` split from the
        objective's result (see `_split_result`), `error`, or `pruned` (it raised
        TrialPruned). Executors call this on the driver."""
        if pruned:
            try:
                return self._finish(trial.number, None, None, {}, attrs, pruned=True)
            except TrialAlreadyFinished:
                return self._storage.get_trials(self._record.id)[trial.number]
        if error is not None:
            log.warning("trial %d failed: %s", trial.number, str(error).splitlines()[0])
            return self._tell_once(trial, error=error, attrs=attrs)
        finished = self._tell_once(trial, value, metrics=metrics, attrs=attrs)
        if finished.state is TrialState.FAILED:
            log.warning("trial %d failed: %s", trial.number, finished.error)
        return finished

    def _tell_once(
        self,
        trial: Trial,
        value: Any = None,
        *,
        error: BaseException | str | None = None,
        metrics: dict[str, Any] | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> Trial:
        """Finish the trial, but if another process already failed it as stale, keep its
        verdict."""
        try:
            return self._finish(trial.number, value, error, dict(metrics or {}), attrs)
        except TrialAlreadyFinished as exc:
            stored = self._storage.get_trials(self._record.id)[trial.number]
            log.warning(
                "trial %d was already marked %s by another process (%s); its result is dropped",
                trial.number,
                exc.state,
                (stored.error or "").splitlines()[0] if stored.error else "",
            )
            return stored

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, direction={self.direction!r}, optimizer={self.optimizer.name!r})"


class _TunerClock:
    """The study's own seconds between evaluations: the previous trial's tell and callbacks,
    the budget check, the pipeline's context and the next ask. A pipeline whose costs are wall
    seconds charges them to the trial, so a budget in seconds bounds the wall time."""

    def __init__(self) -> None:
        self._mark = time.perf_counter()

    def mark(self) -> None:
        self._mark = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._mark


def _trial_number(trial: Trial | int) -> int:
    number = trial.number if isinstance(trial, Trial) else trial
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"trial must be a Trial or a trial number, got {trial!r}")
    if number < 0:
        raise ValueError(f"trial number must be >= 0, got {number!r}")
    return int(number)


def _parse_directions(directions: Iterable[str] | None, direction: str | None) -> list[str] | None:
    if directions is None:
        return None
    if isinstance(directions, str):
        raise TypeError(
            f"directions must be a list like ['minimize', 'maximize'], got {directions!r}"
        )
    parsed = [Direction.parse(d, "every entry of directions").value for d in directions]
    if not parsed:
        raise ValueError("directions needs at least one entry, got []")
    if direction is not None:
        raise ValueError("give direction (one objective) or directions (several), not both")
    return parsed


def _positive_seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def _recorded_budget(trials: list[Trial]) -> float | None:
    for t in reversed(trials):
        if t.system_attrs.get(SystemAttr.BUDGET) is not None:
            return float(t.system_attrs[SystemAttr.BUDGET])
    return None


def load_study(
    name: str, storage: str | BaseStorage, optimizer: str | Optimizer | None = None
) -> Study:
    """Open an existing study by name; its space, direction and optimizer come from storage."""
    if storage is None:
        raise ValueError("load_study needs a storage (a URL like 'sqlite:///study.db')")
    store = get_storage(storage)
    if store.get_study(name) is None:
        known = [s.name for s in store.list_studies()]
        raise StudyNotFoundError(f"no study named {name!r} in this storage; studies: {known}")
    return Study(name=name, storage=store, optimizer=optimizer)
