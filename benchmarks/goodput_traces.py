"""Measure the cluster simulator's job types on real CPU training.

For each of four models: (1) step times of a plain training step by per-replica micro-batch,
in one process and in two gloo DDP processes (plus two accumulation configurations), and the
Pollux step-time model (metatune.goodput.throughput) fitted to them; larger replica counts
and several nodes are predicted by that model, not measured; (2) the gradient noise while
training at M0, measured at fixed parameters at 24 geometric points of training with
metatune.goodput.noise's estimator (16 steps of 8 pieces x 32 examples each); (3) the M0-equivalent steps the run took to come within 5% of its best
validation loss, which is what a job of this type must make to finish.

Writes src/metatune/goodput/sim/job_types.json (package data).
Run: nice -n 10 .venv/bin/python benchmarks/goodput_traces.py   (a few minutes, one thread)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from metatune.benchmarks.common import single_thread_env  # noqa: E402

single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    format_machine,
    machine_info,
    now_utc,
    run_on_gloo,
    single_thread_torch,
)
from metatune.goodput import ThroughputModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import goodput as _bench  # noqa: E402  (benchmarks/goodput.py)

OUT = (
    Path(__file__).resolve().parents[1] / "src" / "metatune" / "goodput" / "sim" / "job_types.json"
)
M0 = 16
MICRO = (4, 8, 16, 32, 64, 128)  # per-replica micro-batches timed
ACCUM = ((32, 1), (128, 1))  # (m, s) timed in one process, so the per-step time is identified
MAX_MICRO = 128  # the memory bound the simulated jobs get
MAX_BATCH = 64 * M0


# --- data and models -------------------------------------------------------------------------
# The digits split and the CNN are those of the single-job benchmark (benchmarks/goodput.py).
_digits = _bench._digits
_CNN = _bench._CNN


def _cancer():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    x = (x - x.mean(0)) / x.std(0)
    x = torch.tensor(x[perm], dtype=torch.float32)
    y = torch.tensor(y[perm])
    return (x[:455], y[:455]), (x[455:], y[455:])


SEQ = 32


def _text():
    """Byte sequences of a few standard-library modules' source (offline, always present)."""
    import argparse as a
    import inspect
    import typing

    raw = b"".join(Path(m.__file__).read_bytes() for m in (a, inspect, typing))
    vocab = sorted(set(raw))
    index = {b: i for i, b in enumerate(vocab)}
    ids = torch.tensor([index[b] for b in raw], dtype=torch.long)
    n = len(ids) // (SEQ + 1)
    seqs = ids[: n * (SEQ + 1)].view(n, SEQ + 1)
    seqs = seqs[torch.randperm(n, generator=torch.Generator().manual_seed(0))][:4000]
    split = int(0.9 * len(seqs))
    return (seqs[:split, :-1], seqs[:split, 1:]), (seqs[split:, :-1], seqs[split:, 1:]), len(vocab)


class _CharGRU(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 32)
        self.gru = nn.GRU(32, 64, batch_first=True)
        self.out = nn.Linear(64, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.emb(x))
        return self.out(h)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@dataclass(frozen=True)
class Kind:
    name: str
    data: Callable[[], tuple]
    make_model: Callable[[tuple], nn.Module]
    make_opt: Callable[[nn.Module], torch.optim.Optimizer]
    rule: str
    steps: int  # M0 steps trained for the noise trace and the target
    about: str


def _text_data():
    tr, va, _ = _text()
    return tr, va


_VOCAB = None


def _vocab() -> int:
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _text()[2]
    return _VOCAB


KINDS = {
    "mlp-digits": Kind(
        "mlp-digits",
        _digits,
        lambda d: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        "adascale",
        3000,
        "MLP 64-128-10 on scikit-learn digits, SGD lr 0.1",
    ),
    "cnn-digits": Kind(
        "cnn-digits",
        _digits,
        lambda d: _CNN(),
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        "adascale",
        3000,
        "CNN (2 conv + linear) on scikit-learn digits, SGD lr 0.1",
    ),
    "gru-char": Kind(
        "gru-char",
        _text_data,
        lambda d: _CharGRU(_vocab()),
        lambda m: torch.optim.Adam(m.parameters(), lr=3e-3),
        "adam-sqrt",
        3000,
        f"GRU char model (embedding 32, hidden 64) on {SEQ}-byte windows of stdlib source, Adam lr 3e-3",
    ),
    "mlp-cancer": Kind(
        "mlp-cancer",
        _cancer,
        lambda d: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2)),
        lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
        "adascale",
        1500,
        "MLP 30-32-2 on scikit-learn breast_cancer (standardised), SGD lr 0.05",
    ),
}


