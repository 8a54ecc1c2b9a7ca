"""Goodput benchmark: the must-show measurements of metatune.goodput on CPU.

1. noise: the controller's noise-scale estimate against brute force (the variance of every
   per-example gradient of the training set, torch.func vmap/grad) on two models at three
   points of training, at fixed parameters (micro-batch pieces, split steps, consecutive
   differences) and as seen online while training;
2. throughput: the step-time model fitted on some micro-batch sizes, RMS log error on the
   sizes it did not see;
3. overhead: mean step time of the controller against a plain loop (and plain DDP) at the
   same batch, in interleaved blocks of steady-state steps.

Time to target (adaptive against fixed batches) is benchmarks/goodput_time_to_target.py.
Writes docs/benchmarks/goodput.md, goodput.json and goodput.png.
Run: .venv/bin/python benchmarks/goodput.py  (about 15 minutes on one free core)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from metatune.benchmarks.common import single_thread_env  # noqa: E402

single_thread_env()

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    run_on_gloo,
    single_thread_torch,
)
from metatune.goodput import BatchPlan, GoodputController, ThroughputModel  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
M0 = 16
# Other jobs share the machine's cores: time is this thread's CPU time (torch runs on this one
# thread), which counts what the work costs, not how long it waited for a core.
CLOCK = time.thread_time
SCALES = (1, 2, 4, 8, 16)


# --- problems ------------------------------------------------------------------------------
def _digits(seed: int = 0):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    x = torch.tensor(x[perm] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[perm])
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3)
        self.c2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, 8, 8)
        x = F.relu(self.c1(x))
        x = F.relu(self.c2(x))
        return self.fc(x.flatten(1))


class _WideCNN(nn.Module):
    """A model whose steps take tens of milliseconds on one core, for the overhead rows."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 64, 3, padding=1)
        self.c2 = nn.Conv2d(64, 128, 3, padding=1)
        self.f1 = nn.Linear(128 * 4 * 4, 256)
        self.f2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x.view(-1, 1, 8, 8)))
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


@dataclass(frozen=True)
class Problem:
    name: str
    make_model: Callable[[], nn.Module]
    make_opt: Callable[[nn.Module], torch.optim.Optimizer]
    rule: str
    about: str


PROBLEMS = {
    "mlp-digits": Problem(
        "mlp-digits",
        lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        "adascale",
        "MLP 64-128-10, SGD lr 0.1 at M0, AdaScale rule",
    ),
    "cnn-digits": Problem(
        "cnn-digits",
        _CNN,
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        "adascale",
        "CNN (2 conv + linear), SGD lr 0.1 at M0, AdaScale rule",
    ),
    "cnn-digits-adam": Problem(
        "cnn-digits-adam",
        _CNN,
        lambda m: torch.optim.Adam(m.parameters(), lr=2e-3),
        "adam-sqrt",
        "the same CNN with Adam lr 2e-3 at M0, Adam square-root rule",
    ),
}


# Only in the overhead rows (steps of 10-30 ms here, where a per-step cost is a smaller share).
OVERHEAD_PROBLEMS = {
    "wide-cnn-adam": Problem(
        "wide-cnn-adam",
        _WideCNN,
        lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
        "adam-sqrt",
        "CNN 64/128 channels + 256-unit layer (0.6M parameters), Adam lr 1e-3",
    ),
}
OVERHEAD_BLOCKS = {"wide-cnn-adam": 40}  # steps per timed block where 200 would take too long


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


# --- 1. noise scale against brute force ----------------------------------------------------
class _FrozenAdam(torch.optim.Adam):
    """Adam whose step does nothing: parameters and second moment stay as loaded."""

    def step(self, closure=None):  # noqa: ANN001
        return None


