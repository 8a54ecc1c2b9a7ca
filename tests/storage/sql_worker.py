"""A worker process for the multi-process storage tests (run as a script, not collected).

python sql_worker.py optimize URL NAME N_TRIALS RESULTS_FILE
    optimize a shared study, appending one JSON line {"params", "value"} per finished trial
python sql_worker.py hang URL NAME N_DONE MARKER_FILE
    complete N_DONE trials, then write MARKER_FILE and block forever inside the next one
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from metatune import Categorical, Float, Int, Space, Study

SPACE = Space({"x": Float(-2.0, 2.0), "n": Int(1, 9), "c": Categorical(["a", "b", "c"])})


def value_of(params: dict) -> float:
    """The objective every worker evaluates; the tests recompute it from stored params."""
    return (
        (params["x"] - 0.3) ** 2 + 0.1 * params["n"] + {"a": 0.0, "b": 0.5, "c": 1.0}[params["c"]]
    )


def main(mode: str, url: str, name: str, count: str, path: str) -> None:
    study = Study(SPACE, storage=url, name=name, optimizer="random", seed=1)
    out = Path(path)
    if mode == "optimize":

        def objective(params: dict) -> float:
            value = value_of(params)
            with out.open("a") as f:
                f.write(json.dumps({"params": params, "value": value}) + "\n")
            return value

        study.optimize(objective, n_trials=int(count), show_progress=False)
    elif mode == "hang":
        calls = 0

        def objective(params: dict) -> float:
            nonlocal calls
            if calls == int(count):
                out.write_text("running\n")
                while True:
                    time.sleep(60)
            calls += 1
            return value_of(params)

        study.optimize(objective, show_progress=False)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
