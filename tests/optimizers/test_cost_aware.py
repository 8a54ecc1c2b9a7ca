"""Cost- and memoization-aware optimizers (EI, EIPS, CArBO, MS-CArBO, EEIPU, MS-BO)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from metatune import Float, Space, Study
from metatune.benchmarks.pipelines import (
    SyntheticPipeline,
    SyntheticStage,
    run_synthetic,
)
from metatune.optimizers import available_optimizers, make_optimizer
from metatune.optimizers._gp.acquisition import CostTerm
from metatune.optimizers._gp.cost_models import LogCostModel, fit_cost_model
from metatune.optimizers._gp.fit import WarmStartFitter
from metatune.optimizers.cost_aware import (
    cooling_eta,
    log_expected_inverse_cost,
    measured_overhead,
    pipeline_of,
)
from metatune.pipeline.context import PipelineContext
from metatune.trial import Trial, TrialState


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small GPs: one thread avoids oversubscription on busy 2-core machines."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


METHODS = ("ei", "eips", "carbo", "ms-carbo", "eeipu", "ms-bo")

# A 2-stage pipeline whose first stage dominates the cost (about 100 vs 2 units).
EXPENSIVE_FIRST = SyntheticPipeline(
    "expensive-first",
    (
        SyntheticStage("prep", "Branin", 2, cost_range=(90.0, 110.0), cost_shape="logistic"),
        SyntheticStage(
            "train", "Ackley", 2, bounds=(-5.0, 5.0), cost_range=(1.0, 3.0), cost_shape="sine"
        ),
    ),
)


def test_every_method_is_registered():
    names = available_optimizers()
    for m in METHODS:
        assert m in names
        assert make_optimizer(m).name == m


@pytest.mark.parametrize("method", METHODS)
def test_valid_points_in_a_plain_study(method):
    space = Space({"x": Float(-2, 2), "y": Float(1e-3, 1, log=True)})
    study = Study(space, optimizer=method, seed=3, optimizer_options={"n_startup_trials": 4})
    for _ in range(7):
        t = study.ask()
        space.validate(t.params)
        study.tell(t, (t.params["x"] - 0.5) ** 2 + math.log(t.params["y"]) ** 2)


@pytest.mark.parametrize("method", METHODS)
def test_valid_points_in_a_pipeline_study(method):
    r = run_synthetic(
        method, seed=0, budget=1400, pipeline=EXPENSIVE_FIRST, n_warmup=5, max_trials=12
    )
    assert r["n_trials"] >= 7
    assert all(np.isfinite(r["values"]))


def test_warmup_is_shared_by_every_method():
    firsts = [
        run_synthetic(m, seed=5, budget=300, pipeline=EXPENSIVE_FIRST, n_warmup=3)["values"][:3]
        for m in ("random", "ei", "eeipu")
    ]
    assert firsts[0] == firsts[1] == firsts[2]


def test_cooling_goes_from_one_to_zero():
    assert cooling_eta(1000.0, 200.0, 200.0) == 1.0
    assert cooling_eta(1000.0, 600.0, 200.0) == pytest.approx(0.5)
    assert cooling_eta(1000.0, 1000.0, 200.0) == 0.0
    assert cooling_eta(1000.0, 1500.0, 200.0) == 0.0
    assert cooling_eta(None, 500.0, 200.0) == 1.0
    etas = [cooling_eta(1000.0, s, 200.0) for s in np.linspace(200, 1000, 9)]
    assert all(a > b for a, b in zip(etas, etas[1:], strict=False))


def test_expected_inverse_cost_matches_lognormal():
    from botorch.utils.sampling import draw_sobol_normal_samples

    # log c ~ N(mu, s^2)  =>  E[1/c] = exp(-mu + s^2 / 2)
    mu = torch.tensor([[math.log(20.0)], [1.0], [-2.0]], dtype=torch.float64)
    s = torch.tensor([[0.5], [1.0], [0.1]], dtype=torch.float64)
    z = draw_sobol_normal_samples(d=1, n=1024, seed=0).to(torch.float64)
    est = log_expected_inverse_cost(mu, s, z)
    exact = -mu[:, 0] + s[:, 0] ** 2 / 2
    assert torch.allclose(est, exact, atol=0.02)
    # Two stages, one known (e.g. cached at epsilon): Monte-Carlo against plain sampling
    mu2 = torch.tensor([[math.log(0.1), 2.0]], dtype=torch.float64)
    s2 = torch.tensor([[0.0, 0.7]], dtype=torch.float64)
    z2 = draw_sobol_normal_samples(d=2, n=1024, seed=1).to(torch.float64)
    ref = np.mean(1.0 / (0.1 + np.exp(2.0 + 0.7 * np.random.default_rng(0).normal(size=200_000))))
    assert math.exp(float(log_expected_inverse_cost(mu2, s2, z2)[0])) == pytest.approx(
        ref, rel=0.01
    )
    # no overflow for huge log costs
    big = log_expected_inverse_cost(torch.full((1, 2), 800.0), torch.ones(1, 2), z2.float())
    assert torch.isfinite(big).all()


def _first_bo_suggestion(method, seed):
    """History: 10 Sobol warm-up runs of the expensive-first pipeline; then one suggestion."""
    sim = EXPENSIVE_FIRST.make()
    study = Study(sim.space, optimizer=method, seed=seed)
    spent = 0.0
    for _ in range(10):
        t = study.ask(pipeline=sim.context(3000.0, spent))
        value, records, cost = sim.evaluate(t.params)
        study.tell(t, value, system_attrs={"stages": records, "cost": cost})
        spent += cost
    ctx = sim.context(3000.0, spent)
    t = study.ask(pipeline=ctx)
    first = {n: t.params[n] for n in ("prep.x0", "prep.x1")}
    cached = [c.params for c in ctx.cached_prefixes if c.depth == 1]
    return first, cached


def test_eeipu_reuses_an_expensive_cached_prefix_and_ei_does_not():
    for seed in (0, 1):
        first, cached = _first_bo_suggestion("eeipu", seed)
        assert any(first == c for c in cached)  # exact values, so the cache key matches
        first_ei, cached_ei = _first_bo_suggestion("ei", seed)
        assert not any(first_ei == c for c in cached_ei)


SMALL = SyntheticPipeline(
    "small",
    (
        SyntheticStage("prep", "Hartmann", 3, cost_range=(20.0, 40.0), cost_shape="cosine"),
        SyntheticStage(
            "train", "Levy", 2, bounds=(-5.0, 5.0), cost_range=(2.0, 6.0), cost_shape="sine"
        ),
    ),
)
LIGHT = {"n_candidates": 256, "prefix_candidates": 64, "n_cost_samples": 64}


def test_eeipu_evaluates_more_candidates_than_ei_in_the_same_budget():
    ratios = []
    for seed in (0, 1, 2):
        n = {
            m: run_synthetic(
                m,
                seed=seed,
                budget=300.0,
                pipeline=SMALL,
                n_warmup=5,
                optimizer_options=LIGHT if m == "eeipu" else {"n_candidates": 256},
                max_trials=20,
            )["n_trials"]
            for m in ("ei", "eeipu")
        }
        ratios.append(n["eeipu"] / n["ei"])
    assert sum(r > 1 for r in ratios) >= 2
    assert np.median(ratios) >= 1.5


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="cost_model"):
        make_optimizer("carbo", {"cost_model": "bogus"})
    with pytest.raises(ValueError, match="n_cost_samples"):
        make_optimizer("eeipu", {"n_cost_samples": 2})
    with pytest.raises(ValueError, match="logei"):
        make_optimizer("eips", {"acquisition": "ucb"})
    with pytest.raises(ValueError, match="trial_overhead"):
        make_optimizer("eeipu", {"trial_overhead": -1.0})
    with pytest.raises(ValueError, match="trial_overhead"):
        make_optimizer("eeipu", {"trial_overhead": "fast"})


def test_a_trial_overhead_bounds_how_cheap_a_cached_trial_looks():
    z = torch.zeros(4, 2, dtype=torch.float64)  # known costs: E[1/C] = 1/C exactly
    mu = torch.tensor([[math.log(0.01), math.log(0.02)]], dtype=torch.float64)
    sigma = torch.zeros(1, 2, dtype=torch.float64)
    assert float(log_expected_inverse_cost(mu, sigma, z)) == pytest.approx(-math.log(0.03))
    with_overhead = float(log_expected_inverse_cost(mu, sigma, z, overhead=0.5))
    assert with_overhead == pytest.approx(-math.log(0.53))


def _constant_cost_term(memo_cooling, eta):
    cols = np.zeros(0, dtype=int)
    models = [LogCostModel(cols, None, math.log(c), 0.0) for c in (8.0, 2.0)]
    z = torch.zeros(8, 2, dtype=torch.float64)
    return CostTerm(models, eta, math.log(0.1), z, memo_cooling=memo_cooling)


def test_memo_cooling_off_keeps_the_cache_saving_as_eta_falls():
    X = torch.zeros(1, 3, dtype=torch.float64)
    fresh, saving = -math.log(10.0), math.log(10.0) - math.log(2.1)
    for eta in (1.0, 0.5, 0.0):
        paper = _constant_cost_term(True, eta)
        ours = _constant_cost_term(False, eta)
        assert float(paper(X, 0)) == pytest.approx(eta * fresh)
        assert float(ours(X, 0)) == pytest.approx(eta * fresh)
        assert float(paper(X, 1)) == pytest.approx(eta * (fresh + saving))
        assert float(ours(X, 1)) == pytest.approx(eta * fresh + saving)


def _trial(number, stages, ask):
    return Trial(
        number=number,
        state=TrialState.COMPLETE,
        params={},
        value=1.0,
        system_attrs={"stages": stages, "cost": 1.0, "ask_seconds": ask},
    )


def test_measured_overhead_only_for_wall_second_costs():
    wall = [{"name": "a", "cost": 2.0, "seconds": 2.0, "cache_hit": False}]
    hit = [{"name": "a", "cost": 0.01, "seconds": 0.01, "cache_hit": True}]
    trials = [_trial(i, wall if i % 2 else hit, 0.1 * (i + 1)) for i in range(5)]
    assert measured_overhead(trials) == pytest.approx(0.3)
    assert measured_overhead(trials, window=2) == pytest.approx(0.45)
    reported = [{"name": "a", "cost": 30.0, "seconds": 2.0, "cache_hit": False}]
    assert measured_overhead([_trial(0, reported, 0.5)]) == 0.0  # e.g. GPU-seconds, simulated
    assert measured_overhead([]) == 0.0


def test_prefix_cost_inputs_see_what_an_earlier_stage_chose():
    """Stage b's cost grows with stage a's parameter (e.g. more augmented copies): only a cost GP
    that sees the prefix's parameters can tell the cheap candidates from the dear ones."""
    space = Space({"a.copies": Float(0.0, 1.0), "b.lr": Float(0.0, 1.0)})
    pipe = PipelineContext.build([("a", ["a.copies"]), ("b", ["b.lr"])])
    rng = np.random.default_rng(0)
    trials = []
    for i in range(16):
        p = {"a.copies": float(rng.uniform()), "b.lr": float(rng.uniform())}
        stages = [
            {"name": "a", "cost": 0.1, "cache_hit": False, "seconds": 0.1},
            {"name": "b", "cost": float(np.exp(3 * p["a.copies"])), "cache_hit": False},
        ]
        trials.append(
            Trial(
                number=i,
                state=TrialState.COMPLETE,
                params=p,
                value=1.0,
                system_attrs={"stages": stages, "cost": 0.1 + stages[1]["cost"]},
            )
        )
    X = torch.tensor(
        np.stack([space.encode({"a.copies": c, "b.lr": 0.5}) for c in (0.1, 0.9)]),
        dtype=torch.float64,
    )
    gaps = {}
    for inputs in ("own", "prefix"):
        opt = make_optimizer("eeipu", {"cost_inputs": inputs})
        stage_b = opt._cost_models(space, trials, pipe)[1]
        mean, _ = stage_b.predict(X)
        gaps[inputs] = float((mean[1] - mean[0]).detach())  # true: 3 * 0.8 = 2.4 in log cost
    assert gaps["prefix"] == pytest.approx(2.4, abs=0.3)
    assert abs(gaps["own"]) < 0.5
    with pytest.raises(ValueError, match="cost_inputs"):
        make_optimizer("eeipu", {"cost_inputs": "all"})