# --- step times ------------------------------------------------------------------------------
QUANTILE = 0.2  # of the per-step wall times: other jobs share the cores, and a step that
# waited for one says more about them than about the step (timeit takes the minimum for the
# same reason); the 20th percentile keeps most of the step's own variation.


def _time_steps(model, opt, x, y, m: int, s: int, steps: int, warm: int = 5) -> float:
    """Low-quantile wall time of a plain step: s + 1 micro-batches of m, then the step."""
    n = len(y)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + warm):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for _ in range(s + 1):
            idx = torch.as_tensor(rng.integers(0, n, m))
            loss = _ce(model(x[idx]), y[idx]) / (s + 1)
            loss.backward()
        opt.step()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return float(np.quantile(times, QUANTILE))


def _ddp_worker(rank: int, job: dict) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    kind = KINDS[job["name"]]
    (x, y), _ = kind.data()
    torch.manual_seed(0)
    model = DDP(kind.make_model(None))
    opt = kind.make_opt(model)
    for g in opt.param_groups:
        g["lr"] = 1e-5
    return {m: _time_steps(model, opt, x, y, m, 0, job["steps"]) for m in MICRO}


def step_times(kind: Kind, steps: int) -> list[list[float]]:
    """[m, s, replicas, seconds] rows."""

    (x, y), _ = kind.data()
    torch.manual_seed(0)
    model = kind.make_model(None)
    opt = kind.make_opt(model)
    for g in opt.param_groups:
        g["lr"] = 1e-5  # step time does not depend on it; keep the weights sane
    rows = [[m, 0, 1, _time_steps(model, opt, x, y, m, 0, steps)] for m in MICRO]
    rows += [[m, s, 1, _time_steps(model, opt, x, y, m, s, steps)] for m, s in ACCUM]
    res = run_on_gloo(_ddp_worker, {"name": kind.name, "steps": steps})
    rows += [[int(m), 0, 2, float(t)] for m, t in res.items()]
    return rows


def fit_step_times(rows: list[list[float]]) -> ThroughputModel:
    model = ThroughputModel()
    for m, s, k, t in rows:
        model.observe(int(m), int(s), float(t), replicas=int(k), nodes=1)
    model.fit()
    return model


# --- noise against progress and the target --------------------------------------------------
PIECES, PIECE = 8, 32  # a measurement step: 8 pieces of 32 examples at fixed parameters
REPEATS = 16  # measurement steps per point (4096 examples)


def _flat_grad(params, weights) -> torch.Tensor:
    parts = []
    for i, p in enumerate(params):
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        if weights is not None and weights[i] is not None:
            g = g * weights[i]
        parts.append(g.reshape(-1))
    return torch.cat(parts).double()


def measure_noise(model, opt, x, y, adam: bool, rng: np.random.Generator) -> dict:
    """|G|^2 and tr(Sigma) at the current parameters from metatune.goodput.noise.from_means
    (gradient pieces and their mean; Adam: preconditioned by its second moment), averaged
    over REPEATS steps of PIECES x PIECE examples drawn without replacement."""
    from metatune.goodput import adam_preconditioner, from_means

    params = [p for p in model.parameters() if p.requires_grad]
    weights = adam_preconditioner(opt, params) if adam else None
    sqr, var = [], []
    for _ in range(REPEATS):
        idx = rng.choice(len(y), PIECES * PIECE, replace=False)
        grads = []
        for j in range(PIECES):
            part = torch.as_tensor(idx[j * PIECE : (j + 1) * PIECE])
            model.zero_grad(set_to_none=True)
            _ce(model(x[part]), y[part]).backward()
            grads.append(_flat_grad(params, weights))
        mean = torch.stack(grads).mean(0)
        est = from_means(
            float(torch.stack([g @ g for g in grads]).mean()),
            1.0 / PIECE,
            float(PIECES * PIECE),
            float(mean @ mean),
            population=float(len(y)),
        )
        sqr.append(est.grad_sqr)
        var.append(est.grad_var)
    model.zero_grad(set_to_none=True)
    s, v = float(np.mean(sqr)), float(np.mean(var))
    return {"grad_sqr": s, "grad_var": v, "noise_scale": v / s if s > 0 else float("inf")}


