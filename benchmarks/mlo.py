"""Meta-Weight-Net data reweighting: metatune.mlo vs Betty, TorchOpt and a hand-written baseline.

The task of examples/mlo/reweighting.py: digits with 40% symmetric label noise and 5x class
imbalance, an MLP classifier (64-128-10, SGD lr 0.1, batch 64) trained with per-example weights
from a weight net (1-32-1, Adam 1e-3) that is trained on a clean meta set of 100 examples
(batch 50). Every implementation gets the same data, model initialization, batch order, number of
outer steps (one lower SGD step and one weight-net step each) and seeds. Each (implementation,
seed) runs in a fresh single-threaded subprocess; reported: clean test accuracy, the growth of
peak resident memory during training (ru_maxrss after training minus ru_maxrss just before it,
so imports and data do not count), CPU and wall seconds per outer step, and, from a second,
separate subprocess that replays the same run under torch.profiler, the peak of live tensor
memory over a window of outer steps (see ``profile_tensor_memory``).

    python benchmarks/mlo.py                     # full run, writes docs/benchmarks/mlo.{md,json,png}
    python benchmarks/mlo.py --steps 100 --seeds 0 --no-write   # smoke run
    python benchmarks/mlo.py --cg-study          # metatune-cg / betty-cg accuracy vs CG iterations

Betty (betty-ml 0.1.1, the last release installable on Python >= 3.11) and TorchOpt are peers
listed in the ``bench`` extra; they are never imported by metatune itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from metatune.benchmarks.common import (
    command_line,
    how_it_was_run,
    machine_info,
    now_utc,
    repo_relative,
    single_thread_env,
)

ROOT = Path(__file__).resolve().parents[1]
TASK_FILE = ROOT / "examples" / "mlo" / "reweighting.py"  # the task every implementation runs

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
MEM_WINDOW = 20  # outer steps after the warm-up over which peak live tensor memory is measured
WINDOW_MARK = "mlo_bench_memory_window"
# (iterations, damping) settings of the CG study (--cg-study); damping only exists in metatune
CG_STUDY = ((1, 0.0), (3, 0.0), (5, 0.0), (10, 0.0), (3, 0.1), (10, 0.1), (3, 1.0), (10, 1.0))


def _task(*names: str) -> tuple[Any, ...]:
    """Names from examples/mlo/reweighting.py, loaded once from its file (the examples are
    scripts, not a package)."""
    module_name = "_mlo_bench_reweighting"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, TASK_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # classes of the example look their module up there
        spec.loader.exec_module(module)
    module = sys.modules[module_name]
    return tuple(getattr(module, n) for n in names)


def _maxrss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------------------- tensor memory
def live_bytes_window(events, start_ns: int, end_ns: int) -> tuple[int, int]:
    """Peak and final live bytes in ``[start_ns, end_ns]``, both relative to the live bytes at start.

    ``events`` are ``(time_ns, nbytes)`` allocator records: ``nbytes > 0`` an allocation,
    ``< 0`` a free. Live bytes at time t = the sum of all records up to t, in time order (records
    with equal times keep their given order). Returns ``(peak - live(start), live(end) -
    live(start))``; the peak is never below the live bytes at the start, so the first is >= 0.
    """
    ordered = sorted(events, key=lambda e: e[0])  # stable: equal times keep the record order
    live = 0
    i = 0
    while i < len(ordered) and ordered[i][0] < start_ns:
        live += ordered[i][1]
        i += 1
    base = peak = live
    while i < len(ordered) and ordered[i][0] <= end_ns:
        live += ordered[i][1]
        peak = max(peak, live)
        i += 1
    return peak - base, live - base


def profile_tensor_memory(loop, warm: int, window: int) -> tuple[int, int]:
    """Run ``loop(warm)`` then ``loop(window)`` under the CPU profiler with memory profiling.

    Returns ``live_bytes_window`` over the second call: the peak growth of live CPU tensor
    memory during those ``window`` outer steps over the live bytes when they started, and what
    is still live at their end. The records are the "[memory]" events torch's CPU allocator
    reports while ``profile_memory=True`` (bytes per allocation, negative per free), read from
    the raw profiler result that ``prof.events()`` is built from; ``prof.events()`` itself folds
    allocations made inside an op into that op's ``cpu_memory_usage`` (and its parents'), so it
    cannot give a timeline. Tensors allocated before the profiler started are invisible (their
    frees are not reported), hence profiling already covers the ``warm`` steps and the window is
    marked with ``record_function``.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loop(warm)
        with record_function(WINDOW_MARK):
            loop(window)
    events = prof.profiler.kineto_results.events()
    mark = next(e for e in events if e.name() == WINDOW_MARK)
    mem = [
        (e.start_ns(), e.nbytes())
        for e in events
        if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    return live_bytes_window(mem, mark.start_ns(), mark.end_ns())


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

    Batches, classifier = _task("Batches", "classifier")

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
    from torch.func import functional_call

    Batches, WeightNet, classifier = _task("Batches", "WeightNet", "classifier")

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

    Batches, WeightNet, classifier = _task("Batches", "WeightNet", "classifier")

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


def run_metatune(data, seed, steps, method, cg_iters=CG_ITERS, cg_damping=0.0):
    import torch

    from metatune.mlo import Config, Engine, EngineConfig

    Batches, Classifier, Reweight, WeightNet, classifier = _task(
        "Batches", "Classifier", "Reweight", "WeightNet", "classifier"
    )

    (X_tr, y_tr), (X_m, y_m), _ = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()
    options = {
        "unrolled": {},
        "darts": {"alpha": DARTS_ALPHA},
        "neumann": dict(NEUMANN),
        "cg": {"iterations": cg_iters, "damping": cg_damping},
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


def run_betty(data, seed, steps, method, cg_iters=CG_ITERS):
    import torch
    import torch.nn.functional as F
    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.problems import ImplicitProblem

    Batches, WeightNet, classifier = _task("Batches", "WeightNet", "classifier")

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
        "cg": {"type": "cg", "cg_iterations": cg_iters, "cg_alpha": 1.0},
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


def worker(
    impl: str,
    seed: int,
    steps: int,
    memory: bool = False,
    cg_iters: int = CG_ITERS,
    cg_damping: float = 0.0,
) -> dict:
    """One run. ``memory``: instead of the timed run, profile tensor memory over WARMUP +
    MEM_WINDOW steps (a separate process, so profiling never enters the timed steps)."""
    import torch

    accuracy, make_data = _task("accuracy", "make_data")

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
        model, loop = run_metatune(data, seed, steps, method, cg_iters, cg_damping)
    elif family == "betty":
        model, loop = run_betty(data, seed, steps, method, cg_iters)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    warm = min(WARMUP, steps // 2)
    if memory:
        window = min(MEM_WINDOW, steps - warm)
        peak, retained = profile_tensor_memory(loop, warm, window)
        return {
            "impl": impl,
            "seed": seed,
            "memory_steps": (warm, window),
            "peak_tensor_mib": peak / 2**20,
            "retained_tensor_kib": retained / 1024.0,
        }
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
def _subprocess(impl: str, seed: int, steps: int, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, str(seed), str(steps), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"impl": impl, "seed": seed, "steps": steps, "error": lines[-1] if lines else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_one(
    impl: str,
    seed: int,
    steps: int,
    memory: bool = True,
    cg_iters: int = CG_ITERS,
    cg_damping: float = 0.0,
) -> dict:
    """The timed run, then (``memory``) the profiled tensor-memory run in another subprocess."""
    cg = ["--cg-iters", str(cg_iters), "--cg-damping", repr(cg_damping)]
    row = _subprocess(impl, seed, steps, cg)
    if memory and "error" not in row:
        mem = _subprocess(impl, seed, WARMUP + MEM_WINDOW, [*cg, "--memory-pass"])
        if "error" in mem:
            row["memory_error"] = mem["error"]
        else:
            row.update({k: mem[k] for k in ("peak_tensor_mib", "retained_tensor_kib")})
    return row


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
            "peak_tensor_mib",
            "sec_per_step",
            "cpu_sec_per_step",
        ):
            vals = np.array([r[key] for r in ok if key in r], dtype=float)
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


PAIRS = (
    ("darts", "metatune-darts", "betty-darts"),
    ("darts", "metatune-darts", "betty-darts-fixed"),
    ("neumann", "metatune-neumann", "betty-neumann"),
    ("cg", "metatune-cg", "betty-cg"),
)


def _versus(summary: dict) -> list[str]:
    """metatune vs Betty per hypergradient method: medians side by side."""
    cols = (
        ("accuracy", ".3f", 1.0, "higher"),
        ("cpu_sec_per_step", ".2f", 1e3, "lower"),
        ("peak_tensor_mib", ".0f", 1024.0, "lower"),
        ("peak_rss_delta_mib", ".1f", 1.0, "lower"),
    )
    lines = [
        "metatune vs Betty per hypergradient method (medians over seeds, metatune / Betty):",
        "",
        "| method | Betty row | clean test accuracy | CPU ms / outer step "
        "| peak live tensor memory (KiB) | peak RSS growth (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, ours, theirs in PAIRS:
        a, b = summary.get(ours), summary.get(theirs)
        if not a or not b or not a["n"] or not b["n"]:
            continue
        cells = []
        for key, fmt, scale, _ in cols:
            if key not in a or key not in b:
                cells.append("n/a")
                continue
            x, y = a[key]["median"] * scale, b[key]["median"] * scale
            cells.append(f"{x:{fmt}} / {y:{fmt}}")
        lines.append(f"| {method} | {theirs} | " + " | ".join(cells) + " |")
    return lines


def _existing_notes(path: Path) -> str | None:
    """The "## Notes" section of an existing mlo.md (up to "## How it was run"), kept when no
    --notes file is given."""
    if not path.exists():
        return None
    text = path.read_text()
    i = text.find("\n## Notes")
    if i < 0:
        return None
    return text[i + 1 :].split("\n## How it was run\n", 1)[0]


def same_accuracy(rows: list[dict]) -> list[list[str]]:
    """Groups of two or more implementations with the same accuracy on every seed (in IMPLS
    order): they compute the same hypergradient."""
    per: dict[str, dict[int, float]] = {}
    failed = {r["impl"] for r in rows if "error" in r}
    for r in rows:
        if "error" not in r:
            per.setdefault(r["impl"], {})[r["seed"]] = r["accuracy"]
    groups: dict[tuple, list[str]] = {}
    for impl, accs in per.items():
        if impl not in failed:
            groups.setdefault(tuple(sorted(accs.items())), []).append(impl)
    return [g for g in groups.values() if len(g) > 1]


def what_it_means(rows: list[dict]) -> str:
    """The page's "What it means" paragraph, read off the runs."""

    def _and(items: list[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    groups = same_accuracy(rows)
    if not groups:
        return (
            "What it means: no two implementations gave the same accuracy on every seed; "
            "compare their cost columns with that in mind."
        )
    return (
        "What it means: implementations with the same clean test accuracy on every seed compute "
        "the same hypergradient: "
        + "; ".join(_and(g) for g in groups)
        + ". Between those, the CPU time and peak live tensor memory columns compare the cost of "
        "one result."
    )


def write_outputs(payload: dict, notes: str | None, rendered_by: str | None = None) -> None:
    """mlo.json, mlo.md and mlo.png. `rendered_by`: the command that re-rendered the page from
    mlo.json (``--render``), if one did."""
    out_dir = ROOT / "docs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    notes_text = Path(notes).read_text() if notes else _existing_notes(out_dir / "mlo.md")
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
        "| implementation | clean test accuracy | CPU ms / outer step | wall ms / outer step "
        "| peak live tensor memory (KiB) | peak RSS growth (MiB) | of which after warm-up (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for impl, s in summary.items():
        if s["n"] == 0:
            lines.append(
                f"| {impl} | could not run: `{s['errors'][0]}` | n/a | n/a | n/a | n/a | n/a |"
            )
            continue
        lines.append(
            f"| {impl} | {_cell(s, 'accuracy', '.3f')} "
            f"| {_cell(s, 'cpu_sec_per_step', '.2f', 1e3)} | {_cell(s, 'sec_per_step', '.2f', 1e3)} "
            f"| {_cell(s, 'peak_tensor_mib', '.0f', 1024.0)} "
            f"| {_cell(s, 'peak_rss_delta_mib', '.1f')} "
            f"| {_cell(s, 'rss_growth_after_warmup_mib', '.2f')} |"
        )
    failed = [(i, s) for i, s in summary.items() if s["errors"] and s["n"] > 0]
    for impl, s in failed:
        lines.append(f"\n{impl}: {len(s['errors'])} run(s) failed: `{s['errors'][0]}`")
    lines += ["", *_versus(summary)]
    lines += [
        "",
        "![accuracy, CPU seconds per outer step, peak live tensor memory, peak RSS growth](mlo.png)",
        "",
        what_it_means(payload["rows"]),
        "",
        "Cells: median [min, max] over seeds. Two memory metrics: **peak live tensor memory** = "
        "the peak, over outer steps "
        f"{WARMUP + 1}-{WARMUP + MEM_WINDOW}, of the bytes held by live CPU tensors minus those "
        "live when step "
        f"{WARMUP + 1} began, in KiB, reconstructed from the allocation and free records of "
        "torch's CPU allocator under `torch.profiler.profile(profile_memory=True)` in a separate "
        "run of the same seed (so the profiler never enters the timed steps); it is what one "
        "outer step allocates at its worst moment (parameters, optimizer state and data that "
        "persist across steps are in the baseline). **Peak RSS growth** = growth of the "
        "process's peak resident set (getrusage ru_maxrss) from just before the training loop "
        "to just after it, in MiB, in the timed run; it is dominated by libtorch code pages "
        "loaded on the first step (see Notes), so read differences under ~1 MiB as ties.",
        "",
    ]
    if notes_text:
        lines += [notes_text.rstrip(), ""]
    task = (
        "Task (examples/mlo/reweighting.py): digits, 40% symmetric label noise, 5x class "
        "imbalance; MLP 64-128-10 (SGD lr 0.1, batch 64) with per-example weights from a "
        "1-32-1 weight net (Adam 1e-3) trained on a clean meta set (100 examples, batch 50). "
        f"{args.steps} outer steps (one classifier step + one weight-net step each), seeds "
        f"{', '.join(map(str, args.seeds))}; the same data, initialization and batch order for "
        "every implementation. Approximation settings shared by metatune and Betty: darts radius "
        f"{DARTS_ALPHA}; Neumann {NEUMANN['iterations']} terms, alpha {NEUMANN['alpha']}; CG "
        f"{getattr(args, 'cg_iters', CG_ITERS)} iterations"
        + (f" (metatune damping {args.cg_damping:g})." if getattr(args, "cg_damping", 0.0) else ".")
    )
    here = repo_relative(out_dir)
    commands = [(payload["command"], here, f"{payload['date']}, {elapsed / 60:.1f} min in all")]
    if rendered_by:
        commands.append((rendered_by, here, "rendered this page again from mlo.json"))
    facts = [
        f"{'Machine of the run' if rendered_by else 'Machine'}: {info['platform']}, "
        f"{info['cpu_count']} CPUs ({info['cpu']}), "
        f"Python {info['python']}; each run single-threaded in a fresh subprocess, runs one after "
        "another on a machine shared with other jobs (timings are noisy)",
        "Versions: "
        + ", ".join(f"{k} {info.get(k)}" for k in ("metatune", "torch", "betty-ml", "torchopt")),
    ]
    lines += how_it_was_run(commands, facts, [task])
    (out_dir / "mlo.md").write_text("\n".join(lines) + "\n")
    plot(summary, out_dir / "mlo.png")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, s in summary.items() if s["n"] > 0]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), sharey=True)
    for ax, key, label, scale in zip(
        axes,
        ("accuracy", "cpu_sec_per_step", "peak_tensor_mib", "peak_rss_delta_mib"),
        (
            "clean test accuracy",
            "CPU ms / outer step",
            "peak live tensor memory (KiB)",
            "peak RSS growth (MiB)",
        ),
        (1.0, 1e3, 1024.0, 1.0),
        strict=True,
    ):
        st = {n: summary[n].get(key, {"median": 0.0, "min": 0.0, "max": 0.0}) for n in names}
        med = [st[n]["median"] * scale for n in names]
        lo = [(st[n]["median"] - st[n]["min"]) * scale for n in names]
        hi = [(st[n]["max"] - st[n]["median"]) * scale for n in names]
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


def cg_study(steps: int, seeds: list[int]) -> None:
    """Clean test accuracy of metatune-cg (and betty-cg, no damping) per CG setting, as markdown."""
    import numpy as np

    lines = [
        "| CG iterations | damping | metatune-cg accuracy per seed | median "
        "| betty-cg accuracy per seed | median |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for iters, damping in CG_STUDY:
        cells = []
        for impl in ("metatune-cg", "betty-cg"):
            if impl == "betty-cg" and damping:
                cells += ["n/a", "n/a"]
                continue
            accs = []
            for seed in seeds:
                r = run_one(impl, seed, steps, memory=False, cg_iters=iters, cg_damping=damping)
                accs.append(r.get("accuracy", float("nan")))
                print(
                    f"{impl} iters {iters} damping {damping} seed {seed}: {accs[-1]:.4f}",
                    flush=True,
                )
            cells += [", ".join(f"{a:.3f}" for a in accs), f"{np.median(accs):.3f}"]
        lines.append(f"| {iters} | {damping:g} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


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
    ap.add_argument("--cg-iters", type=int, default=CG_ITERS, help="CG iterations (both)")
    ap.add_argument("--cg-damping", type=float, default=0.0, help="metatune-cg damping")
    ap.add_argument(
        "--cg-study",
        action="store_true",
        help="print accuracies of metatune-cg and betty-cg over CG_STUDY settings; writes nothing",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the profiled memory runs")
    ap.add_argument("--worker", nargs=3, metavar=("IMPL", "SEED", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--memory-pass", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        impl, seed, steps = args.worker
        row = worker(impl, int(seed), int(steps), args.memory_pass, args.cg_iters, args.cg_damping)
        print(json.dumps(row))
        return
    if args.cg_study:
        cg_study(args.steps, args.seeds)
        return
    if args.render:
        payload = json.loads((ROOT / "docs" / "benchmarks" / "mlo.json").read_text())
        write_outputs(payload, args.notes, rendered_by=command_line(ROOT / "docs" / "benchmarks"))
        return
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for impl in args.impls:
            r = run_one(impl, seed, args.steps, not args.no_memory, args.cg_iters, args.cg_damping)
            rows.append(r)
            if "error" in r:
                print(f"{impl:18s} seed {seed}: ERROR {r['error']}", flush=True)
            else:
                print(
                    f"{impl:18s} seed {seed}: acc {r['accuracy']:.4f}  "
                    f"rss +{r['peak_rss_delta_mib']:.1f} MiB  {r['cpu_sec_per_step'] * 1e3:.2f} "
                    f"cpu-ms/step  {r['sec_per_step'] * 1e3:.2f} ms/step  "
                    f"tensor peak {r.get('peak_tensor_mib', float('nan')):.3f} MiB",
                    flush=True,
                )
    summary = summarize(rows)
    elapsed = time.perf_counter() - t0
    print(f"total {elapsed:.0f} s")
    if not args.no_write:
        payload = {
            "command": command_line(ROOT / "docs" / "benchmarks"),
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
    single_thread_env()
    main()
