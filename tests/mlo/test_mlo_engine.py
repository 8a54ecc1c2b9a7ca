"""Engine behaviour: graph checks, scheduling, several lowers, logging, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from mlo_testlib import (
    DT,
    Params,
    RidgeInner,
    RidgeOuter,
    ridge_data,
    ridge_engine,
    ridge_exact_hypergradient,
    ridge_lr,
    ridge_solution,
)

from metatune.mlo import Config, Engine, EngineConfig, Problem, register_hypergradient


class _Noop(Problem):
    def training_step(self, batch):
        return (self.module.x**2).sum()


def _noops(*names):
    out = []
    for n in names:
        mod = Params(x=torch.ones(2))
        out.append(_Noop(n, mod, torch.optim.SGD(mod.parameters(), lr=0.1)))
    return out


def test_cycle_is_refused_with_its_names():
    a, b, c = _noops("a", "b", "c")
    with pytest.raises(ValueError, match=r"cycle: .*a.*b.*c|cycle: .*b.*c.*a|cycle: .*c.*a.*b"):
        Engine([a, b, c], {"u2l": {"a": ["b"], "b": ["c"], "c": ["a"]}})
    with pytest.raises(ValueError, match="cycle"):
        Engine(_noops("a", "b"), {"u2l": {"a": ["b"]}, "l2u": {"a": ["b"]}})
    with pytest.raises(ValueError, match="itself"):
        Engine(_noops("a"), {"u2l": {"a": ["a"]}})


def test_unknown_names_are_refused():
    a, b = _noops("a", "b")
    with pytest.raises(ValueError, match="'nope'"):
        Engine([a, b], {"u2l": {"a": ["nope"]}})
    with pytest.raises(ValueError, match="'ghost'"):
        Engine(_noops("a", "b"), {"l2u": {"ghost": ["a"]}})
    with pytest.raises(ValueError, match="unknown key"):
        Engine(_noops("a", "b"), {"up": {"a": ["b"]}})
    x, y = _noops("x", "y")
    x.config = Config(method="no-such-method")
    with pytest.raises(ValueError, match="no-such-method"):
        Engine([x, y], {"u2l": {"y": ["x"]}, "l2u": {"x": ["y"]}})
    with pytest.raises(ValueError, match="duplicate"):
        Engine(_noops("a", "a"))


def test_bad_config_and_names():
    with pytest.raises(ValueError, match="unroll_steps"):
        Config(unroll_steps=0)
    with pytest.raises(ValueError, match="precision"):
        Config(precision="fp8")
    with pytest.raises(ValueError, match="train_iters"):
        EngineConfig(train_iters=-1)
    with pytest.raises(ValueError, match="clashes"):
        _Noop("module", Params(x=torch.ones(1)))
    (p,) = _noops("p")
    with pytest.raises(NotImplementedError):
        Problem("q", Params(x=torch.ones(1))).training_step(None)
    with pytest.raises(AttributeError, match="nobody"):
        _ = p.nobody


def test_peers_resolved_by_name_and_paths():
    engine, _ = ridge_engine("cg")
    inner, outer = engine.problems["inner"], engine.problems["outer"]
    assert inner.outer is outer and outer.inner is inner
    assert engine.paths("outer") == [["inner", "outer"]]
    assert engine.order.index("inner") < engine.order.index("outer")


def test_schedule_unroll_warmup_and_loss_logging():
    seen = []
    engine, _ = ridge_engine("darts", unroll=3, converged=False, outer_lr=0.01, train_iters=30)
    engine.config.logger = lambda name, step, metrics: seen.append((name, step))
    engine.problems["inner"].config.warmup_steps = 6
    engine.run()
    inner, outer = engine.problems["inner"], engine.problems["outer"]
    assert inner.step_count == 30
    assert outer.step_count == (30 - 6) // 3
    assert [s for s, _ in engine.losses["outer"]] == list(range(9, 31, 3))
    assert len(engine.losses["inner"]) == 30
    assert ("outer", 9) in seen


def test_several_lowers_under_one_upper():
    # two ridge problems share one penalty; the outer sums their validation losses
    log_lam = math.log(0.5)
    probs, outer_batch, exact = [], [], 0.0
    outer_mod = Params(log_lam=torch.tensor(log_lam))
    for i, name in enumerate(("inner_a", "inner_b")):
        X, y, Xv, yv = ridge_data(seed=10 + i)
        w, _ = ridge_solution(X, y, math.exp(log_lam))
        mod = Params(w=w)
        p = RidgeInner(
            name,
            mod,
            torch.optim.SGD(mod.parameters(), lr=ridge_lr(X, 0.5)),
            data=[(X, y)],
            config=Config(method="cg", options={"iterations": 20}),
        )
        probs.append(p)
        outer_batch.append((Xv, yv))
        exact += ridge_exact_hypergradient(X, y, Xv, yv, log_lam)
    outer = RidgeOuter(
        "outer",
        outer_mod,
        torch.optim.SGD(outer_mod.parameters(), lr=0.0),
        data=[tuple(outer_batch)],
    )
    outer.lowers = ("inner_a", "inner_b")
    engine = Engine(
        [*probs, outer],
        {
            "u2l": {"outer": ["inner_a", "inner_b"]},
            "l2u": {"inner_a": ["outer"], "inner_b": ["outer"]},
        },
        EngineConfig(train_iters=1),
    )
    engine.run()
    assert outer.step_count == 1  # stepped once both lowers were ready
    (g,) = engine.hypergradient("outer")
    assert abs(float(g) - exact) / abs(exact) < 1e-4


def test_bilevel_training_moves_penalty_to_the_validation_optimum():
    X, y, Xv, yv = ridge_data(0)

    def val(s):
        w, _ = ridge_solution(X, y, math.exp(s))
        return float(((Xv @ w - yv) ** 2).mean())

    grid = torch.linspace(-6, 3, 901, dtype=DT)
    best = min(val(float(s)) for s in grid)
    engine, _ = ridge_engine(
        "cg",
        {"iterations": 10},
        log_lam=0.0,
        unroll=10,
        converged=False,
        outer_lr=1.0,
        train_iters=2000,
    )
    engine.run()
    s = float(engine.problems["outer"].module.log_lam.detach())
    assert val(s) <= best * 1.001


def test_custom_hypergradient_registration():
    calls = []

    @register_hypergradient("test-zero")
    def zero(vector, lower, upper, options):
        calls.append((lower.name, upper.name))
        return [torch.zeros_like(p) for p in upper.trainable_parameters()]

    with pytest.raises(ValueError, match="already registered"):
        register_hypergradient("test-zero")(zero)
    engine, _ = ridge_engine("test-zero")
    engine.run()
    assert calls == [("inner", "outer")]


def test_validation_hook_and_callback():
    engine, _ = ridge_engine("cg", unroll=2, converged=False, train_iters=10)
    engine.config.valid_step = 5
    engine.config.validation_fn = lambda eng: {"w_norm": eng.problems["inner"].module.w.norm()}
    engine.run()
    assert [s for s, _ in engine.validation_history] == [5, 10]

    class MyEngine(Engine):
        def validation(self):
            return {"step": self.global_step}

    eng2 = MyEngine(
        list(engine.problems.values()),
        {"u2l": {"outer": ["inner"]}, "l2u": {"inner": ["outer"]}},
        EngineConfig(train_iters=4, valid_step=2),
    )
    eng2.run()
    assert eng2.validation_history == [(2, {"step": 2.0}), (4, {"step": 4.0})]


@pytest.mark.parametrize("method", ["unrolled", "cg", "reinforce"])
def test_checkpoint_round_trip_resumes_identically(tmp_path, method):
    def make():
        eng, _ = ridge_engine(
            method,
            {"samples": 3} if method == "reinforce" else {},
            unroll=3,
            converged=False,
            outer_lr=0.05,
            momentum=0.9,
            train_iters=40,
        )
        return eng

    straight = make()
    straight.run()

    first = make()
    first.config.train_iters = 20
    first.run()
    path = tmp_path / "ckpt.pt"
    first.save(path)
    resumed = make()  # fresh objects
    resumed.load(path)
    assert resumed.global_step == 20
    resumed.config.train_iters = 40
    resumed.run()
    for name in ("inner", "outer"):
        a = straight.problems[name].module.state_dict()
        b = resumed.problems[name].module.state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
        assert straight.losses[name] == resumed.losses[name]
        assert straight.problems[name].step_count == resumed.problems[name].step_count


class _WeightedMLP(Problem):
    """Inner: an MLP (nested parameter names, a BatchNorm buffer) on per-example weighted loss."""

    def training_step(self, batch):
        X, y = batch
        weights = torch.sigmoid(self.outer.module.logits)
        return (weights * (self(X).squeeze(-1) - y) ** 2).mean()


class _CleanLoss(Problem):
    def training_step(self, batch):
        X, y = batch
        return ((self.inner(X).squeeze(-1) - y) ** 2).mean()


def _mlp_engine(method, options, unroll):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(16, 4, generator=g, dtype=DT), torch.randn(16, generator=g, dtype=DT)
    Xv, yv = torch.randn(8, 4, generator=g, dtype=DT), torch.randn(8, generator=g, dtype=DT)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).to(DT)
    w = Params(logits=0.5 * torch.randn(16, generator=g, dtype=DT))
    inner = _WeightedMLP(
        "inner",
        net,
        torch.optim.SGD(net.parameters(), lr=0.1),
        data=[(X, y)],
        config=Config(method=method, options=options, unroll_steps=unroll),
    )
    outer = _CleanLoss("outer", w, torch.optim.SGD(w.parameters(), lr=0.0), data=[(Xv, yv)])
    engine = Engine(
        [inner, outer],
        {"u2l": {"outer": ["inner"]}, "l2u": {"inner": ["outer"]}},
        EngineConfig(train_iters=unroll),
    )
    return engine, (X, y, Xv, yv), net, w


def test_unrolled_on_a_nested_module_matches_manual_functional_unrolling():
    unroll = 3
    net0 = _mlp_engine("unrolled", {}, unroll)[2]
    start = {k: v.detach().clone() for k, v in net0.named_parameters()}
    buffers0 = {k: v.detach().clone() for k, v in net0.named_buffers()}
    engine, (X, y, Xv, yv), net, w = _mlp_engine("unrolled", {}, unroll)
    engine.run()
    running_mean = net[1].running_mean.detach().clone()
    (got,) = engine.hypergradient("outer")
    # computing the hypergradient left the BatchNorm statistics alone
    assert torch.equal(net[1].running_mean, running_mean)

    # reference: torch.func.functional_call unrolled by hand
    logits = w.logits.detach().clone().requires_grad_(True)
    ref_net = _mlp_engine("unrolled", {}, unroll)[2]
    ref_net.load_state_dict({**start, **buffers0})
    params = {k: v.detach().clone().requires_grad_(True) for k, v in start.items()}
    for _ in range(unroll):
        out = torch.func.functional_call(ref_net, params, (X,)).squeeze(-1)
        loss = (torch.sigmoid(logits) * (out - y) ** 2).mean()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {k: v - 0.1 * gk for (k, v), gk in zip(params.items(), grads, strict=True)}
    val = ((torch.func.functional_call(ref_net, params, (Xv,)).squeeze(-1) - yv) ** 2).mean()
    (ref,) = torch.autograd.grad(val, logits)
    assert torch.allclose(got, ref, rtol=1e-8, atol=1e-12)


def test_l2u_edge_without_u2l_path_warns():
    a, b = _noops("a", "b")
    with pytest.warns(UserWarning, match="no u2l path"):
        Engine([a, b], {"l2u": {"a": ["b"]}})


def test_bad_method_options_are_refused_before_running():
    with pytest.raises(ValueError, match=r"'iterations'.*int in \[0, inf\]"):
        ridge_engine("cg", {"iterations": -1})
    with pytest.raises(ValueError, match=r"unknown option 'iters'.*allowed"):
        ridge_engine("neumann", {"iters": 5})
    with pytest.raises(ValueError, match="'samples'"):
        ridge_engine("reinforce", {"samples": 0})


@pytest.mark.parametrize("make", ["ridge", "mlp"])
def test_unrolled_reuses_the_step_graph_with_the_replays_numbers(monkeypatch, make):
    """A one-step unroll window followed by the upper step is not replayed; the results are
    bit-identical to replaying it (the engine's recorded graph is the replay's graph)."""
    import metatune.mlo.hypergradients.unrolled as unrolled_mod

    def build():
        if make == "ridge":
            engine, _ = ridge_engine(
                "unrolled", unroll=1, converged=False, outer_lr=0.05, train_iters=12
            )
            return engine
        engine = _mlp_engine("unrolled", {}, 1)[0]
        engine.config.train_iters = 12
        engine.problems["outer"].optimizer.param_groups[0]["lr"] = 0.5
        return engine

    replays = []
    real_replay = unrolled_mod.replay

    def counting_replay(*args, **kwargs):
        replays.append(1)
        return real_replay(*args, **kwargs)

    monkeypatch.setattr(unrolled_mod, "replay", counting_replay)
    fast = build()
    fast.run()
    assert replays == []  # every hop used the recorded graph
    monkeypatch.setattr(Engine, "_records_step_graph", lambda self, problem: False)
    slow = build()
    slow.run()
    assert len(replays) == 12
    for name in ("inner", "outer"):
        a = fast.problems[name].module.state_dict()
        b = slow.problems[name].module.state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    # after run() no graph is kept: a later hypergradient replays and still works
    (g,) = fast.hypergradient("outer")
    assert torch.isfinite(g).all()
