"""What runs on a worker: evaluate one trial and package the outcome for the driver.

Kept free of storage and of the Study, so every executor (processes, Ray) runs the same code;
reports go through the reporter the driver sent with the trial (`relay.RelayReporter`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
from typing import Any

from metatune.executors.base import Outcome

__all__ = ["evaluate", "init_process", "probe_process", "run_in_process"]


def _describe(exc: BaseException) -> str:
    from metatune.outcome import describe_error as _describe_error  # as the study stores it

    return _describe_error(exc)


class _NoReporter:
    """The current trial's reporter when the executor brought none (a custom executor): a
    report fails clearly instead of being lost."""

    def _refuse(self) -> None:
        raise RuntimeError(
            "metatune.report_intermediate / should_prune (and trial.report) need a reporter "
            "on this worker, and its executor passed none: pass submit(..., reporter=...) "
            "from the driver's ReportRelay (metatune.executors.relay)"
        )

    def report(self, value: float, step: int) -> None:
        self._refuse()

    def should_prune(self) -> bool:
        self._refuse()
        return False


def evaluate(
    target: Any, params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any = None
) -> Outcome:
    """Run `target.evaluate`; an exception becomes the outcome's error (TrialPruned: `pruned`),
    and what the objective wrote into `system_attrs` before it (a pipeline's per-stage records,
    a define-by-run trial's suggestions) comes back either way. A result that is a number is
    sent back as a plain float (a tensor need not travel)."""
    from metatune.exceptions import TrialPruned
    from metatune.reporting import reporting

    attrs = dict(system_attrs)
    try:
        with reporting(reporter if reporter is not None else _NoReporter()):
            result = target.evaluate(dict(params), attrs)
    except TrialPruned:
        return Outcome(pruned=True, system_attrs=attrs)
    except Exception as exc:
        return Outcome(error=_describe(exc), system_attrs=attrs)
    return Outcome(result=_plain(result), system_attrs=attrs)


def _plain(result: Any) -> Any:
    if isinstance(result, dict):
        return {k: _plain(v) for k, v in result.items()}
    if hasattr(result, "item") and getattr(result, "ndim", None) == 0:
        try:
            return result.item()
        except Exception:  # not a scalar after all: let the driver judge it
            return result
    return result


# -- a process of the process pool --------------------------------------------------------------
# The objective is unpickled once per process (by `init_process`), not once per trial.
_state: dict[str, Any] = {}


def init_process(payload: bytes) -> None:
    """Pool initializer: keep the pickled objective; Ctrl-C is the driver's to handle (it
    cancels this process), so a terminal's SIGINT does not also raise here; and end this
    process when the driver dies (a pool's process holds both ends of its task queue, so it
    would otherwise wait for tasks forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _state.clear()
    _state["payload"] = payload
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # readable once the driver has exited
    os._exit(1)


def _target() -> Any:
    if "target" not in _state:
        _state["target"] = pickle.loads(_state["payload"])  # sent by our own driver
    return _state["target"]


def probe_process() -> tuple[int, str | None]:
    """(this process's pid, None) once the objective loads here, else the reason it does not."""
    try:
        _target()
    except Exception as exc:
        return os.getpid(), _describe(exc)
    return os.getpid(), None


def run_in_process(
    params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any = None
) -> Outcome:
    try:
        target = _target()
    except Exception as exc:
        return Outcome(
            error=f"the objective could not be loaded in the worker: {_describe(exc)}",
            system_attrs=dict(system_attrs),
        )
    return evaluate(target, params, system_attrs, reporter)
