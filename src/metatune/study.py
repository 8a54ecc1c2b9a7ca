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
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metatune._text import check_text
from metatune._trial_history import TrialHistory
from metatune.direction import Direction
from metatune.exceptions import DuplicateStudyError, StudyNotFoundError, TrialAlreadyFinished
from metatune.objective import TrialObjective, as_trial_objective
from metatune.optimizers import Optimizer, SuggestContext, make_optimizer
from metatune.pipeline.context import PipelineContext
from metatune.pipeline.pipeline import cost_spent
from metatune.report.progress import StudyProgress
from metatune.space import Space
from metatune.storage import BaseStorage, get_storage
from metatune.trial import SystemAttr, Trial, TrialState, to_json_attrs

__all__ = ["Study", "load_study", "Objective", "Callback"]

log = logging.getLogger("metatune")

_monotonic = time.monotonic  # the sweep's clock (a test replaces it)
MAX_SEED = 2**63 - 1  # what every storage holds (a signed 64-bit integer)
_BOOL_DTYPES = ("bool", "torch.bool")

Objective = Callable[[dict[str, Any]], Any]
Callback = Callable[["Study", Trial], None]


def _describe_error(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
    return f"{type(exc).__name__}: {exc}\n{tb}".strip()


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
    `direction` defaults to "minimize" and `optimizer` to "gp" for new studies, and to the stored
    values for resumed ones. `seed` makes every suggestion reproducible; without one a seed is
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
    ) -> None:
        if space is not None and not isinstance(space, (Space, Mapping)):
            space = getattr(space, "space", space)  # e.g. a Pipeline: its own space
        if space is not None and not isinstance(space, Space):
            space = Space(space)
        if direction is not None:
            direction = Direction.parse(direction).value
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
        # Build the optimizer first so a bad name or option fails before anything is stored.
        self._optimizer = (
            make_optimizer(optimizer, optimizer_options) if optimizer is not None else None
        )

        self._storage = get_storage(storage)
        self._heartbeat_interval = float(heartbeat_interval)
        record = self._storage.get_study(name) if name is not None else None
        if record is None:
            if space is None:
                where = "in this storage" if name else "(no name given)"
                raise StudyNotFoundError(
                    f"study {name!r} not found {where}; pass a space to create it"
                )
            try:
                record = self._storage.create_study(
                    name=name or f"study-{uuid.uuid4().hex[:8]}",
                    direction=direction or "minimize",
                    space=space.to_dict(),
                    optimizer=opt_name or "gp",
                    optimizer_options=optimizer_options or {},
                    seed=int(seed) if seed is not None else secrets.randbelow(2**31),
                )
            except DuplicateStudyError:  # another process created it first: resume it
                record = self._storage.get_study(name)  # type: ignore[arg-type]
                assert record is not None
        stored_space = Space.from_dict(record.space)
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
        self._record = record
        self.space = stored_space
        if self._optimizer is None:
            self._optimizer = make_optimizer(record.optimizer, record.optimizer_options)
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
        `metatune export` (number, state, value, error, times, duration, a pipeline's cost,
        cached depth and seconds saved, params.<name>, user_attrs.<name>). Needs pandas
        (``pip install metatune[report]``)."""
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
    def best(self) -> Trial:
        """The best completed trial (the earliest among ties)."""
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
        self, extra: dict[str, Any] | None = None, *, pipeline: PipelineContext | None = None
    ) -> Trial:
        """Create the next trial: reserve its number, then let the optimizer choose its params.

        `pipeline` tells the optimizer about a pipeline (``pipe.suggest_context(study.trials,
        study.direction, budget)``); `extra` is passed on as `SuggestContext.extra`.
        """
        if pipeline is not None and not isinstance(pipeline, PipelineContext):
            raise TypeError(f"pipeline must be a PipelineContext or None, got {pipeline!r}")
        self._sweep_stale()
        trial = self._storage.create_trial(self._record.id, {})
        try:
            self._history.refresh()
            history, running = self._history.split()
            pending = [t for t in running if t.number != trial.number and t.params]
            context = SuggestContext(
                space=self.space,
                direction=self.direction,
                seed=self.seed,
                trial_number=trial.number,
                extra=dict(extra or {}),
                pipeline=pipeline,
            )
            params = self.optimizer.suggest(history, pending, context)
            self.space.validate(params)
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
    ) -> Trial:
        """Record the outcome of a RUNNING trial: a finite value, or `error` to mark it failed.

        A value that is NaN, infinite or not a number marks the trial failed. `value` may also be
        a dict with key "objective" plus extra metrics, which are stored in `user_attrs`.
        `system_attrs` is for metatune's own records (e.g. per-stage costs of a pipeline).
        Raises TrialAlreadyFinished if the trial is finished already (for example failed as
        stale by another process).
        """
        number = trial.number if isinstance(trial, Trial) else trial
        if isinstance(number, bool) or not isinstance(number, numbers.Integral):
            raise TypeError(f"trial must be a Trial or a trial number, got {trial!r}")
        if number < 0:
            raise ValueError(f"trial number must be >= 0, got {number!r}")
        attrs = dict(user_attrs or {})
        if error is None:
            value, metrics = _split_result(value)
            attrs.update(metrics)
        return self._finish(int(number), value, error, attrs, system_attrs)

    def _finish(
        self,
        number: int,
        value: Any,
        error: BaseException | str | None,
        user_attrs: dict[str, Any],
        system_attrs: dict[str, Any] | None,
    ) -> Trial:
        """Store the outcome of trial `number`: `value` is the objective value alone (a
        result's metrics are already in `user_attrs`)."""
        attrs, bad_metric = to_json_attrs(user_attrs)
        state, stored = TrialState.COMPLETE, None
        if error is not None:
            state = TrialState.FAILED
            error = error if isinstance(error, str) else _describe_error(error)
        elif bad_metric is not None:
            state, error = TrialState.FAILED, bad_metric
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
        )

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
        arrives. For a Pipeline, each ask tells the optimizer the stage
        structure, the budget and the cached prefixes (`SuggestContext.pipeline`), the cache
        serves the longest cached prefix, and each trial stores its per-stage costs and cache
        hits in system_attrs["stages"] and its total cost in system_attrs["cost"].
        """
        if not callable(objective) and not hasattr(objective, "evaluate"):
            raise TypeError(f"objective must be callable, got {objective!r}")
        target = as_trial_objective(objective)
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
        if isinstance(own_space, Space) and own_space != self.space:
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
            while n_trials is None or done < n_trials:
                if timeout is not None and time.monotonic() - start >= timeout:
                    break
                self._history.refresh()
                if budget is not None and self._history.cost_spent() >= budget:
                    log.info("study %r: cost budget %g spent", self.name, budget)
                    break
                context = target.suggest_context(self._history.trials(), self.direction, budget)
                finished = self._run_one(target, context, budget)
                done += 1
                progress.update(finished)
                for cb in callbacks:
                    cb(self, finished)

    def _keepalive(self, trial: Trial) -> contextlib.AbstractContextManager[Any]:
        if not self._storage.supports_heartbeats:
            return contextlib.nullcontext()
        return _Heartbeat(self._storage, self._record.id, trial.number, self._heartbeat_interval)

    def _run_one(
        self, target: TrialObjective, context: PipelineContext | None, budget: float | None
    ) -> Trial:
        """Ask, evaluate, tell. The objective's own records, the budget and the tuner's time
        go into the trial's system_attrs whatever the outcome."""
        trial, attrs = self._start_trial(context, budget)
        try:
            with self._keepalive(trial):
                result = target.evaluate(dict(trial.params), attrs)
            value, metrics = _split_result(result)
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
        self, context: PipelineContext | None, budget: float | None
    ) -> tuple[Trial, dict[str, Any]]:
        """Ask a trial for `optimize`; returns it with the system_attrs its run starts from
        (the tuner's time, the budget). Executors call this on the driver."""
        start = time.perf_counter()
        trial = self.ask(pipeline=context)
        attrs: dict[str, Any] = {SystemAttr.ASK_SECONDS: time.perf_counter() - start}
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
    ) -> Trial:
        """Tell the outcome of a trial `optimize` ran: `value` and `metrics` split from the
        objective's result (see `_split_result`), or `error`. Executors call this on the
        driver."""
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


def _as_value(value: Any) -> float | None:
    """`value` as a float if it is a real number (a NumPy or 0-d tensor one too); None for text,
    booleans and anything else, which would otherwise pass `float()`."""
    if isinstance(value, (str, bytes, bool)) or str(getattr(value, "dtype", "")) in _BOOL_DTYPES:
        return None  # text, and booleans (NumPy's and 1-element tensors' too)
    if not isinstance(value, numbers.Real) and not hasattr(value, "__float__"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor with many elements
        return None


def _positive_seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def _split_result(result: Any) -> tuple[Any, dict[str, Any]]:
    """(objective value, extra metrics) of a number or a dict with "objective"."""
    if isinstance(result, Mapping):
        if "objective" not in result:
            raise ValueError(f"a dict result needs an 'objective' key, got keys {sorted(result)}")
        return result["objective"], {k: v for k, v in result.items() if k != "objective"}
    if result is None:
        raise ValueError("tell needs a value, or error=... to mark the trial failed")
    return result, {}


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
