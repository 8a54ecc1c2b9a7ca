"""EEIPU's ask is fast: searches scored together, cost GPs refitted as their data grows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.acquisition import LogExpectedImprovement

from metatune.benchmarks.pipelines import SyntheticPipeline, SyntheticStage, run_synthetic
from metatune.optimizers import make_optimizer
from metatune.optimizers._gp.acquisition import (
    CostAwareAcquisition,
    CostTerm,
    FixedFeatures,
    score_together,
)
from metatune.optimizers._gp.cost_models import LogCostModel, fit_cost_model
from metatune.optimizers._gp.fit import GPSpec, WarmStartFitter


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _pieces(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.uniform(size=(12, 3)), dtype=torch.float64)
    Y = torch.sin(4 * X.sum(-1, keepdim=True))
    model = WarmStartFitter().fit(GPSpec(), X, Y, key="o", warm_iters=6)
    objective = LogExpectedImprovement(model, best_f=Y.max())
    costs = [
        fit_cost_model(WarmStartFitter(), (k,), X.numpy(), np.log(2 + X[:, k].numpy()), [k], 6)
        for k in range(2)
    ]
    z = torch.randn(64, 2, dtype=torch.float64)
    return objective, CostTerm(costs, 0.7, math.log(0.1), z), rng


@pytest.mark.parametrize("memo_cooling", [True, False])
def test_searches_scored_together_score_as_each_alone(memo_cooling: bool) -> None:
    objective, cost, rng = _pieces()
    cost.memo_cooling = memo_cooling
    cols, vals = torch.tensor([0]), torch.tensor([0.25], dtype=torch.float64)
    acqs = [
        CostAwareAcquisition(objective, cost, 0),
        FixedFeatures(CostAwareAcquisition(objective, cost, 1), cols, vals),
        CostAwareAcquisition(objective, cost, 0, weight=0.0),  # the cost-blind search
    ]
    Xs = [torch.tensor(rng.uniform(size=(n, 1, 3)), dtype=torch.float64) for n in (5, 7, 3)]
    with torch.no_grad():
        together = score_together(acqs)(Xs)
        alone = [a(X) for a, X in zip(acqs, Xs, strict=True)]
    for t, a in zip(together, alone, strict=True):
        assert torch.allclose(t, a, atol=1e-10)
    assert torch.allclose(together[2], objective(Xs[2]), atol=1e-12)


def test_a_cost_gp_keeps_its_hyperparameters_until_its_data_grows() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(40, 2))
    y = np.log(1 + 3 * X[:, 0])
    fitter = WarmStartFitter()
    first = fit_cost_model(fitter, ("s",), X[:30], y[:30], np.arange(2), 6, refit_growth=0.1)
    kept = fit_cost_model(fitter, ("s",), X[:32], y[:32], np.arange(2), 6, refit_growth=0.1)
    ls = lambda m: m.model.covar_module.lengthscale.detach()  # noqa: E731
    assert torch.equal(ls(first), ls(kept))  # 32 < 30 * 1.1: the same hyperparameters
    assert kept.model.train_inputs[0].shape[0] == 32  # on the new data
    refit = fit_cost_model(fitter, ("s",), X[:34], y[:34], np.arange(2), 6, refit_growth=0.1)
    assert not torch.equal(ls(first), ls(refit))
    assert isinstance(refit, LogCostModel)
    with pytest.raises(ValueError, match="cost_refit"):
        make_optimizer("eeipu", {"cost_refit": -1})


TWO_STAGE = SyntheticPipeline(
    "two-stage",
    (
        SyntheticStage("prep", "Hartmann", 3, cost_range=(20.0, 40.0), cost_shape="cosine"),
        SyntheticStage(
            "train", "Levy", 2, bounds=(-5.0, 5.0), cost_range=(2.0, 6.0), cost_shape="sine"
        ),
    ),
)


def test_the_hedge_takes_the_cost_blind_point_when_the_cheap_one_is_much_worse() -> None:
    """hedge=1: a cost-aware point is kept only where its EI is the best EI, so the hedged
    EEIPU never reuses a prefix the cost-blind search does not also like; without it, it does."""
    light = {"n_candidates": 128, "prefix_candidates": 32, "n_cost_samples": 32}
    reused = {}
    for hedge in (None, 1.0):
        run = run_synthetic(
            "eeipu",
            seed=0,
            budget=400.0,
            pipeline=TWO_STAGE,
            n_warmup=5,
            optimizer_options={**light, "hedge": hedge},
            max_trials=14,
        )
        reused[hedge] = sum(1 for r in run.reused_stages[5:] if r)
    assert reused[None] > reused[1.0]
    with pytest.raises(ValueError, match="hedge"):
        make_optimizer("eeipu", {"hedge": 0.0})
