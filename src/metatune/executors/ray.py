"""Trials as Ray tasks: on a local Ray started on demand, or on a cluster.

Without an address, `ray.init()` joins the cluster named by RAY_ADDRESS (or one started with
`ray start` on this machine) and otherwise starts a local one in this process. Each trial is
one task with the resources asked for; results are taken with `ray.wait` as they finish. Tasks
are not retried: a worker or node that dies fails its trial with Ray's reason, and the next
trial runs on a fresh worker.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
from collections.abc import Hashable, Mapping
from typing import Any

from metatune.executors import _worker
from metatune.executors.base import Executor, Outcome, describe_objective
from metatune.objective import TrialObjective

__all__ = ["RayExecutor"]

_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("executor='ray' needs Ray: pip install 'metatune[ray]'") from exc
    return ray


def _run(
    target: Any, params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any
) -> Outcome:
    """The task: Ray has already fetched `target` from its object store."""
    return _worker.evaluate(target, params, system_attrs, reporter)


def _probe(target: Any) -> None:
    """A task that only receives the objective: it fails if the objective does not load."""
    return None


class RayExecutor(Executor):
    """Trials as Ray tasks.

    Args:
        address: the cluster to join ("auto", "ray://host:10001", "host:6379"); None:
            RAY_ADDRESS, else a local cluster started here.
        resources: per trial, e.g. ``{"num_cpus": 4, "num_gpus": 1}`` (default one CPU);
            also "memory", "accelerator_type" and custom "resources".
        init: more keyword arguments for `ray.init` (e.g. ``{"num_cpus": 8}`` for a local
            cluster, ``{"runtime_env": {...}}``).
        max_retries: times Ray reruns a trial whose worker died (default 0: the trial fails).
        shutdown: stop Ray when the run ends, if this executor started it (default False, so
            consecutive runs reuse it; it stops when the process exits).
        report_host: the driver's address its workers send `metatune.report_intermediate`
            to (default loopback, for a local Ray; on a cluster, one the nodes can reach).

    If Ray is already initialized, it is used as it is and `address` and `init` are ignored.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        resources: Mapping[str, Any] | None = None,
        init: Mapping[str, Any] | None = None,
        max_retries: int = 0,
        shutdown: bool = False,
        report_host: str = "127.0.0.1",
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(
                f"executor_options['address'] must be a non-empty string, got {address!r}"
            )
        resources = dict(resources or {"num_cpus": 1})
        for key, value in resources.items():
            if key not in _RESOURCE_KEYS:
                raise ValueError(
                    f"executor_options['resources'] has unknown key {key!r}; allowed: "
                    f"{', '.join(_RESOURCE_KEYS)}"
                )
            if key in ("num_cpus", "num_gpus", "memory") and (
                isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0
            ):
                raise ValueError(
                    f"executor_options['resources'][{key!r}] must be a number >= 0, got {value!r}"
                )
        if init is not None and not isinstance(init, Mapping):
            raise TypeError(f"executor_options['init'] must be a dict, got {init!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(
                f"executor_options['max_retries'] must be an integer >= 0, got {max_retries!r}"
            )
        self.address = address
        self.resources = resources
        self.init = dict(init or {})
        self.max_retries = max_retries
        self.shutdown = bool(shutdown)
        if not isinstance(report_host, str) or not report_host.strip():
            raise ValueError(
                f"executor_options['report_host'] must be a host name or address, got "
                f"{report_host!r}"
            )
        self.report_host = report_host
        self._started_ray = False
        self._target_ref: Any = None
        self._task: Any = None
        self._running: dict[Any, tuple[int, dict[str, Any]]] = {}  # ref -> (ticket, attrs)
        self._tickets = itertools.count()

    def start(self, target: TrialObjective, n_workers: int) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init)
            self._started_ray = True
        name = describe_objective(target)
        try:
            self._target_ref = ray.put(target)
        except Exception as exc:
            raise TypeError(
                f"objective {name!r} cannot be sent to Ray workers ({type(exc).__name__}: {exc})"
            ) from exc
        options = {**self.resources, "max_retries": self.max_retries}
        self._task = ray.remote(_run).options(**options)
        probe = ray.remote(_probe).options(**self.resources, max_retries=0)
        try:  # load it on a worker now, before any trial exists
            ray.get(probe.remote(self._target_ref))
        except ray.exceptions.RayError as exc:
            raise TypeError(
                f"objective {name!r} cannot be loaded on a Ray worker: {type(exc).__name__}: "
                f"{exc}\ninstall the module that defines it on every node, or ship it with "
                "executor_options={'init': {'runtime_env': {'py_modules': [...]}}}"
            ) from exc

    def submit(
        self, params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any = None
    ) -> Hashable:
        ticket = next(self._tickets)
        attrs = dict(system_attrs)
        ref = self._task.remote(self._target_ref, dict(params), attrs, reporter)
        self._running[ref] = (ticket, attrs)
        return ticket

    def wait(self, timeout: float | None) -> list[tuple[Hashable, Outcome]]:
        if not self._running:
            return []
        ray = _import_ray()
        refs = list(self._running)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[tuple[Hashable, Outcome]] = []
        for ref in ready:
            ticket, attrs = self._running.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # raised past the wrapper (SystemExit)
                outcome = Outcome(error=f"the trial's Ray task failed: {exc}", system_attrs=attrs)
            except ray.exceptions.RayError as exc:  # the worker or its node died, OOM, ...
                outcome = Outcome(
                    error=f"the Ray worker running this trial died: {type(exc).__name__}: {exc}",
                    system_attrs=attrs,
                )
            out.append((ticket, outcome))
        return out

    def cancel(self) -> None:
        if not self._running:
            return
        ray = _import_ray()
        for ref in self._running:
            with contextlib.suppress(Exception):  # already finished, or its worker gone
                ray.cancel(ref, force=True)
        self._running.clear()

    def close(self) -> None:
        self._running.clear()
        self._target_ref = None
        if self._started_ray and self.shutdown:
            ray = _import_ray()
            ray.shutdown()
            self._started_ray = False
