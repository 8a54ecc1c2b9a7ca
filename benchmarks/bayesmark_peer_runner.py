"""A peer's side of benchmarks/bayesmark.py (HEBO or SMAC3), run in the peer's own virtualenv.

Imports nothing from metatune, so it runs with only the peer installed. It speaks JSON lines on
stdin/stdout: the first line sets up the run, then each line is a command and gets one reply.
Only lines that start with ``@@`` are replies (pymoo and SMAC print notices on standard output).

    {"library": "hebo" | "smac", "seed": 0, "n_trials": 40,
     "params": [{"name": "C", "type": "float", "low": 0.01, "high": 1000.0, "log": true},
                {"name": "k", "type": "int", "low": 1, "high": 25, "log": false},
                {"name": "w", "type": "cat", "choices": ["uniform", "distance"]}]}
                                                     -> {"ok": true}
    {"cmd": "suggest"}                               -> {"x": {"C": ..., "k": ..., "w": ...}}
    {"cmd": "observe", "y": 1.23}                    -> {"ok": true}  (tells the last suggestion)
    {"cmd": "quit"}                                  (exits)

The objective is evaluated by the benchmark itself, in metatune's environment, so every method
sees exactly the same values.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"


def _reply(obj: dict) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry."""
    return value.item() if hasattr(value, "item") else value


class _Hebo:
    """HEBO 0.3.6 with default settings, one suggestion at a time."""

    def __init__(self, params: list[dict], seed: int, n_trials: int) -> None:
        import numpy as np
        import torch

        torch.set_num_threads(1)
        np.random.seed(seed)
        torch.manual_seed(seed)
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        self.names = [p["name"] for p in params]
        self.space = DesignSpace().parse([self._param(p) for p in params])
        self.opt = HEBO(self.space, scramble_seed=seed)
        self.last: Any = None

    @staticmethod
    def _param(p: dict) -> dict:
        if p["type"] == "cat":
            return {"name": p["name"], "type": "cat", "categories": list(p["choices"])}
        kind = {("float", False): "num", ("float", True): "pow", ("int", False): "int"}.get(
            (p["type"], bool(p["log"])), "pow_int"
        )
        return {"name": p["name"], "type": kind, "lb": p["low"], "ub": p["high"]}

    def suggest(self) -> dict:
        self.last = self.opt.suggest(n_suggestions=1)
        return {n: _plain(self.last[n].iloc[0]) for n in self.names}

    def observe(self, y: float) -> None:
        import numpy as np

        self.opt.observe(self.last, np.array([[y]]))


class _Smac:
    """SMAC3's HyperparameterOptimizationFacade (random forest, log EI, its default initial
    design and intensifier), deterministic objective, through ask/tell."""

    def __init__(self, params: list[dict], seed: int, n_trials: int) -> None:
        from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
        from smac import HyperparameterOptimizationFacade, Scenario

        space = ConfigurationSpace(seed=seed)
        for p in params:
            if p["type"] == "cat":
                space.add(Categorical(p["name"], list(p["choices"])))
            elif p["type"] == "int":
                space.add(Integer(p["name"], (int(p["low"]), int(p["high"])), log=p["log"]))
            else:
                space.add(Float(p["name"], (float(p["low"]), float(p["high"])), log=p["log"]))
        self.names = [p["name"] for p in params]
        self.tmp = tempfile.mkdtemp(prefix="smac-bayesmark-")
        scenario = Scenario(
            space, deterministic=True, n_trials=n_trials, seed=seed, output_directory=self.tmp
        )
        intensifier = HyperparameterOptimizationFacade.get_intensifier(scenario, max_config_calls=1)
        self.smac = HyperparameterOptimizationFacade(
            scenario,
            self._never_called,
            intensifier=intensifier,
            overwrite=True,
            logging_level=40,
        )
        self.last: Any = None

    @staticmethod
    def _never_called(config: Any, seed: int = 0) -> float:  # ask/tell only
        raise RuntimeError("the benchmark evaluates the objective itself")

    def suggest(self) -> dict:
        self.last = self.smac.ask()
        config = self.last.config
        return {n: _plain(config[n]) for n in self.names}

    def observe(self, y: float) -> None:
        from smac.runhistory.dataclasses import TrialValue

        self.smac.tell(self.last, TrialValue(cost=y))

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    warnings.simplefilter("ignore")
    setup = json.loads(sys.stdin.readline())
    libraries = {"hebo": _Hebo, "smac": _Smac}
    if setup.get("library") not in libraries:
        _reply(
            {"error": f"library must be one of {sorted(libraries)}, got {setup.get('library')!r}"}
        )
        return 1
    try:
        peer = libraries[setup["library"]](
            setup["params"], int(setup["seed"]), int(setup["n_trials"])
        )
    except Exception as exc:  # reported to the benchmark, which records the run as failed
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _reply({"ok": True})
    try:
        for line in sys.stdin:
            msg = json.loads(line)
            try:
                if msg["cmd"] == "suggest":
                    _reply({"x": peer.suggest()})
                elif msg["cmd"] == "observe":
                    peer.observe(float(msg["y"]))
                    _reply({"ok": True})
                elif msg["cmd"] == "quit":
                    break
                else:
                    _reply({"error": f"unknown command {msg['cmd']!r}"})
            except Exception as exc:
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if hasattr(peer, "close"):
            peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
