"""A Ray Tune searcher backed by a metatune study: ``tune.TuneConfig(search_alg=MetatuneSearch(
space, metric="loss", mode="min", optimizer="gp", storage="sqlite:///runs.db"))``.

Ray Tune runs the trials (and its schedulers, such as ASHA, stop them early); metatune's
optimizer chooses every configuration, with the trials still running as pending points, and
every trial is a trial of a metatune study in metatune storage, so ``metatune trials --study
NAME --storage URL`` shows them. Needs the ``ray`` extra (``pip install 'metatune[ray]'``).

A trial that a scheduler (ASHA, HyperBand) or a stopping rule ends is told with the last value
of `metric` it reported, as a COMPLETE trial marked ``user_attrs["ray_tune_stopped"] = True``
(False when the trainable returned by itself) with its number of results in
``user_attrs["ray_tune_iterations"]``: ASHA stops the configurations that look bad, and an
optimizer that never saw them would propose their region again. A trial that raised, or
finished without reporting `metric`, is FAILED with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from typing import Any

try:
    from ray.tune.search import Searcher
except ImportError as exc:  # pragma: no cover - the ray extra is missing
    raise ImportError(
        "metatune.integrations.ray_tune needs Ray Tune: pip install 'metatune[ray]'"
    ) from exc

from metatune.exceptions import TrialAlreadyFinished
from metatune.space import Categorical, Float, Int, Space, is_param
from metatune.storage import InMemoryStorage, get_storage
from metatune.trial import TrialState

__all__ = ["MetatuneSearch", "convert_search_space"]

log = logging.getLogger("metatune")

_SEP = "."  # nested Ray Tune configs become dotted metatune parameter names
_STATE_VERSION = 1
_ITERATION = "training_iteration"


# --- Ray Tune search spaces ---------------------------------------------------------------------
def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys must be strings, got {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and not _is_grid(value) and not _is_ray_domain(value):
            out.update(_flatten(value, name + _SEP))
        else:
            out[name] = value
    return out


def _unflatten(params: Mapping[str, Any], nested: bool) -> dict[str, Any]:
    if not nested:
        return dict(params)
    out: dict[str, Any] = {}
    for name, value in params.items():
        *parents, leaf = name.split(_SEP)
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _is_ray_domain(value: Any) -> bool:
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain)


def _is_grid(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"grid_search"}


def _convert_domain(name: str, domain: Any) -> Any:
    """One Ray Tune distribution as a metatune parameter; ValueError for what has none."""
    from ray.tune.search import sample

    sampler = domain.get_sampler()
    what = f"{type(domain).__name__} with {type(sampler).__name__} sampler"
    if isinstance(domain, sample.Categorical):
        if not isinstance(sampler, sample.Uniform):
            raise ValueError(f"parameter {name!r}: {what} is not supported (only tune.choice)")
        try:
            return Categorical(list(domain.categories))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"parameter {name!r}: {exc}") from None
    quantum = None
    if isinstance(sampler, sample.Quantized):
        quantum, sampler = sampler.q, sampler.sampler
    if isinstance(domain, sample.Integer):
        # randint/lograndint exclude their upper bound; qrandint includes it.
        high = domain.upper if quantum is not None else domain.upper - 1
        if quantum not in (None, 1):
            raise ValueError(
                f"parameter {name!r}: qrandint with q={quantum} has no metatune equivalent "
                "(only q=1); use tune.choice over the values"
            )
        log_scale = isinstance(sampler, sample.LogUniform)
        if not log_scale and not isinstance(sampler, sample.Uniform):
            raise ValueError(f"parameter {name!r}: {what} is not supported")
        try:
            return Int(int(domain.lower), int(high), log=log_scale)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"parameter {name!r}: {exc}") from None
    if isinstance(domain, sample.Float):
        if quantum is not None:
            raise ValueError(
                f"parameter {name!r}: quantized floats (tune.quniform, tune.qloguniform) have "
                "no metatune equivalent; use tune.uniform / tune.loguniform or tune.choice"
            )
        if isinstance(sampler, sample.LogUniform):
            log_scale = True
        elif isinstance(sampler, sample.Uniform):
            log_scale = False
        else:  # tune.randn: unbounded
            raise ValueError(
                f"parameter {name!r}: {what} is not supported (metatune needs bounds: "
                "tune.uniform or tune.loguniform)"
            )
        try:
            return Float(float(domain.lower), float(domain.upper), log=log_scale)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"parameter {name!r}: {exc}") from None
    raise ValueError(f"parameter {name!r}: {what} is not supported")


def convert_search_space(config: Mapping[str, Any]) -> tuple[Space | None, bool]:
    """The metatune Space of a Ray Tune ``param_space`` (nested dicts become dotted names), and
    whether it was nested. Converts tune.uniform, loguniform, randint, lograndint, qrandint
    (q=1) and choice, and metatune's own Float/Int/Categorical; constants are left to Ray Tune
    (which merges them into every config). None when `config` holds nothing to search."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    flat = _flatten(config)
    nested = any(_SEP in k for k in flat)
    params: dict[str, Any] = {}
    for name, value in flat.items():
        if _is_grid(value):
            raise ValueError(
                f"parameter {name!r}: tune.grid_search is not supported by MetatuneSearch "
                "(the optimizer chooses every value); use tune.choice"
            )
        if is_param(value):
            params[name] = value
        elif _is_ray_domain(value):
            params[name] = _convert_domain(name, value)
    return (Space(params) if params else None), nested


