"""Meta-Weight-Net data reweighting: metatune.mlo vs Betty, TorchOpt and a hand-written baseline.

The task of examples/mlo/reweighting.py: digits with 40% symmetric label noise and 5x class
imbalance, an MLP classifier (64-128-10, SGD lr 0.1, batch 64) trained with per-example weights
from a weight net (1-32-1, Adam 1e-3) that is trained on a clean meta set of 100 examples
(batch 50). Every implementation gets the same data, model initialization, batch order, number of
outer steps (one lower SGD step and one weight-net step each) and seeds. Each (implementation,
seed) runs in a fresh single-threaded subprocess; reported: clean test accuracy, the growth of
peak resident memory during training (ru_maxrss after training minus ru_maxrss just before it,
so imports and data do not count) and wall seconds per outer step.

    python benchmarks/mlo.py                     # full run, writes docs/benchmarks/mlo.{md,json,png}
    python benchmarks/mlo.py --steps 100 --seeds 0 --no-write   # smoke run

Betty (betty-ml 0.1.1, the last release installable on Python >= 3.11) and TorchOpt are peers
listed in the ``bench`` extra; they are never imported by metatune itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples" / "mlo"))

from _common import command_line, machine_info, now_utc, single_thread_env  # noqa: E402

single_thread_env()

IMPLS = (
    "plain",
    "hand-unrolled",
    "torchopt-unrolled",
    "metatune-unrolled",
    "metatune-darts",
    "metatune-neumann",
    "metatune-cg",
    "betty-darts",
    "betty-darts-fixed",
    "betty-neumann",
    "betty-cg",
)
# Same approximation settings for metatune and Betty (darts: radius 0.01, Hessian ~ I;
# Neumann: 3 terms, alpha 0.1; CG: 3 iterations on H x = v).
DARTS_ALPHA = 0.01
NEUMANN = {"iterations": 3, "alpha": 0.1}
CG_ITERS = 3
LR, META_LR, BATCH, META_BATCH = 0.1, 1e-3, 64, 50
WARMUP = 20  # steps excluded from the per-step times (first-call set-up)


def _maxrss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------------------- implementations
def _weighted_loss(model, wnet, X, y):
    import torch.nn.functional as F

    losses = F.cross_entropy(model(X), y, reduction="none")
    weights = wnet(losses.detach())
    return (weights * losses).sum() / weights.detach().sum().clamp_min(1e-8)


def _endless(batches):
    while True:
        yield from batches


def run_plain(data, seed, steps):
    import torch
    import torch.nn.functional as F
    from reweighting import Batches, classifier

    (X_tr, y_tr), _, _ = data
    torch.manual_seed(seed)
    model, _ = classifier(), None
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    it = _endless(Batches(X_tr, y_tr, BATCH, seed))

    def loop(n):
        for _ in range(n):
            X, y = next(it)
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()

    return model, loop


def run_hand(data, seed, steps):
    """One differentiable SGD step with torch.autograd.grad, meta gradient, then keep the step."""
    import torch
    import torch.nn.functional as F
    from reweighting import Batches, WeightNet, classifier
    from torch.func import functional_call

    (X_tr, y_tr), (X_m, y_m), _ = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()
    meta_opt = torch.optim.Adam(wnet.parameters(), lr=META_LR)
    train = _endless(Batches(X_tr, y_tr, BATCH, seed))
    meta = _endless(Batches(X_m, y_m, META_BATCH, seed + 1))
    names = [n for n, _ in model.named_parameters()]

    def loop(n):
        for _ in range(n):
            X, y = next(train)
            params = list(model.parameters())
            loss = _weighted_loss(model, wnet, X, y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            new = [p - LR * g for p, g in zip(params, grads, strict=True)]
            Xm, ym = next(meta)
            meta_loss = F.cross_entropy(
                functional_call(model, dict(zip(names, new, strict=True)), (Xm,)), ym
            )
            meta_opt.zero_grad()
            meta_loss.backward(inputs=list(wnet.parameters()))
            meta_opt.step()
            with torch.no_grad():
                for p, n in zip(params, new, strict=True):
                    p.copy_(n)

    return model, loop


def run_torchopt(data, seed, steps):
    import torch
    import torch.nn.functional as F
    import torchopt
    from reweighting import Batches, WeightNet, classifier

    (X_tr, y_tr), (X_m, y_m), _ = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()
    inner = torchopt.MetaSGD(model, lr=LR)
    meta_opt = torch.optim.Adam(wnet.parameters(), lr=META_LR)
    train = _endless(Batches(X_tr, y_tr, BATCH, seed))
    meta = _endless(Batches(X_m, y_m, META_BATCH, seed + 1))

    def loop(n):
        for _ in range(n):
            X, y = next(train)
            inner.step(_weighted_loss(model, wnet, X, y))  # differentiable in-place step
            Xm, ym = next(meta)
            meta_loss = F.cross_entropy(model(Xm), ym)
            meta_opt.zero_grad()
            meta_loss.backward(inputs=list(wnet.parameters()))
            meta_opt.step()
            torchopt.stop_gradient(model)
            torchopt.stop_gradient(inner)

    return model, loop


def run_metatune(data, seed, steps, method):
    import torch
    from reweighting import Batches, Classifier, Reweight, WeightNet, classifier

    from metatune.mlo import Config, Engine, EngineConfig

    (X_tr, y_tr), (X_m, y_m), _ = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()
    options = {
        "unrolled": {},
        "darts": {"alpha": DARTS_ALPHA},
        "neumann": dict(NEUMANN),
        "cg": {"iterations": CG_ITERS},
    }[method]
    inner = Classifier(
        "classifier",
        model,
        torch.optim.SGD(model.parameters(), lr=LR),
        data=Batches(X_tr, y_tr, BATCH, seed),
        config=Config(method=method, options=options, unroll_steps=1),
    )
    outer = Reweight(
        "reweight",
        wnet,
        torch.optim.Adam(wnet.parameters(), lr=META_LR),
        data=Batches(X_m, y_m, META_BATCH, seed + 1),
    )
    engine = Engine(
        [inner, outer],
        {"u2l": {"reweight": ["classifier"]}, "l2u": {"classifier": ["reweight"]}},
        EngineConfig(train_iters=steps, log_step=100),  # Betty's default logs no losses
    )

    def loop(n):
        engine.config.train_iters = engine.global_step + n
        engine.run()

    return model, loop


def run_betty(data, seed, steps, method):
    import torch
    import torch.nn.functional as F
    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.problems import ImplicitProblem
    from reweighting import Batches, WeightNet, classifier

    (X_tr, y_tr), (X_m, y_m), _ = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()

    class BClassifier(ImplicitProblem):
        def training_step(self, batch):
            X, y = batch
            losses = F.cross_entropy(self.module(X), y, reduction="none")
            weights = self.reweight(losses.detach())
            return (weights * losses).sum() / weights.detach().sum().clamp_min(1e-8)

    class BReweight(ImplicitProblem):
        def training_step(self, batch):
            X, y = batch
            return F.cross_entropy(self.classifier(X), y)

    if method == "darts-fixed":
        # betty-ml 0.1.1's darts leaves the lower parameters at w - eps * v: its "reverse weight
        # change" calls the out-of-place p.data.add(...). Restore them, as intended.
        import betty.hypergradient as bh

        original = bh.darts

        def darts_fixed(vector, curr, prev):
            saved = [p.data.clone() for p in curr.trainable_parameters()]
            out = original(vector, curr, prev)
            for p, old in zip(curr.trainable_parameters(), saved, strict=True):
                p.data.copy_(old)
            return out

        bh.jvp_fn_mapping["darts"] = darts_fixed
        method = "darts"
    cfg = {
        "darts": {"type": "darts", "darts_alpha": DARTS_ALPHA},
        "neumann": {
            "type": "neumann",
            "neumann_iterations": NEUMANN["iterations"],
            "neumann_alpha": NEUMANN["alpha"],
        },
        "cg": {"type": "cg", "cg_iterations": CG_ITERS, "cg_alpha": 1.0},
    }[method]
    inner = BClassifier(
        name="classifier",
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=LR),
        train_data_loader=Batches(X_tr, y_tr, BATCH, seed),
        config=Config(unroll_steps=1, **cfg),
        device="cpu",
    )
    outer = BReweight(
        name="reweight",
        module=wnet,
        optimizer=torch.optim.Adam(wnet.parameters(), lr=META_LR),
        train_data_loader=Batches(X_m, y_m, META_BATCH, seed + 1),
        config=Config(),
        device="cpu",
    )
    engine = Engine(
        problems=[inner, outer],
        dependencies={"u2l": {outer: [inner]}, "l2u": {inner: [outer]}},
        config=EngineConfig(train_iters=steps, valid_step=10**9),
    )

    def loop(n):
        engine.train_iters = n
        engine.run()

    return (lambda: inner.module), loop


def worker(impl: str, seed: int, steps: int) -> dict:
    import torch
    from reweighting import accuracy, make_data

    torch.set_num_threads(1)
    data = make_data(seed)
    family, _, method = impl.partition("-")
    if impl == "plain":
        model, loop = run_plain(data, seed, steps)
    elif family == "hand":
        model, loop = run_hand(data, seed, steps)
    elif family == "torchopt":
        model, loop = run_torchopt(data, seed, steps)
    elif family == "metatune":
        model, loop = run_metatune(data, seed, steps, method)
    elif family == "betty":
        model, loop = run_betty(data, seed, steps, method)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    warm = min(WARMUP, steps // 2)
    before = _maxrss_kib()
    t0 = time.perf_counter()
    loop(warm)
    after_warm = _maxrss_kib()
    t1, c1 = time.perf_counter(), time.process_time()
    loop(steps - warm)
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
    total_seconds = time.perf_counter() - t0
    peak = _maxrss_kib()
    if callable(model) and not isinstance(model, torch.nn.Module):
        model = model()
    _, _, (X_te, y_te) = data
    model.eval()
    return {
        "impl": impl,
        "seed": seed,
        "steps": steps,
        "accuracy": accuracy(model, X_te, y_te),
        "peak_rss_delta_mib": (peak - before) / 1024.0,
        "rss_growth_after_warmup_mib": (peak - after_warm) / 1024.0,
        "sec_per_step": seconds / (steps - warm),
        "cpu_sec_per_step": cpu / (steps - warm),
        "total_wall_s": total_seconds,
    }


# ---------------------------------------------------------------------------- driver
def run_one(impl: str, seed: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, str(seed), str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"impl": impl, "seed": seed, "steps": steps, "error": lines[-1] if lines else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(rows: list[dict]) -> dict[str, dict]:
    import numpy as np

    out: dict[str, dict] = {}
    for impl in dict.fromkeys(r["impl"] for r in rows):
        rs = [r for r in rows if r["impl"] == impl]
        errors = [r["error"] for r in rs if "error" in r]
        ok = [r for r in rs if "error" not in r]
        s: dict = {"n": len(ok), "errors": errors}
        for key in (
            "accuracy",
            "peak_rss_delta_mib",
            "rss_growth_after_warmup_mib",
            "sec_per_step",
            "cpu_sec_per_step",
        ):
            vals = np.array([r[key] for r in ok], dtype=float)
            if len(vals):
                s[key] = {
                    "median": float(np.median(vals)),
                    "min": float(vals.min()),
                    "max": float(vals.max()),
                }
        out[impl] = s
    return out


def _cell(s: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    if key not in s:
        return "n/a"
    v = {k: x * scale for k, x in s[key].items()}
    return f"{v['median']:{fmt}} [{v['min']:{fmt}}, {v['max']:{fmt}}]"


def write_outputs(payload: dict, notes: str | None) -> None:
    out_dir = ROOT / "docs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mlo.json").write_text(json.dumps(payload, indent=1))
    info, args, summary = (
        payload["machine"],
        argparse.Namespace(**payload["args"]),
        payload["summary"],
    )
    elapsed = payload["elapsed_s"]
    lines = [
        "# Multilevel optimization benchmark: Meta-Weight-Net data reweighting",
        "",
        f"Command: `{payload['command']}` ({elapsed / 60:.1f} min in all)  ",
        f"Date: {payload['date']}  ",
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs ({info['cpu']}), "
        f"Python {info['python']}; each run single-threaded in a fresh subprocess, runs one after "
        "another on a machine shared with other jobs (timings are noisy)  ",
        "Versions: "
        + ", ".join(f"{k} {info.get(k)}" for k in ("metatune", "torch", "betty-ml", "torchopt")),
        "",
        "Task (examples/mlo/reweighting.py): digits, 40% symmetric label noise, 5x class "
        "imbalance; MLP 64-128-10 (SGD lr 0.1, batch 64) with per-example weights from a "
        "1-32-1 weight net (Adam 1e-3) trained on a clean meta set (100 examples, batch 50). "
        f"{args.steps} outer steps (one classifier step + one weight-net step each), seeds "
        f"{', '.join(map(str, args.seeds))}; the same data, initialization and batch order for "
        "every implementation. Approximation settings shared by metatune and Betty: darts radius "
        f"{DARTS_ALPHA}; Neumann {NEUMANN['iterations']} terms, alpha {NEUMANN['alpha']}; CG "
        f"{CG_ITERS} iterations.",
        "",
        "Cells: median [min, max] over seeds. Peak memory = growth of the process's peak resident "
        "set (getrusage ru_maxrss) from just before the training loop to just after it, in MiB; "
        "imports, data and model set-up are excluded, so it measures what the training loop "
        "allocates beyond them (tracemalloc would miss torch's C++ allocations). With a model "
        "this small the numbers are a few MiB and allocator-noisy; read differences under ~1 MiB "
        "as ties.",
        "",
        "| implementation | clean test accuracy | peak RSS growth (MiB) | of which after warm-up "
        "(MiB) | CPU ms / outer step | wall ms / outer step |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for impl, s in summary.items():
        if s["n"] == 0:
            lines.append(f"| {impl} | could not run: `{s['errors'][0]}` | n/a | n/a | n/a | n/a |")
            continue
        lines.append(
            f"| {impl} | {_cell(s, 'accuracy', '.3f')} | {_cell(s, 'peak_rss_delta_mib', '.1f')} "
            f"| {_cell(s, 'rss_growth_after_warmup_mib', '.2f')} "
            f"| {_cell(s, 'cpu_sec_per_step', '.2f', 1e3)} | {_cell(s, 'sec_per_step', '.2f', 1e3)} |"
        )
    failed = [(i, s) for i, s in summary.items() if s["errors"] and s["n"] > 0]
    for impl, s in failed:
        lines.append(f"\n{impl}: {len(s['errors'])} run(s) failed: `{s['errors'][0]}`")
    lines += ["", "![accuracy, CPU seconds per outer step, peak RSS growth](mlo.png)", ""]
    if notes:
        lines += [Path(notes).read_text().rstrip(), ""]
    (out_dir / "mlo.md").write_text("\n".join(lines))
    plot(summary, out_dir / "mlo.png")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, s in summary.items() if s["n"] > 0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, key, label in zip(
        axes,
        ("accuracy", "cpu_sec_per_step", "peak_rss_delta_mib"),
        ("clean test accuracy", "CPU seconds / outer step", "peak RSS growth (MiB)"),
        strict=True,
    ):
        med = [summary[n][key]["median"] for n in names]
        lo = [summary[n][key]["median"] - summary[n][key]["min"] for n in names]
        hi = [summary[n][key]["max"] - summary[n][key]["median"] for n in names]
        colors = [
            "tab:blue"
            if n.startswith("metatune")
            else "tab:orange"
            if n.startswith("betty")
            else "tab:gray"
            for n in names
        ]
        ax.barh(names, med, xerr=[lo, hi], color=colors, capsize=3)
        ax.set_xlabel(label)
        if key == "accuracy":
            ax.set_xlim(min(med) - 0.05, min(1.0, max(med) + 0.03))
    axes[0].invert_yaxis()
    fig.suptitle("Meta-Weight-Net reweighting on noisy digits (median, min-max over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--notes", help="markdown file appended to docs/benchmarks/mlo.md")
    ap.add_argument(
        "--render", action="store_true", help="rewrite mlo.md/png from docs/benchmarks/mlo.json"
    )
    ap.add_argument("--worker", nargs=3, metavar=("IMPL", "SEED", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        impl, seed, steps = args.worker
        print(json.dumps(worker(impl, int(seed), int(steps))))
        return
    if args.render:
        payload = json.loads((ROOT / "docs" / "benchmarks" / "mlo.json").read_text())
        write_outputs(payload, args.notes)
        return
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for impl in args.impls:
            r = run_one(impl, seed, args.steps)
            rows.append(r)
            if "error" in r:
                print(f"{impl:18s} seed {seed}: ERROR {r['error']}", flush=True)
            else:
                print(
                    f"{impl:18s} seed {seed}: acc {r['accuracy']:.4f}  "
                    f"rss +{r['peak_rss_delta_mib']:.1f} MiB  {r['cpu_sec_per_step'] * 1e3:.2f} "
                    f"cpu-ms/step  {r['sec_per_step'] * 1e3:.2f} ms/step",
                    flush=True,
                )
    summary = summarize(rows)
    elapsed = time.perf_counter() - t0
    print(f"total {elapsed:.0f} s")
    if not args.no_write:
        payload = {
            "command": command_line(),
            "date": now_utc(),
            "elapsed_s": elapsed,
            "machine": machine_info(("torch", "betty-ml", "torchopt", "numpy")),
            "args": {k: v for k, v in vars(args).items() if k not in ("worker", "render")},
            "rows": rows,
            "summary": summary,
        }
        write_outputs(payload, args.notes)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
