"""`run_parallel`: one study, N trials in flight, each told as it finishes.

The driver does every ask and tell (and so every storage write); workers only evaluate. The
optimizer sees the running trials as pending points, so N asks give N different points. The
sequential `optimize` semantics hold: n_trials, timeout and a cost budget stop the asking (trials
in flight run to the end), callbacks and the progress bar see every finished trial, an objective
that raises fails its trial only, and Ctrl-C fails the running trials as interrupted and
re-raises, keeping every finished one. An objective on a worker may call
`metatune.report_intermediate` and `should_prune`: the reports travel to the driver
(`relay.ReportRelay`), which stores them and asks the study's pruner; a trial that raises
TrialPruned is told pruned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from metatune.executors.base import DrivenStudy, Executor, Outcome
from metatune.executors.relay import ReportRelay
from metatune.objective import TrialObjective
from metatune.report.progress import StudyProgress
from metatune.trial import Trial

__all__ = ["run_parallel"]

log = logging.getLogger("metatune")

_POLL_SECONDS = 1.0  # longest wait between looks at the clock while every worker is busy
_INTERRUPTED = "interrupted by the user (KeyboardInterrupt)"


class _Keepalive:
    """One thread on the driver that heartbeats every trial in flight, so that no other
    process fails them as stale while their workers run."""

    def __init__(self, study: DrivenStudy) -> None:
        self._storage = study._storage
        self._study_id = study._record.id
        self._interval = study._heartbeat_interval
        self._numbers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, number: int) -> None:
        with self._lock:
            self._numbers.add(number)

    def discard(self, number: int) -> None:
        with self._lock:
            self._numbers.discard(number)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                numbers = sorted(self._numbers)
            for n in numbers:
                try:
                    self._storage.heartbeat(self._study_id, n)
                except Exception:  # a missed heartbeat must never stop the study
                    log.debug("heartbeat of trial %d failed", n, exc_info=True)

    def __enter__(self) -> _Keepalive:
        if self._storage.supports_heartbeats:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def make_executor(executor: str | Executor, options: Mapping[str, Any] | None) -> Executor:
    """An executor from a registered name and its options, or the instance given."""
    from metatune.executors.registry import EXECUTORS

    if isinstance(executor, Executor):
        if options:
            raise ValueError(
                "executor_options configure an executor given by name; pass them to the "
                f"constructor of {type(executor).__name__} instead"
            )
        return executor
    if not isinstance(executor, str):
        raise TypeError(
            f"executor must be a name ({', '.join(EXECUTORS.names())}) or an Executor, "
            f"got {executor!r}"
        )
    cls = EXECUTORS.get(executor)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"executor_options must be a dict or None, got {options!r}")
    try:
        return cls(**dict(options or {}))
    except TypeError as exc:
        raise TypeError(f"executor_options for executor {executor!r}: {exc}") from exc


def run_parallel(
    study: DrivenStudy,
    target: TrialObjective,
    *,
    n_trials: int | None,
    timeout: float | None,
    budget: float | None,
    callbacks: Iterable[Callable[[DrivenStudy, Trial], None]],
    show_progress: bool,
    n_workers: int,
    executor: str | Executor = "process",
    executor_options: Mapping[str, Any] | None = None,
) -> None:
    """Optimize `study` with `n_workers` trials at a time on `executor` (see `Study.optimize`).

    The executor is built and the objective loaded on a worker before any trial is created, so
    a bad executor name or option, or an objective that cannot travel, fails first.
    """
    from metatune.outcome import describe_error as _describe_error
    from metatune.outcome import split_result as _split_result

    callbacks = list(callbacks)
    ex = make_executor(executor, executor_options)
    try:
        ex.start(target, n_workers)
    except BaseException:  # refused, or Ctrl-C while the first worker starts
        ex.close()
        raise
    start = time.monotonic()  # `timeout` counts from when the first worker is ready
    in_flight: dict[Hashable, tuple[Trial, dict[str, Any]]] = {}
    starting: tuple[Trial, dict[str, Any]] | None = None  # asked, not yet handed to a worker
    asked = 0
    progress = StudyProgress(study.name, study.direction, n_trials, timeout, enabled=show_progress)

    def may_ask() -> bool:
        if n_trials is not None and asked >= n_trials:
            return False
        if timeout is not None and time.monotonic() - start >= timeout:
            return False
        if budget is not None:
            study._history.refresh()
            if study._history.cost_spent() >= budget:
                log.info("study %r: cost budget %g spent", study.name, budget)
                return False
        return True

    def finish(trial: Trial, attrs: dict[str, Any], outcome: Outcome) -> Trial:
        attrs = {**attrs, **outcome.system_attrs}
        if outcome.pruned:
            return study._finish_run(trial, attrs, pruned=True)
        if outcome.error is not None:
            return study._finish_run(trial, attrs, error=outcome.error)
        try:
            value, metrics = _split_result(outcome.result)
        except Exception as exc:  # a dict without "objective", None
            return study._finish_run(trial, attrs, error=_describe_error(exc))
        return study._finish_run(trial, attrs, value, metrics)

    keepalive = _Keepalive(study)
    lock = threading.Lock()  # the study is used by this loop and by the report relay
    relay = ReportRelay(study, lock, getattr(ex, "report_host", "127.0.0.1"))
    try:
        with progress, keepalive, relay:
            stop_asking = False
            while True:
                while not stop_asking and len(in_flight) < n_workers:
                    with lock:
                        if not may_ask():
                            stop_asking = True
                            break
                        study._history.refresh()
                        context = target.suggest_context(
                            study._history.trials(), study.direction, budget
                        )
                        starting = study._start_trial(context, budget)
                    trial, attrs = starting
                    keepalive.add(trial.number)
                    asked += 1
                    ticket = ex.submit(dict(trial.params), attrs, relay.reporter(trial.number))
                    in_flight[ticket] = starting
                    starting = None
                if not in_flight:
                    break
                wait_for = _POLL_SECONDS
                if timeout is not None and not stop_asking:
                    wait_for = max(min(wait_for, start + timeout - time.monotonic()), 0.0)
                for ticket, outcome in ex.wait(wait_for):
                    trial, attrs = in_flight.pop(ticket)
                    with lock:
                        finished = finish(trial, attrs, outcome)
                    keepalive.discard(trial.number)
                    progress.update(finished)
                    for cb in callbacks:
                        cb(study, finished)
    except BaseException as exc:
        # Ctrl-C, a callback or the optimizer raising: stop the workers, fail what they ran.
        ex.cancel()
        reason = (
            _INTERRUPTED
            if isinstance(exc, KeyboardInterrupt)
            else f"interrupted: the driver stopped ({type(exc).__name__}: {exc})"
        )
        running = list(in_flight.values()) + ([starting] if starting is not None else [])
        with lock:  # a report still being served holds it for a moment
            for trial, attrs in running:
                try:
                    study._tell_once(trial, error=reason, attrs=attrs)
                except Exception:  # the storage itself may be what failed
                    log.exception("could not mark trial %d failed", trial.number)
        raise
    finally:
        ex.close()
