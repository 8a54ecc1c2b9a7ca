"""HEBO's side of benchmarks/synthetic.py, run inside HEBO's own virtualenv (NumPy < 1.25).

Imports nothing from metatune, so it runs with only HEBO installed. It speaks JSON lines on
stdin/stdout: the first line sets up the run, then each line is a command and gets one reply.
Only lines that start with ``@@`` are replies (pymoo prints notices on standard output).

    {"bounds": [[lo, hi], ...], "seed": 0}           -> {"ok": true}
    {"cmd": "suggest"}                               -> {"x": [...]}
    {"cmd": "observe", "x": [...], "y": 1.23}        -> {"ok": true}
    {"cmd": "quit"}                                  (exits)

The function is evaluated by the benchmark itself (botorch's test functions, in metatune's
environment), so every method sees exactly the same values.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"


def _reply(obj: dict) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    warnings.simplefilter("ignore")
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from hebo.design_space.design_space import DesignSpace
    from hebo.optimizers.hebo import HEBO

    setup = json.loads(sys.stdin.readline())
    bounds = setup["bounds"]
    seed = int(setup["seed"])
    np.random.seed(seed)
    torch.manual_seed(seed)
    names = [f"x{i}" for i in range(len(bounds))]
    space = DesignSpace().parse(
        [
            {"name": n, "type": "num", "lb": float(lo), "ub": float(hi)}
            for n, (lo, hi) in zip(names, bounds, strict=True)
        ]
    )
    opt = HEBO(space, scramble_seed=seed)
    _reply({"ok": True})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "suggest":
            rec = opt.suggest(n_suggestions=1)
            _reply({"x": [float(rec[n].iloc[0]) for n in names]})
        elif msg["cmd"] == "observe":
            df = pd.DataFrame([dict(zip(names, msg["x"], strict=True))])
            opt.observe(df, np.array([[float(msg["y"])]]))
            _reply({"ok": True})
        elif msg["cmd"] == "quit":
            break
        else:
            _reply({"error": f"unknown command {msg['cmd']!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