# --- the searcher -------------------------------------------------------------------------------
class MetatuneSearch(Searcher):
    """Ray Tune `Searcher` whose configurations come from a metatune study.

    Args:
        space: a metatune Space or a dict of Float/Int/Categorical; None to take it from the
            Tuner's ``param_space`` (Ray Tune distributions are converted).
        metric: the reported result key to optimize; None to take it from ``TuneConfig``
            (which Ray Tune hands over only together with a ``param_space``).
        mode: "min" or "max"; None to take it from ``TuneConfig`` (likewise).
        optimizer: a metatune optimizer name ("gp", "eeipu", "random", "nas-bo", ...).
        optimizer_options: options of that optimizer.
        storage: a metatune storage URL (``sqlite:///runs.db``, ``postgresql+psycopg://...``);
            None keeps the study in memory (``save`` then writes its trials into the file).
        study_name: the study's name; an existing study of that name is resumed.
        seed: the study's seed (every suggestion follows from it); None draws one, stored
            with the study.
        heartbeat_interval, stale_after: seconds between the heartbeats this driver sends for
            its running trials, and after which a silent trial counts as stale (see `Study`).
    """

    def __init__(
        self,
        space: Space | Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        optimizer: str = "gp",
        optimizer_options: dict[str, Any] | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        seed: int | None = None,
        heartbeat_interval: float = 10.0,
        stale_after: float = 120.0,
    ) -> None:
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ValueError(f"metric must be a non-empty string (one result key), got {metric!r}")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(optimizer, str) or not optimizer:
            raise ValueError(f"optimizer must be a metatune optimizer name, got {optimizer!r}")
        from metatune.optimizers import make_optimizer

        make_optimizer(optimizer, optimizer_options)  # a bad name or option fails here
        if storage is not None and (not isinstance(storage, str) or "://" not in storage):
            raise ValueError(
                f"storage must be None (in memory) or a metatune storage URL like "
                f"'sqlite:///runs.db', got {storage!r}"
            )
        if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
            raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
        for label, v in (("heartbeat_interval", heartbeat_interval), ("stale_after", stale_after)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise ValueError(f"{label} must be a positive number of seconds, got {v!r}")
        super().__init__(metric=metric, mode=mode)
        self._space: Space | None = None
        self._nested = False
        if space is not None:
            self._space, self._nested = self._space_of(space)
        self._optimizer = optimizer
        self._optimizer_options = dict(optimizer_options or {})
        self._storage_url = storage
        self._study_name = study_name
        self._seed = seed
        self._heartbeat_interval = float(heartbeat_interval)
        self._stale_after = float(stale_after)
        self._numbers: dict[str, int] = {}  # Ray trial_id -> metatune trial number
        self._seen_iteration: dict[str, int] = {}  # last result passed to on_trial_result
        self._last_value: dict[str, float] = {}
        self._finished: set[str] = set()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._study: Any = None
        self._study_id = -1
        self._memory: InMemoryStorage | None = None  # a restored in-memory study
        self._lock = threading.RLock()
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None

    @staticmethod
    def _space_of(space: Space | Mapping[str, Any]) -> tuple[Space, bool]:
        if isinstance(space, Space):
            return space, False
        if not isinstance(space, Mapping):
            raise TypeError(
                f"space must be a metatune Space or a dict of parameters, got {space!r}"
            )
        converted, nested = convert_search_space(space)
        if converted is None:
            raise ValueError("space holds no parameter to search")
        return converted, nested

    # Pickling: Ray Tune pickles its tuner state, searcher included; a live study (engine,
    # threads) is not picklable, so it is dropped and reopened from storage on first use.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_study", "_study_id", "_memory", "_lock", "_beat_stop", "_beat_thread"):
            state.pop(key, None)
        if self._study is not None and self._storage_url is None:
            state["_memory_state"] = self.get_state()  # an in-memory study has no other home
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        memory_state = state.pop("_memory_state", None)
        self.__dict__.update(state)
        self._init_runtime()
        if memory_state is not None:
            self.set_state(memory_state)

    # Properties ------------------------------------------------------------------------------
    @property
    def study(self) -> Any:
        """The metatune `Study` behind this searcher (opened on first use)."""
        return self._open_study()

    @property
    def trial_numbers(self) -> dict[str, int]:
        """Ray Tune trial id -> metatune trial number, for every trial suggested."""
        return dict(self._numbers)

    def _open_study(self) -> Any:
        with self._lock:
            if self._study is not None:
                return self._study
            if self._space is None and self._study_name is None:
                raise RuntimeError(
                    "MetatuneSearch has no search space: pass space=..., or a param_space to "
                    "tune.Tuner"
                )
            if self._metric is None or self._mode is None:
                raise RuntimeError(
                    "MetatuneSearch needs metric and mode: pass them to MetatuneSearch (Ray "
                    "Tune hands TuneConfig's metric and mode to a searcher only together with a "
                    "param_space)"
                )
            from metatune.study import Study

            storage = self._memory if self._memory is not None else get_storage(self._storage_url)
            self._study = Study(
                self._space,
                direction="minimize" if self._mode == "min" else "maximize",
                optimizer=self._optimizer,
                optimizer_options=self._optimizer_options,
                storage=storage,
                name=self._study_name,
                seed=self._seed,
                heartbeat_interval=self._heartbeat_interval,
                stale_after=self._stale_after,
            )
            self._study_name = self._study.name
            record = storage.get_study(self._study.name)
            assert record is not None
            self._study_id = record.id
            if self._space is None:
                self._space = self._study.space
            return self._study

    # Searcher API ------------------------------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Take metric, mode and a search space from the Tuner (a param_space of Ray Tune
        distributions or metatune parameters). False when this searcher has a space already and
        `config` holds another one, or once its study is open."""
        if self._study is not None:
            return False
        space, nested = convert_search_space(config or {})
        if space is not None and self._space is not None and space != self._space:
            return False
        if metric:
            if self._metric is not None and metric != self._metric:
                return False
            self._metric = metric
        if mode:
            if mode not in ("min", "max"):
                raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
            if self._mode is not None and mode != self._mode:
                return False
            self._mode = mode
        if space is not None:
            self._space, self._nested = space, nested
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask the study for a trial (the running ones are its pending points) and hand its
        params to Ray Tune; asking again for a known trial id returns the same params."""
        study = self._open_study()
        with self._lock:
            if trial_id in self._numbers:
                number = self._numbers[trial_id]
                trial = study.storage.get_trials(self._study_id, first_number=number)[0]
                return _unflatten(trial.params, self._nested)
            trial = study.ask()
            self._numbers[trial_id] = trial.number
            self._start_heartbeats()
        return _unflatten(trial.params, self._nested)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Remember the latest value of `metric` (told if a scheduler stops the trial)."""
        if trial_id not in self._numbers or trial_id in self._finished:
            return
        value = _metric_value(result, self._metric)
        if value is not None:
            self._last_value[trial_id] = value
        iteration = result.get(_ITERATION)
        if isinstance(iteration, int):
            self._seen_iteration[trial_id] = iteration

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the study the trial's outcome: the last value of `metric`, or failed."""
        if trial_id not in self._numbers:
            return  # never suggested (removed while pending)
        if trial_id in self._finished:
            log.warning("Ray Tune trial %s completed twice; the second is ignored", trial_id)
            return
        study = self._open_study()
        number = self._numbers[trial_id]
        attrs: dict[str, Any] = {"ray_tune_trial_id": trial_id}
        value = _metric_value(result or {}, self._metric)
        bad = None if value is not None else (result or {}).get(self._metric)
        if value is None and bad is None:
            value = self._last_value.get(trial_id)
        iteration = (result or {}).get(_ITERATION)
        if isinstance(iteration, int):
            attrs["ray_tune_iterations"] = iteration
            # Ray Tune passes every result to on_trial_result except the one on which a
            # scheduler or stopper ends the trial: a completion with an unseen result was
            # stopped (a trainable that returns completes with a result already seen).
            seen = self._seen_iteration.get(trial_id)
            attrs["ray_tune_stopped"] = not error and (seen is None or iteration > seen)
        if error:
            outcome: dict[str, Any] = {"error": "the Ray Tune trial raised an error"}
        elif bad is not None:
            outcome = {"error": f"the Ray Tune trial's last {self._metric!r} was {bad!r}"}
        elif value is None:
            outcome = {
                "error": f"the Ray Tune trial finished without reporting {self._metric!r}"
                + ("" if not result else f" (reported keys: {sorted(result)[:20]})")
            }
        else:
            outcome = {"value": value}
        with self._lock:
            self._finished.add(trial_id)
            self._last_value.pop(trial_id, None)
            try:
                study.tell(number, user_attrs=attrs, **outcome)
            except TrialAlreadyFinished:
                # Failed as stale meanwhile (e.g. this driver was restarted while Ray Tune
                # resumed the trial): keep the result as a new trial with the same params.
                self._record_again(trial_id, number, attrs, outcome)

    def _record_again(
        self, trial_id: str, number: int, attrs: dict[str, Any], outcome: dict[str, Any]
    ) -> None:
        study = self._study
        storage = study.storage
        params = storage.get_trials(self._study_id, first_number=number)[0].params
        again = storage.create_trial(self._study_id, params)
        storage.set_trial_params(self._study_id, again.number, params)
        self._numbers[trial_id] = again.number
        attrs = {**attrs, "ray_tune_retold_from": number}
        study.tell(again.number, user_attrs=attrs, **outcome)
        log.warning(
            "trial %d was already finished in storage; Ray Tune trial %s's result is trial %d",
            number,
            trial_id,
            again.number,
        )

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Record a point evaluated outside this searcher as a finished trial of the study."""
        study = self._open_study()
        params = _flatten(parameters) if self._nested else dict(parameters)
        params = {k: v for k, v in params.items() if k in study.space}
        study.space.validate(params)
        with self._lock:
            trial = study.storage.create_trial(self._study_id, params)
            study.storage.set_trial_params(self._study_id, trial.number, params)
            attrs = {"ray_tune_evaluated_point": True, "ray_tune_stopped": bool(pruned)}
            if error or value is None:
                study.tell(trial.number, error="evaluated point with an error", user_attrs=attrs)
            else:
                study.tell(trial.number, value, user_attrs=attrs)

    # Heartbeats: the driver owns the running trials; without heartbeats another process
    # (or this study's own sweep) would fail a long Ray trial as stale.
    def _start_heartbeats(self) -> None:
        if self._beat_thread is not None and self._beat_thread.is_alive():
            return
        if not self._study.storage.supports_heartbeats:
            return
        self._beat_stop.clear()
        self._beat_thread = threading.Thread(
            target=self._beat, name="metatune-ray-tune-heartbeat", daemon=True
        )
        self._beat_thread.start()

    def _beat(self) -> None:
        while not self._beat_stop.wait(self._heartbeat_interval):
            with self._lock:
                live = [n for t, n in self._numbers.items() if t not in self._finished]
                if not live:
                    self._beat_thread = None
                    return
                study_id = self._study_id
                for number in live:
                    try:
                        self._study.storage.heartbeat(study_id, number)
                    except Exception:  # a missed heartbeat must never stop the search
                        log.debug("heartbeat failed", exc_info=True)

    def close(self) -> None:
        """Stop the heartbeat thread (running trials stay RUNNING in storage)."""
        self._beat_stop.set()
        thread = self._beat_thread
        if thread is not None:
            thread.join()

    # save / restore: JSON that names the storage and the study; the trials live in storage.
    def get_state(self) -> dict[str, Any]:
        study = self._open_study()
        state: dict[str, Any] = {
            "format": "metatune.ray_tune",
            "version": _STATE_VERSION,
            "storage": self._storage_url,
            "study_name": study.name,
            "metric": self._metric,
            "mode": self._mode,
            "optimizer": self._optimizer,
            "optimizer_options": self._optimizer_options,
            "nested": self._nested,
            "trial_numbers": dict(self._numbers),
            "finished": sorted(self._finished),
            "seen_iteration": dict(self._seen_iteration),
            "last_value": dict(self._last_value),
        }
        if self._storage_url is None:
            # In memory: the study has no other home, so its space and trials travel along.
            state["space"] = study.space.to_dict()
            state["seed"] = study.seed
            state["trials"] = [_trial_json(t) for t in study.trials]
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != "metatune.ray_tune":
            raise ValueError("not a MetatuneSearch state (missing format 'metatune.ray_tune')")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"MetatuneSearch state version {state.get('version')!r} is not supported "
                f"(this metatune writes version {_STATE_VERSION})"
            )
        self.close()
        self._init_runtime()
        self._storage_url = state["storage"]
        self._study_name = state["study_name"]
        self._metric = state["metric"]
        self._mode = state["mode"]
        self._optimizer = state["optimizer"]
        self._optimizer_options = dict(state["optimizer_options"])
        self._nested = bool(state["nested"])
        self._numbers = {str(k): int(v) for k, v in state["trial_numbers"].items()}
        self._finished = set(state["finished"])
        self._seen_iteration = {str(k): int(v) for k, v in state["seen_iteration"].items()}
        self._last_value = {str(k): float(v) for k, v in state["last_value"].items()}
        if self._storage_url is None:
            self._space = Space.from_dict(state["space"])
            self._seed = int(state["seed"])
            self._memory = _memory_storage_from(state, self._space)
        else:
            self._space = None  # the stored study's space
        study = self._open_study()
        with self._lock:
            if any(t not in self._finished for t in self._numbers):
                self._start_heartbeats()
        log.info("restored MetatuneSearch over study %r (%d trials)", study.name, len(study.trials))

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher's state as JSON (atomically: a temp file, then a rename)."""
        state = self.get_state()
        tmp = f"{checkpoint_path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Read a state written by `save` and reopen its study from storage."""
        with open(checkpoint_path, encoding="utf-8") as fh:
            try:
                state = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{checkpoint_path!r} is not a MetatuneSearch state (JSON): {exc}"
                ) from None
        self.set_state(state)


