"""A worker process for the multi-process pipeline test (run as a script, not collected).

python pipeline_worker.py URL CACHE_DIR BUDGET LOG_FILE
    optimize the shared study "shared-pipe" until the shared cost budget is spent, appending a
    line "<pid> <prep.n>" to LOG_FILE each time the first stage really runs
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from metatune import Categorical, Float, Pipeline, Stage, Study
from metatune.pipeline import StageResult

PREP_COST, FIT_COST = 5.0, 1.0


def value_of(params: dict) -> float:
    """The objective; the test recomputes it from stored params."""
    return (params["fit.w"] - params["prep.n"] / 10.0) ** 2


def build(cache: str, log: str) -> Pipeline:
    def prep(n):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {n}\n")
        return StageResult({"n": n, "pid": os.getpid()}, cost=PREP_COST)

    def fit(data, w):
        return StageResult((w - data["n"] / 10.0) ** 2, cost=FIT_COST)

    return Pipeline(
        [
            Stage("prep", prep, {"n": Categorical([1, 2, 3])}, version=1),
            Stage("fit", fit, {"w": Float(0.0, 1.0)}, version=1),
        ],
        cache=cache,
    )


def main(url: str, cache: str, budget: str, log: str) -> None:
    pipe = build(cache, log)
    study = Study(pipe, storage=url, name="shared-pipe", optimizer="random", seed=3)
    study.optimize(pipe, budget=float(budget), show_progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:5])
    Path(sys.argv[4]).parent.joinpath(f"done-{os.getpid()}").write_text("ok\n")