def noise_trace(kind: Kind, points: int, eval_every: int) -> dict:
    """Train at M0 (plain SGD / Adam steps) and measure the noise at geometric step counts."""
    (x, y), (xv, yv) = kind.data()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = kind.make_model(None)
    opt = kind.make_opt(model)
    adam = kind.rule == "adam-sqrt"
    at = sorted({int(round(v)) for v in np.geomspace(5, kind.steps, points)})
    steps, sqr, var, phi, val = [], [], [], [], []
    order = rng.permutation(len(y))
    pos = 0
    for step in range(1, kind.steps + 1):
        if pos + M0 > len(y):
            order, pos = rng.permutation(len(y)), 0
        idx = torch.as_tensor(order[pos : pos + M0])
        pos += M0
        opt.zero_grad(set_to_none=True)
        _ce(model(x[idx]), y[idx]).backward()
        opt.step()
        if step in at:
            est = measure_noise(model, opt, x, y, adam, rng)
            steps.append(step)
            sqr.append(est["grad_sqr"])
            var.append(est["grad_var"])
            phi.append(est["noise_scale"])
        if step % eval_every == 0:
            with torch.no_grad():
                val.append((step, float(_ce(model(xv), yv))))
    best = min(v for _, v in val)
    target_step = next(s for s, v in val if v <= 1.05 * best)
    return {
        "steps": steps,
        "grad_sqr": sqr,
        "grad_var": var,
        "noise_scale": phi,
        "validation": val,
        "best_val_loss": best,
        "steps_to_target": target_step,
    }


def trace_points(steps: list[int], phi: list[float], target: int) -> list[tuple[float, float]]:
    """(fraction of the target's steps, noise scale) with a running median of 3 over the
    measured points: an estimate of |G|^2 near zero (it is unbiased, not positive) makes a
    single point 100-1000x too high, and one such point would set a job type's efficiency
    for the rest of its training. Non-finite or non-positive estimates are left out; points
    past the target are kept for the median (the simulator holds the value beyond 1)."""
    good = [(s, p) for s, p in zip(steps, phi, strict=True) if np.isfinite(p) and p > 0]
    vals = [p for _, p in good]
    padded = [vals[0], *vals, vals[-1]]
    med = [float(np.median(padded[i : i + 3])) for i in range(len(vals))]
    return [(s / target, m) for (s, _), m in zip(good, med, strict=True)]


def rederive(path: Path) -> None:
    """Recompute the stored traces' noise points from their raw measurements."""
    data = json.loads(path.read_text())
    for t in data["job_types"]:
        raw = t["noise"]["raw"]
        phi = [
            v / q if q > 0 else float("inf")
            for q, v in zip(raw["grad_sqr"], raw["grad_var"], strict=True)
        ]
        pts = trace_points(raw["steps"], phi, t["steps_to_target"])
        t["noise"]["fraction"] = [p[0] for p in pts]
        t["noise"]["noise_scale"] = [p[1] for p in pts]
    if "running median" not in data["about"]:
        data["about"] += (
            " Noise points re-derived from the raw estimates with a running median of 3."
        )
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"re-derived {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--timing-steps", type=int, default=60)
    ap.add_argument(
        "--rederive", action="store_true", help="recompute --out's noise points from its raw data"
    )
    args = ap.parse_args()
    if args.rederive:
        rederive(Path(args.out))
        return
    single_thread_torch()
    t0 = time.time()
    types = []
    for name in args.kinds.split(","):
        kind = KINDS[name]
        rows = step_times(kind, args.timing_steps)
        model = fit_step_times(rows)
        trace = noise_trace(kind, points=24, eval_every=25)
        target = trace["steps_to_target"]
        pts = trace_points(trace["steps"], trace["noise_scale"], target)
        print(
            f"{name}: fit RMSLE {model.fit_error:.3f}, target at {target} M0-steps "
            f"(best val {trace['best_val_loss']:.3f}), noise scale "
            f"{pts[0][1]:.0f} -> {pts[-1][1]:.0f}",
            flush=True,
        )
        types.append(
            {
                "name": name,
                "about": kind.about,
                "base_batch": M0,
                "max_batch": MAX_BATCH,
                "max_micro_batch": MAX_MICRO,
                "lr_rule": kind.rule,
                "step_time": {
                    "params": model.params.__dict__,
                    "fit_rmsle": model.fit_error,
                    "measured": rows,
                },
                "noise": {
                    "fraction": [p[0] for p in pts],
                    "noise_scale": [p[1] for p in pts],
                    "raw": {k: trace[k] for k in ("steps", "grad_sqr", "grad_var")},
                },
                "validation": trace["validation"],
                "steps_to_target": target,
            }
        )
    data = {
        "about": (
            "Measured by benchmarks/goodput_traces.py: wall-clock step times (20th percentile "
            "of 60 steps; other jobs shared the cores) of plain steps "
            "(1 process and 2 gloo DDP processes on CPU), the Pollux step-time model fitted to "
            "them (K > 2 and several nodes are its prediction, not measured), the noise scale "
            "while training at M0 against progress (fraction of steps_to_target, running median of 3; at fixed "
            "parameters, 16 x 8 pieces of 32 examples per point), and the M0 steps to within "
            "5% of the run's best validation loss."
        ),
        "date": now_utc(),
        "minutes": (time.time() - t0) / 60,
        "command": command_line(),
        "machine": format_machine(machine_info()),
        "job_types": types,
    }
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