def _metric_value(result: Mapping[str, Any], metric: str | None) -> float | None:
    if metric is None or metric not in result:
        return None
    value = result[metric]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        and not hasattr(value, "__float__")
    ):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _trial_json(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "params": trial.params,
        "state": trial.state.value,
        "value": trial.value,
        "error": trial.error,
        "user_attrs": trial.user_attrs,
    }


def _memory_storage_from(state: dict[str, Any], space: Space) -> InMemoryStorage:
    """A fresh in-memory storage holding the saved study and its trials, numbers kept."""
    store = InMemoryStorage()
    mode = state["mode"]
    record = store.create_study(
        name=state["study_name"],
        direction="minimize" if mode == "min" else "maximize",
        space=space.to_dict(),
        optimizer=state["optimizer"],
        optimizer_options=state["optimizer_options"],
        seed=int(state["seed"]),
    )
    for saved in sorted(state["trials"], key=lambda t: t["number"]):
        trial = store.create_trial(record.id, dict(saved["params"]))
        if trial.number != saved["number"]:
            raise ValueError(f"saved trial numbers are not dense at {saved['number']}")
        if saved["state"] != TrialState.RUNNING.value:
            store.finish_trial(
                record.id,
                trial.number,
                TrialState(saved["state"]),
                value=saved["value"],
                error=saved["error"],
                user_attrs=saved["user_attrs"],
            )
    return store