def _brute_force(model: nn.Module, opt: torch.optim.Optimizer, x, y, adam: bool) -> dict:
    from torch.func import functional_call, grad, vmap

    from metatune.goodput import adam_preconditioner

    names = [n for n, p in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    g = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    flat = torch.cat([g[n].reshape(len(x), -1) for n in names], 1).double()
    if adam:
        w = adam_preconditioner(opt, list(model.parameters()))
        flat = flat * torch.cat([wi.reshape(-1) for wi in w]).double()[None]
    var = float(flat.var(0, unbiased=True).sum())
    mean = flat.mean(0)
    sqr = float(mean @ mean)
    return {"var": var, "sqr": sqr, "phi": var / sqr}


def _estimate_fixed(problem: Problem, model, opt, train, mode: str, seed: int) -> dict:
    """The controller's estimate at fixed parameters (nothing moves: lr 0 / frozen Adam)."""
    adam = problem.rule == "adam-sqrt"
    m = copy.deepcopy(model)
    if adam:
        o = _FrozenAdam(m.parameters(), lr=0.0)
        o.load_state_dict(opt.state_dict())
    else:
        o = torch.optim.SGD(m.parameters(), lr=0.0)
    # Large enough that |G|^2 is not a small difference of large numbers when the noise
    # scale is in the hundreds (the estimate's standard error grows with phi / batch).
    batch = 256
    kw = {
        "pieces": {"max_micro_batch": 32, "measure_every": None},
        "split": {"measure_every": 1},
        "consecutive": {"measure_every": None},
    }[mode]
    ctl = GoodputController(
        m, o, batch_size=batch, max_batch_size=batch, noise_decay=0.99, adaptive=False, **kw
    )
    loader = ctl.loader(torch.utils.data.TensorDataset(*train), seed=seed)
    while ctl.steps < 400:
        for (xb, yb), _ in loader:
            ctl.step(_loss(ctl.model, xb, yb))
            if ctl.steps >= 400:
                break
    se = ctl.noise.standard_errors()[2]
    return {"phi": ctl.noise.noise_scale, "se": se}


def bench_noise(steps: int, seed: int = 0) -> list[dict]:
    train, _ = _digits(seed)
    rows = []
    for problem in PROBLEMS.values():
        torch.manual_seed(seed)
        model = problem.make_model()
        opt = problem.make_opt(model)
        adam = problem.rule == "adam-sqrt"
        ctl = GoodputController(
            model, opt, batch_size=M0, max_batch_size=M0, adaptive=False, lr_rule=problem.rule
        )
        loader = ctl.loader(torch.utils.data.TensorDataset(*train), seed=seed)
        points = [steps // 30, steps // 3, steps]
        done = 0
        while done < len(points):
            for (xb, yb), _ in loader:
                ctl.step(_loss(ctl.model, xb, yb))
                if ctl.steps == points[done]:
                    bf = _brute_force(model, opt, *train, adam=adam)
                    row = {
                        "problem": problem.name,
                        "step": ctl.steps,
                        "brute_force": bf["phi"],
                        "online": ctl.noise.noise_scale,
                    }
                    for mode in ("pieces", "split", "consecutive"):
                        est = _estimate_fixed(problem, model, opt, train, mode, seed + 1)
                        row[mode] = est["phi"]
                        row[mode + "_se"] = est["se"]
                    rows.append(row)
                    print(
                        f"noise {problem.name} step {ctl.steps}: brute {bf['phi']:.1f} "
                        f"pieces {row['pieces']:.1f} split {row['split']:.1f} "
                        f"consecutive {row['consecutive']:.1f} online {row['online']:.1f}",
                        flush=True,
                    )
                    done += 1
                    if done == len(points):
                        break
    return rows


# --- 2. throughput model on held-out micro-batch sizes -------------------------------------
def _time_plan(problem: Problem, train, plan: BatchPlan, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = problem.make_model()
    opt = problem.make_opt(model)
    for g in opt.param_groups:
        g["lr"] = 1e-4  # keep the model sane; step time does not depend on it
    ctl = GoodputController(
        model,
        opt,
        batch_size=M0,
        max_batch_size=max(plan.total, M0),
        max_micro_batch=plan.micro_batch,
        measure_every=None,
        adaptive=False,
        lr_rule=problem.rule,
        clock=CLOCK,
    )
    # One epoch of the digits examples repeated: every step full, no epoch boundary inside.
    x, y = train
    reps = -(-plan.total * (steps + 5) // len(y))
    data = torch.utils.data.TensorDataset(x.repeat(reps, 1), y.repeat(reps))
    loader = ctl.loader(data, seed=seed)
    ctl.set_plan(plan)
    times: list[float] = []
    last = None
    warm = 3  # the first steps allocate
    for (xb, yb), _ in loader:
        if ctl.step(_loss(ctl.model, xb, yb)):
            now = CLOCK()
            if last is not None and warm <= 0:
                times.append(now - last)
            warm -= 1
            last = now
            if len(times) >= steps:
                break
    return statistics.median(times)


def bench_throughput(steps: int, seed: int = 0) -> list[dict]:
    train, _ = _digits(seed)
    fit_m = (4, 16, 64, 256)
    held_m = (8, 32, 128)
    rows = []
    for problem in PROBLEMS.values():
        configs = [(m, s) for m in sorted(fit_m + held_m) for s in (0, 1, 3)]
        rounds: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
        for r in range(3):  # interleaved rounds, so a busy spell of the machine hits all alike
            for m, s in configs:
                rounds[(m, s)].append(_time_plan(problem, train, BatchPlan(m, s, 1), steps, r))
        measured = {c: statistics.median(v) for c, v in rounds.items()}
        model = ThroughputModel()
        for (m, s), t in measured.items():
            if m in fit_m:
                for _ in range(3):
                    model.observe(m, s, t)
        model.fit()
        held = [(m, s) for (m, s) in measured if m in held_m]
        pred = np.array([float(model.predict(m, s)) for m, s in held])
        true = np.array([measured[k] for k in held])
        rmsle = float(np.sqrt(np.mean(np.log(pred / true) ** 2)))
        rows.append(
            {
                "problem": problem.name,
                "rmsle_held_out": rmsle,
                "fit_rmsle": model.fit_error,
                "params": model.params.__dict__ if model.params else None,
                "measured": [[m, s, t] for (m, s), t in sorted(measured.items())],
                "held_out_pred": [[m, s, float(p)] for (m, s), p in zip(held, pred, strict=True)],
            }
        )
        print(f"throughput {problem.name}: held-out RMSLE {rmsle:.3f}", flush=True)
    return rows


# --- 3. time to target -----------------------------------------------------------------------
# --- 3. overhead ---------------------------------------------------------------------------
# Arms are endless generators, one optimizer step per next(); each keeps its model and
# optimizer between blocks, so every arm is timed in its steady state, and blocks of the arms
# alternate so that a change of the machine's load hits them alike.
OVERHEAD_BLOCK = 200  # steps per timed block
OVERHEAD_ROUNDS = 20  # timed blocks per arm (after one untimed warm-up block)


def _plain_arm(problem: Problem, train, batch: int, seed: int, ddp: bool = False):
    torch.manual_seed(seed)
    base = problem.make_model()
    if ddp:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP

        model, rank, world = DDP(base), dist.get_rank(), dist.get_world_size()
    else:
        model, rank, world = base, 0, 1
    opt = problem.make_opt(base)
    x, y = train
    g = np.random.default_rng(seed)
    n, per = len(y), batch // world
    perm, pos = torch.as_tensor(g.permutation(n)), 0
    while True:
        if pos + batch > n:
            perm, pos = torch.as_tensor(g.permutation(n)), 0
        idx = perm[pos + rank * per : pos + (rank + 1) * per]
        pos += batch
        loss = _loss(model, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield


def _controller_arm(problem: Problem, train, batch: int, seed: int, **kwargs):
    """The controller at a batch it keeps: planning runs as usual over candidates up to 16x
    the batch, but a switch would need a predicted gain above 999%."""
    torch.manual_seed(seed)
    model = problem.make_model()
    opt = problem.make_opt(model)
    ctl = GoodputController(
        model,
        opt,
        batch_size=batch,
        max_batch_size=16 * batch,
        threshold=9.99,
        lr_rule=problem.rule,
        **kwargs,
    )
    loader = ctl.loader(torch.utils.data.TensorDataset(*train), seed=seed, drop_last=True)
    while True:
        for (xb, yb), _ in loader:
            if ctl.step(_loss(ctl.model, xb, yb)):
                if ctl.plan.total != batch:
                    raise RuntimeError(f"the overhead arm left batch {batch}: {ctl.plan}")
                yield


def _interleaved(arms: dict, clocks: tuple, block: int) -> dict[str, list[list[float]]]:
    """Mean step time of each timed block of each arm, per clock; the arms' order alternates
    between rounds."""
    for arm in arms.values():
        for _ in range(block):
            next(arm)
    blocks: dict[str, list[list[float]]] = {name: [] for name in arms}
    for r in range(OVERHEAD_ROUNDS):
        for name in list(arms) if r % 2 == 0 else list(reversed(arms)):
            start = [c() for c in clocks]
            for _ in range(block):
                next(arms[name])
            blocks[name].append([(c() - s) / block for c, s in zip(clocks, start, strict=True)])
    return blocks


# "plain again" is a second plain loop timed against the first (an A/A comparison): how far
# two identical loops read apart on this machine, the resolution of every row.
SINGLE_ARMS = {
    "plain again": {"plain": True},
    "default": {},  # a split step every 8th
    "auto": {"measure_every": "auto"},  # as often as the measuring budget allows
    "every 32": {"measure_every": 32},
    "consecutive": {"measure_every": None},
    "auto, no planning": {"measure_every": "auto", "adaptive": False},
}


def _paired(
    problem: Problem,
    train,
    batch: int,
    seed: int,
    arms: dict,
    clocks: tuple,
    ddp: bool = False,
    **common,
):
    """Each controller arm interleaved with a plain loop of its own (two arms at a time, so
    that no third model's blocks sit between an arm and the plain blocks it is compared
    with); returns every arm's blocks and all plain blocks."""
    out: dict[str, list] = {"plain": []}
    for name, kw in arms.items():
        pair = {
            "plain": _plain_arm(problem, train, batch, seed, ddp=ddp),
            name: (
                _plain_arm(problem, train, batch, seed, ddp=ddp)
                if kw.get("plain")
                else _controller_arm(problem, train, batch, seed, **common, **kw)
            ),
        }
        blocks = _interleaved(pair, clocks, OVERHEAD_BLOCKS.get(problem.name, OVERHEAD_BLOCK))
        out[name] = list(zip(blocks[name], blocks["plain"], strict=True))
        out["plain"] += blocks["plain"]
    return out


def _paired_row(pairs: list, clock: int) -> dict:
    """Paired per round: the arm's block against its plain block next to it in time."""
    ratios = [a[clock] / p[clock] - 1 for a, p in pairs]
    return {
        "ms": 1e3 * statistics.median(a[clock] for a, _ in pairs),
        "overhead": statistics.median(ratios),
        "q1": float(np.percentile(ratios, 25)),
        "q3": float(np.percentile(ratios, 75)),
    }


def bench_overhead(seed: int = 0) -> list[dict]:
    train, _ = _digits(seed)
    rows = []
    for problem in [*PROBLEMS.values(), *OVERHEAD_PROBLEMS.values()]:
        for batch in (M0, 4 * M0):
            blocks = _paired(problem, train, batch, seed, SINGLE_ARMS, (CLOCK,), clock=CLOCK)
            row = {
                "problem": problem.name,
                "batch": batch,
                "plain_ms": 1e3 * statistics.median(b[0] for b in blocks["plain"]),
                "arms": {name: _paired_row(blocks[name], 0) for name in SINGLE_ARMS},
            }
            rows.append(row)
            print(
                f"overhead {problem.name} batch {batch}: plain {row['plain_ms']:.3f} ms, "
                + ", ".join(f"{k} {100 * v['overhead']:+.1f}%" for k, v in row["arms"].items()),
                flush=True,
            )
    return rows


# --- 5. two processes (gloo DDP) -----------------------------------------------------------
DDP_ARMS = {
    "plain again": {"plain": True},
    "default": {},
    "auto": {"measure_every": "auto"},
    "auto, no planning": {"measure_every": "auto", "adaptive": False},
}


def _ddp_overhead(problem: Problem, train, batch: int, seed: int) -> dict:
    clocks = (time.perf_counter, time.thread_time)
    blocks = _paired(problem, train, batch, seed, DDP_ARMS, clocks, ddp=True)
    row: dict = {"problem": problem.name, "batch": batch}
    for i, clock in enumerate(("wall", "cpu")):
        row[f"plain_{clock}_ms"] = 1e3 * statistics.median(b[i] for b in blocks["plain"])
        row[clock] = {name: _paired_row(blocks[name], i) for name in DDP_ARMS}
    return row


def _ddp_worker(rank: int, job: dict) -> dict:
    train, _ = _digits(0)
    out: dict = {"overhead": []}
    for name in job["problems"]:
        problem = PROBLEMS[name] if name in PROBLEMS else OVERHEAD_PROBLEMS[name]
        for batch in (M0, 4 * M0):
            row = _ddp_overhead(problem, train, batch, 0)
            out["overhead"].append(row)
            if rank == 0:
                print(
                    f"ddp overhead {name} batch {batch}: "
                    + ", ".join(
                        f"{k} wall {100 * row['wall'][k]['overhead']:+.1f}% "
                        f"cpu {100 * row['cpu'][k]['overhead']:+.1f}%"
                        for k in DDP_ARMS
                    ),
                    flush=True,
                )
    return out


def bench_ddp(problems: list[str]) -> dict:
    """2 gloo processes on this machine. Wall time here: with two processes the all-reduce
    waits are part of the cost."""
    return run_on_gloo(_ddp_worker, {"problems": problems})


# --- page ----------------------------------------------------------------------------------
def _plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    # (a) noise
    a = ax[0]
    rows = data.get("noise", [])
    for i, mode in enumerate(("pieces", "split", "consecutive", "online")):
        xs = [r["brute_force"] for r in rows]
        ys = [r[mode] for r in rows]
        a.scatter(xs, ys, label=mode, marker="osv^"[i])
    if rows:
        lo = min(r["brute_force"] for r in rows) * 0.5
        hi = max(r["brute_force"] for r in rows) * 2
        a.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        a.fill_between(
            [lo, hi], [0.8 * lo, 0.8 * hi], [1.2 * lo, 1.2 * hi], color="gray", alpha=0.2
        )
        a.set_xscale("log")
        a.set_yscale("log")
    a.set_xlabel("brute-force noise scale (per-example gradients)")
    a.set_ylabel("controller's estimate")
    a.set_title("noise scale (band: within 20%)")
    a.legend()
    # (b) throughput
    b = ax[1]
    for j, r in enumerate(data.get("throughput", [])):
        meas = {(m, s): t for m, s, t in r["measured"]}
        color = f"C{j}"
        for m, s, p in r["held_out_pred"]:
            b.scatter(meas[(m, s)] * 1e3, p * 1e3, c=color)
        b.scatter([], [], c=color, label=r["problem"])
    b.plot([0.1, 100], [0.1, 100], "k-", lw=0.8)
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("measured step time, held-out micro-batch sizes (ms)")
    b.set_ylabel("predicted (ms)")
    b.set_title("throughput model on unseen batch sizes")
    b.legend()
    # (c) overhead: the default controller against the plain loop, IQR over paired rounds
    d = ax[2]
    bars = [
        (f"{r['problem']}\n{r['batch']}", r["arms"]["default"])
        for r in data.get("overhead", [])
        if "arms" in r
    ]
    bars += [
        (f"{r['problem']}\n{r['batch']}, DDP", r["wall"]["default"])
        for r in data.get("ddp", {}).get("overhead", [])
        if "wall" in r
    ]
    xs = np.arange(len(bars))
    mids = np.array([100 * v["overhead"] for _, v in bars])
    errs = np.array(
        [
            [100 * v["overhead"] - 100 * v["q1"], 100 * v["q3"] - 100 * v["overhead"]]
            for _, v in bars
        ]
    ).T.reshape(2, -1)
    colors = ["C0" if "DDP" not in name else "C1" for name, _ in bars]
    d.bar(xs, mids, 0.6, yerr=errs, color=colors, capsize=3)
    d.axhline(5, color="k", lw=0.8, ls="--")
    d.set_xticks(xs, [name for name, _ in bars], fontsize=6, rotation=60)
    d.set_ylabel("per-step overhead (%)")
    d.set_title("default controller vs plain loop (blue) / plain DDP, wall (orange)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _overhead_protocol(base: str) -> str:
    return (
        "Each controller arm is timed against a plain loop of its own (two models at a time, "
        "so no third model's blocks sit between them): each keeps its model and optimizer and "
        f"runs {OVERHEAD_ROUNDS} timed blocks of "
        f"{OVERHEAD_BLOCK} optimizer steps ({', '.join(f'{k}: {v}' for k, v in OVERHEAD_BLOCKS.items())}) after one untimed block, the two arms' blocks "
        "alternating (the order reversed every round), so both are timed in their steady "
        f"state and a change of load hits them alike. Against {base}, each block's mean step "
        "time is compared with the plain block of the same round; the table gives the median "
        "of those paired ratios. A mean, not a median step: the costlier measured and "
        "re-planning steps count in full. The controller plans over candidates up to 16x the "
        "batch as usual but keeps the batch (its threshold would need a 999% gain)."
    )


def _overhead_cell(v: dict) -> str:
    return f"{100 * v['overhead']:+.1f}% [{100 * v['q1']:+.1f}, {100 * v['q3']:+.1f}]"


def render(data: dict, out: Path) -> None:
    lines = ["# Goodput-optimized training (metatune.goodput)", ""]
    lines += [
        "Measured on CPU while other jobs shared the machine's 2 cores (load average "
        f"{data.get('load_average', [float('nan')])[0]:.1f} when the run ended). So that the "
        "times say what the work costs rather than how long it waited for a core, every time "
        "below is this thread's CPU time (`time.thread_time`; torch runs on that one thread), "
        "also the step times the controller itself fits; every time is a median. Models: "
        + "; ".join(f"**{p.name}**: {p.about}" for p in PROBLEMS.values())
        + f". M0 = {M0}, scikit-learn's digits (1500 train / 297 validation).",
        "",
    ]
    # targets summary
    summary = ["## Must-show targets", "", "| target | measured | met? |", "| --- | --- | --- |"]
    noise = data.get("noise", [])
    if noise:
        errs = [abs(r["pieces"] / r["brute_force"] - 1) for r in noise]
        errs_s = [abs(r["split"] / r["brute_force"] - 1) for r in noise]
        errs_c = [abs(r["consecutive"] / r["brute_force"] - 1) for r in noise]
        summary.append(
            f"| noise scale within 20% of brute force, {len({r['problem'] for r in noise})} "
            f"models x 3 points (fixed parameters; accumulation pieces / split steps / "
            f"consecutive differences) | worst {100 * max(errs):.0f}% / "
            f"{100 * max(errs_s):.0f}% / {100 * max(errs_c):.0f}% "
            f"| {'yes' if max(errs + errs_s + errs_c) <= 0.2 else 'no'} |"
        )
    thr = data.get("throughput", [])
    if thr:
        worst = max(r["rmsle_held_out"] for r in thr)
        each = ", ".join(f"{r['problem']} {100 * r['rmsle_held_out']:.1f}%" for r in thr)
        summary.append(
            f"| throughput model RMS log error on held-out micro-batch sizes < 15% | worst "
            f"{100 * worst:.1f}% ({each}) "
            f"| {'yes' if worst < 0.15 else 'no'} |"
        )
    summary.append(
        "| adaptive time to target <= 1.1x the best and <= 0.7x the median fixed batch, one "
        "process and 2-process DDP | on its own page: "
        "[goodput-time-to-target.md](goodput-time-to-target.md) | see there |"
    )
    ov = [r for r in data.get("overhead", []) if "arms" in r]
    if ov:
        worst = max(r["arms"]["default"]["overhead"] for r in ov)
        worst_c = max(r["arms"]["consecutive"]["overhead"] for r in ov)
        summary.append(
            f"| per-step overhead <= 5%, one process against a plain loop at the same batch "
            f"| worst {100 * worst:+.1f}% (default), "
            f"{100 * worst_c:+.1f}% (consecutive differences) | {'yes' if worst <= 0.05 else 'no'} |"
        )
    ddp = data.get("ddp")
    if ddp:
        ddp_ov = [r for r in ddp.get("overhead", []) if "wall" in r]
        if ddp_ov:
            worst = max(r["wall"]["default"]["overhead"] for r in ddp_ov)
            worst_c = max(r["cpu"]["default"]["overhead"] for r in ddp_ov)
            each = ", ".join(
                f"{r['problem']} {r['batch']} {100 * r['wall']['default']['overhead']:+.1f}%"
                for r in ddp_ov
            )
            summary.append(
                f"| per-step overhead <= 5% against plain DDP at the same batch (2 gloo "
                f"processes) | worst {100 * worst:+.1f}% wall ({each}); worst "
                f"{100 * worst_c:+.1f}% CPU | {'yes' if worst <= 0.05 else 'no'} |"
            )
    summary.append(
        "| cluster simulator: average JCT at least 30% below fixed allocation at the middle "
        "load, and ahead of least attained service | on its own page: "
        "[goodput-cluster.md](goodput-cluster.md) | see there |"
    )
    lines += summary + [""]
    notes = out / "goodput-notes.md"
    if notes.exists():  # what the numbers mean, written by hand after the run
        lines += [notes.read_text().strip(), ""]
    if noise:
        lines += [
            "## Noise scale against brute force",
            "",
            "Brute force: the sample variance (ddof 1) of all 1500 per-example gradients divided "
            "by the squared norm of their mean, at the parameters reached after the given number "
            "of M0 steps (Adam: preconditioned by its second moment, as the controller measures). "
            "Estimates: the controller at those parameters held fixed (lr 0, Adam's state frozen), "
            "400 steps of batch 256, EMA decay 0.99, +- its own standard error; `online`: the "
            "default controller's EMA during the training run that reached the point (the "
            "parameters move under it).",
            "",
            "| model | step | brute force | pieces (8 x 32) | split (2 x 128) | consecutive | online |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in noise:
            lines.append(
                f"| {r['problem']} | {r['step']} | {fmt_num(r['brute_force'])} | "
                f"{fmt_num(r['pieces'])} +- {fmt_num(r['pieces_se'])} | "
                f"{fmt_num(r['split'])} +- {fmt_num(r['split_se'])} | "
                f"{fmt_num(r['consecutive'])} +- {fmt_num(r['consecutive_se'])} | {fmt_num(r['online'])} |"
            )
        lines.append("")
    if thr:
        lines += [
            "## Throughput model",
            "",
            "Median step times of each (micro-batch m, accumulation steps s) measured through "
            "the controller; the model was fitted on m in {4, 16, 64, 256} and predicts m in "
            "{8, 32, 128} (s in {0, 1, 3}).",
            "",
            "| model | fit RMSLE | held-out RMSLE | fitted alpha_c (ms) | beta_c (us/example) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in thr:
            p = r["params"] or {}
            lines.append(
                f"| {r['problem']} | {100 * r['fit_rmsle']:.1f}% | {100 * r['rmsle_held_out']:.1f}% | "
                f"{1e3 * p.get('alpha_c', float('nan')):.3f} | {1e6 * p.get('beta_c', float('nan')):.2f} |"
            )
        lines.append("")
    if ov:
        names = list(ov[0]["arms"])
        lines += [
            "## Per-step overhead (one process)",
            "",
            _overhead_protocol("a plain loop (same model, optimizer, batch and data order)")
            + " Arms: `plain again` (a second plain loop: two identical loops read this far "
            "apart, the resolution of the other columns), `default` (a split step every 8th, "
            "measuring the noise from two half micro-batches of the same examples), `auto` "
            '(`measure_every="auto"`: split steps as often as 2% of the training time allows), '
            "`every 32` (a split step every 32nd), `consecutive` (`measure_every=None`: consecutive-step "
            "differences, no extra forward/backward, biased), `auto, no planning` (`auto` with "
            "`adaptive=False`: measurement only). Brackets: the interquartile range over the "
            "rounds. "
            + " ".join(
                f"**{q.name}** (these rows only): {q.about}." for q in OVERHEAD_PROBLEMS.values()
            ),
            "",
            "| model | batch | plain (ms) | " + " | ".join(names) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |",
        ]
        for r in ov:
            lines.append(
                f"| {r['problem']} | {r['batch']} | {r['plain_ms']:.3f} | "
                + " | ".join(_overhead_cell(r["arms"][n]) for n in names)
                + " |"
            )
        lines.append("")
    if ddp:
        lines += [
            "## Two processes (gloo DDP on this machine's CPU)",
            "",
            "The overhead rows with 2 processes (M0 = 16 in total, 8 per process). The two "
            "processes and the other jobs share 2 cores, so these times are noisier still.",
            "",
        ]
        ddp_ov = [r for r in ddp.get("overhead", []) if "wall" in r]
        if ddp_ov:
            names = list(ddp_ov[0]["wall"])
            lines += [
                "Per-step overhead against plain DDP. "
                + _overhead_protocol(
                    "a plain DistributedDataParallel loop (same global batch, each rank its half)"
                )
                + " Times are rank 0's, in wall time and in its main thread's CPU time (what "
                "the controller adds to each step's own work; gloo's threads are not in it). "
                "`plain again`: a second plain DDP loop (the resolution); `default`: a "
                'measured step every 8th; `auto`: `measure_every="auto"`; `auto, no planning`: '
                "`auto` with `adaptive=False` (measurement only).",
                "",
                "| model | batch | plain DDP wall (ms) | "
                + " | ".join(f"{n}, wall" for n in names)
                + " | plain CPU (ms) | "
                + " | ".join(f"{n}, CPU" for n in names)
                + " |",
                "| --- | --- | --- | "
                + " | ".join("---" for _ in range(2 * len(names) + 1))
                + " |",
            ]
            for r in ddp_ov:
                lines.append(
                    f"| {r['problem']} | {r['batch']} | {r['plain_wall_ms']:.3f} | "
                    + " | ".join(_overhead_cell(r["wall"][n]) for n in names)
                    + f" | {r['plain_cpu_ms']:.3f} | "
                    + " | ".join(_overhead_cell(r["cpu"][n]) for n in names)
                    + " |"
                )
            lines.append("")
    lines += ["![goodput](goodput.png)", ""]
    lines += how_it_was_run(
        [
            (
                r["command"],
                "docs/benchmarks",
                f"{r['date']}, {r['minutes']:.0f} min, parts {', '.join(r['parts'])}",
            )
            for r in data["runs"]
        ],
        [f"Machine: {data['machine']}", "torch on one thread per process (benchmarks.common)."],
    )
    (out / "goodput.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--parts", default="noise,throughput,overhead,ddp-overhead")
    ap.add_argument("--from-json", default=None, help="re-render from an earlier JSON")
    ap.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated names")
    ap.add_argument("--ddp-problems", default="mlp-digits,cnn-digits,wide-cnn-adam")
    args = ap.parse_args()
    known = {"noise", "throughput", "overhead", "ddp-overhead"}
    unknown = set(args.parts.split(",")) - known
    if unknown:
        ap.error(f"--parts: unknown {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        single_thread_torch()
        start = time.time()
        parts = set(args.parts.split(","))
        for name in list(PROBLEMS):
            if name not in args.problems.split(","):
                del PROBLEMS[name]
        prev = out / "goodput.json"
        data = json.loads(prev.read_text()) if prev.exists() else {}
        if "noise" in parts:
            data["noise"] = bench_noise(steps=600)
        if "throughput" in parts:
            data["throughput"] = bench_throughput(steps=30)
        if "overhead" in parts:
            data["overhead"] = bench_overhead()
        if "ddp-overhead" in parts:
            data.setdefault("ddp", {})["overhead"] = bench_ddp(args.ddp_problems.split(","))[
                "overhead"
            ]
        data.setdefault("runs", []).append(
            {
                "command": command_line(out),
                "date": now_utc(),
                "minutes": (time.time() - start) / 60,
                "parts": sorted(parts),
            }
        )
        data.update(
            {
                "machine": format_machine(machine_info(("torch", "scipy"))),
                "load_average": os.getloadavg(),
            }
        )
        (out / "goodput.json").write_text(json.dumps(data, default=float))
    _plot(data, out / "goodput.png")
    render(data, out)


if __name__ == "__main__":
    main()
