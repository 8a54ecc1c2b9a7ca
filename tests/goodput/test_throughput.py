"""The step-time model's fit recovers its parameters from synthetic step times and predicts
configurations it was not fitted on; parameters the data cannot identify stay at priors."""

from __future__ import annotations

import numpy as np
import pytest

from metatune.goodput import StepTimeParams, ThroughputModel, predict_step_time

TRUE = StepTimeParams(
    alpha_c=2e-3,
    beta_c=1e-4,
    alpha_r=3e-3,
    beta_r=5e-4,
    alpha_n=1e-2,
    beta_n=2e-3,
    gamma=2.0,
    alpha_o=1e-3,
)


def _observe(model, configs, rng, noise=0.03, repeats=5):
    for m, s, k, n in configs:
        t = float(predict_step_time(TRUE, m, s, k, n))
        for _ in range(repeats):
            model.observe(m, s, t * float(np.exp(noise * rng.standard_normal())), k, n)


def test_fit_recovers_parameters_and_predicts_unseen_batches():
    rng = np.random.default_rng(0)
    model = ThroughputModel()
    train = [
        (m, s, k, n)
        for m in (8, 32, 128)
        for s in (0, 2)
        for k, n in ((1, 1), (2, 1), (4, 1), (8, 2), (16, 4))
    ]
    _observe(model, train, rng)
    p = model.fit()
    assert p is not None and model.fit_error < 0.03
    assert p.alpha_c == pytest.approx(TRUE.alpha_c, rel=0.25)
    assert p.beta_c == pytest.approx(TRUE.beta_c, rel=0.25)
    assert p.alpha_o == pytest.approx(TRUE.alpha_o, rel=0.5)  # the once-per-step time
    held_out = [
        (m, s, k, n) for m in (16, 64, 256) for s in (0, 1, 3) for k, n in ((1, 1), (4, 1), (8, 2))
    ]
    m, s, k, n = np.array(held_out, dtype=float).T
    pred = model.predict(m, s, k, n)
    true = predict_step_time(TRUE, m, s, k, n)
    rmsle = float(np.sqrt(np.mean(np.log(pred / true) ** 2)))
    assert rmsle < 0.1


def test_one_micro_batch_size_holds_the_compute_split_at_its_prior():
    rng = np.random.default_rng(1)
    model = ThroughputModel(prior_fixed_fraction=0.5)
    _observe(model, [(32, 0, 1, 1)], rng, noise=0.0)
    p = model.fit()
    t = float(predict_step_time(TRUE, 32, 0))
    assert p.alpha_c + p.beta_c * 32 == pytest.approx(t, rel=1e-3)
    assert p.alpha_c == pytest.approx(0.5 * t, rel=1e-3)  # the prior split, not the truth
    assert p.gamma == 1.0 and p.alpha_r == pytest.approx(0.1 * t, rel=1e-3)


def test_median_per_configuration_ignores_an_outlier_and_state_round_trips():
    rng = np.random.default_rng(2)
    model = ThroughputModel()
    _observe(model, [(8, 0, 1, 1), (64, 0, 1, 1)], rng, noise=0.0)
    model.observe(8, 0, 100.0)  # a step that included an evaluation
    p = model.fit()
    assert float(model.predict(8, 0)) == pytest.approx(
        float(predict_step_time(TRUE, 8, 0)), rel=0.01
    )
    clone = ThroughputModel()
    clone.load_state_dict(model.state_dict())
    assert clone.params == p and clone.configurations == model.configurations
    assert clone.fit_error == model.fit_error


def test_predict_before_any_measurement_raises():
    with pytest.raises(RuntimeError, match="no step time"):
        ThroughputModel().predict(8, 0)


def test_one_replica_fit_is_exact_on_noise_free_times():
    # One replica: the model is linear in alpha_c, beta_c and alpha_o, and the least-squares
    # path finds them exactly (and the same as the general minimization, to its tolerance).
    model = ThroughputModel()
    configs = [(m, s, 1, 1) for m in (8, 16, 64) for s in (0, 1, 3)]
    _observe(model, configs, np.random.default_rng(0), noise=0.0, repeats=1)
    p = model.fit()
    assert p is not None and model.fit_error < 1e-9
    assert p.alpha_c == pytest.approx(TRUE.alpha_c, rel=1e-6)
    assert p.beta_c == pytest.approx(TRUE.beta_c, rel=1e-6)
    assert p.alpha_o == pytest.approx(TRUE.alpha_o, rel=1e-6)
