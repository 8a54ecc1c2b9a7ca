"""A worker for the kill-and-resume test of a joint architecture + hyperparameter study (run as
a script, not collected).

python joint_worker.py URL NAME N_DONE MARKER_FILE
    complete N_DONE trials, then write MARKER_FILE and block forever inside the next one
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from metatune import Float, Space, Study
from metatune.nas import Cell

SPACE = Space({"cell": Cell(), "lr": Float(1e-4, 1.0, log=True), "width": Float(8.0, 64.0)})


def value_of(params: dict) -> float:
    """The objective; the test recomputes it from stored params."""
    convs = sum(op.startswith("nor_conv") for op in params["cell"])
    return convs - abs(params["lr"] - 0.01) * 10 + params["width"] / 64


def main(url: str, name: str, count: str, marker: str) -> None:
    torch.set_num_threads(1)
    study = Study(SPACE, storage=url, name=name, optimizer="nas-bo", direction="maximize", seed=5)
    calls = 0

    def objective(params: dict) -> float:
        nonlocal calls
        if calls == int(count):
            Path(marker).write_text("running\n")
            while True:
                time.sleep(60)
        calls += 1
        return value_of(params)

    study.optimize(objective, show_progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
