"""Trials on local worker processes: the standard library's process pool, one pool per worker.

Each worker is a single-process `ProcessPoolExecutor`, so a worker that dies (SIGKILL, the OOM
killer, `os._exit`) breaks only its own pool: its trial fails with the reason, the pool is
rebuilt, and the other workers' trials run on. Processes are started with "spawn" (or
"forkserver"), never "fork": a forked copy of a process that has started torch's or BLAS's
threads can deadlock.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import pickle
import signal
from collections.abc import Hashable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from metatune.executors import _worker
from metatune.executors.base import Executor, Outcome, describe_objective
from metatune.objective import TrialObjective

__all__ = ["ProcessExecutor"]

_CONTEXTS = ("spawn", "forkserver")


class _Slot:
    """One worker: a single-process pool and the trial it runs now."""

    def __init__(self, executor: ProcessExecutor) -> None:
        self._executor = executor
        self.pool: cf.ProcessPoolExecutor | None = None
        self.future: cf.Future[Any] | None = None
        self.ticket: int | None = None
        self.attrs: dict[str, Any] = {}
        self.process: multiprocessing.process.BaseProcess | None = None  # the one running now

    def ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self.pool is None:
            self.pool = self._executor._new_pool()
        return self.pool

    def drop_pool(self, kill: bool) -> None:
        """Shut this worker's pool down; with `kill`, end its process first (cancel)."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        procs = self.processes_of(pool)
        if kill:
            for p in procs:
                if p.is_alive():
                    p.kill()
        pool.shutdown(wait=kill, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)

    @staticmethod
    def processes_of(pool: cf.ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
        procs = getattr(pool, "_processes", None) or {}
        return list(procs.values())


class ProcessExecutor(Executor):
    """Local worker processes (the embedded default of ``optimize(n_workers=N)``).

    Args:
        context: how workers start: "spawn" (default) or "forkserver".
        max_tasks_per_child: replace a worker after this many trials (a leaky objective);
            None keeps each worker for the whole run.

    The objective is pickled once and sent to each worker when it starts, so it must be
    importable there: a function at the top level of a module (or of a script guarded by
    ``if __name__ == "__main__":``), not a lambda or a local function.
    """

    name = "process"

    def __init__(self, context: str = "spawn", max_tasks_per_child: int | None = None) -> None:
        if context not in _CONTEXTS:
            raise ValueError(
                f"executor_options['context'] must be one of {_CONTEXTS} (fork is unsafe once "
                f"torch or BLAS threads have started), got {context!r}"
            )
        if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool)
            or not isinstance(max_tasks_per_child, int)
            or max_tasks_per_child < 1
        ):
            raise ValueError(
                "executor_options['max_tasks_per_child'] must be a positive integer or None, "
                f"got {max_tasks_per_child!r}"
            )
        self.context = context
        self.max_tasks_per_child = max_tasks_per_child
        self._payload: bytes | None = None
        self._slots: list[_Slot] = []
        self._tickets = itertools.count()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        assert self._payload is not None, "start() first"
        kwargs: dict[str, Any] = {}
        if self.max_tasks_per_child is not None:
            kwargs["max_tasks_per_child"] = self.max_tasks_per_child
        return cf.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(self.context),
            initializer=_worker.init_process,
            initargs=(self._payload,),
            **kwargs,
        )

    # -- Executor ------------------------------------------------------------------------------
    def start(self, target: TrialObjective, n_workers: int) -> None:
        name = describe_objective(target)
        try:
            self._payload = pickle.dumps(target)
        except Exception as exc:
            raise TypeError(
                f"objective {name!r} cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); define it at the top level of a module (not a "
                "lambda, a local function or a closure), or use executor='ray', which sends "
                "functions by value"
            ) from exc
        self._slots = [_Slot(self) for _ in range(n_workers)]
        # Load the objective in one worker now, before any trial exists: an objective that
        # pickles but cannot be imported there (defined in `python -c`, a notebook) is refused.
        try:
            _, error = self._slots[0].ensure_pool().submit(_worker.probe_process).result()
        except BrokenProcessPool as exc:
            self.close()
            raise RuntimeError(
                f"the first worker process died while loading objective {name!r}: {exc}; "
                "a script that calls optimize(n_workers=...) needs an "
                "`if __name__ == '__main__':` guard (each worker imports it)"
            ) from exc
        if error is not None:
            self.close()
            raise TypeError(
                f"objective {name!r} cannot be loaded in a worker process: {error}\n"
                "define it in a module the workers can import (a script needs an "
                "`if __name__ == '__main__':` guard)"
            )

    def submit(
        self, params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any = None
    ) -> Hashable:
        slot = next((s for s in self._slots if s.future is None), None)
        if slot is None:
            raise RuntimeError("every worker is busy; wait for a trial to finish first")
        ticket = next(self._tickets)
        slot.attrs = dict(system_attrs)
        slot.ticket = ticket
        try:
            slot.future = slot.ensure_pool().submit(
                _worker.run_in_process, params, slot.attrs, reporter
            )
        except BrokenProcessPool:  # died while idle: start a fresh one and try once more
            slot.drop_pool(kill=True)
            slot.future = slot.ensure_pool().submit(
                _worker.run_in_process, params, slot.attrs, reporter
            )
        # the pool starts its process on submit; remember it to say how it died, if it does
        procs = _Slot.processes_of(slot.pool)  # type: ignore[arg-type]
        slot.process = procs[0] if len(procs) == 1 else None
        return ticket

    def wait(self, timeout: float | None) -> list[tuple[Hashable, Outcome]]:
        busy = {s.future: s for s in self._slots if s.future is not None}
        if not busy:
            return []
        done, _ = cf.wait(list(busy), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Hashable, Outcome]] = []
        for future in done:
            slot = busy[future]
            out.append((slot.ticket, self._outcome(slot, future)))  # type: ignore[arg-type]
            slot.future, slot.ticket = None, None
        return out

    def _outcome(self, slot: _Slot, future: cf.Future[Any]) -> Outcome:
        try:
            return future.result()
        except BrokenProcessPool:
            reason = _death_reason(slot)
            slot.drop_pool(kill=True)  # rebuilt on the next submit
            return Outcome(error=f"{reason} while running this trial", system_attrs=slot.attrs)
        except Exception as exc:  # e.g. a result that could not be pickled back
            return Outcome(error=_worker._describe(exc), system_attrs=slot.attrs)

    def cancel(self) -> None:
        for slot in self._slots:
            if slot.future is not None:
                slot.drop_pool(kill=True)
                slot.future, slot.ticket = None, None

    def close(self) -> None:
        for slot in self._slots:
            slot.drop_pool(kill=slot.future is not None)
            slot.future, slot.ticket = None, None


def _death_reason(slot: _Slot) -> str:
    p = slot.process
    if p is None:
        return "its worker process died"
    p.join(timeout=2)
    code = p.exitcode  # None when the pool's own thread reaped it first
    if code is None:
        return f"worker process {p.pid} died"
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit code {code}"
    return f"worker process {p.pid} died ({how})"