def test_a_pipelines_trial_cost_shrinks_the_cache_saving():
    """A fixed charge per trial (counted by the budget) goes into every candidate's predicted
    cost: with stages of cost 8 and 2, reusing the first saves 8 / 2.1 without it, and only
    (10 + 5) / (2.1 + 5) with a charge of 5; a total-cost GP already sees it in its data."""
    from metatune.optimizers.base import SuggestContext

    space = Space({"a.x": Float(0.0, 1.0), "b.y": Float(0.0, 1.0)})
    pipe = PipelineContext.build([("a", ["a.x"]), ("b", ["b.y"])])
    context = SuggestContext(space, "minimize", seed=0, trial_number=0, pipeline=pipe)
    assert pipeline_of(context).trial_cost == 0.0
    context.pipeline = dataclasses.replace(pipe, trial_cost=5.0)
    info = pipeline_of(context)
    assert info.trial_cost == 5.0
    assert make_optimizer("eeipu", {})._overhead([], info) == 5.0
    assert make_optimizer("eeipu", {"trial_overhead": 0.5})._overhead([], info) == 5.5
    assert make_optimizer("carbo", {})._overhead([], info) == 0.0  # total-cost model

    X = torch.zeros(1, 2, dtype=torch.float64)
    for overhead, saving in ((0.0, 10.0 / 2.1), (5.0, 15.0 / 7.1)):
        term = _constant_cost_term(True, 1.0)
        term.overhead = overhead
        assert float(term(X, 1) - term(X, 0)) == pytest.approx(math.log(saving))


def test_cost_model_closed_form_matches_the_gp_posterior():
    """The cached closed-form prediction gives BoTorch's posterior mean and standard deviation,
    and gradients flow through it (the acquisition's polish needs them)."""
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(25, 2))
    y = np.log(1.0 + 5.0 * X[:, 0] + np.sin(6.0 * X[:, 1])) + 0.05 * rng.normal(size=25)
    model = fit_cost_model(WarmStartFitter(), ("t",), X, y, np.arange(2), fit_iters=6)
    assert model._closed_form is not None
    Xq = torch.tensor(rng.uniform(size=(40, 2)), dtype=torch.float64, requires_grad=True)
    mean, std = model.predict(Xq)
    post = model.model.posterior(Xq.detach()[:, model.cols].unsqueeze(1))
    ref_mean = model.y_mean + model.y_std * post.mean.reshape(-1)
    ref_std = model.y_std * post.variance.clamp_min(0.0).sqrt().reshape(-1)
    assert torch.allclose(mean.detach(), ref_mean.detach(), atol=1e-7)
    assert torch.allclose(std.detach(), ref_std.detach(), atol=1e-6)
    (grad,) = torch.autograd.grad((mean + std).sum(), Xq)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
