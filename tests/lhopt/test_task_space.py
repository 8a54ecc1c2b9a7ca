"""The procedural task distribution: every family builds, trains, and the split is declared."""

import numpy as np
import pytest
import torch

from metatune.lhopt.task_space import (
    FAMILIES,
    HELD_OUT_FAMILIES,
    MAX_STEPS,
    MIN_STEPS,
    TRAIN_FAMILIES,
    VALIDATION_FAMILIES,
    sample_group,
    training_task,
)
from metatune.lhopt.vectorized import ReplicaStart, run_lockstep


def test_the_split_is_declared_and_disjoint():
    splits = [set(TRAIN_FAMILIES), set(VALIDATION_FAMILIES), set(HELD_OUT_FAMILIES)]
    assert set.union(*splits) == set(FAMILIES)
    assert sum(len(s) for s in splits) == len(FAMILIES)  # disjoint
    assert "mlp-diabetes" in HELD_OUT_FAMILIES  # a held-out benchmark task's data
    # docs/lhopt-selection-rule.md: rule 1 validates on the first two, rule 2 on all five
    assert VALIDATION_FAMILIES == [
        "mlp-moons",
        "mlp-hastie",
        "mlp-sparse",
        "cnn-blobs",
        "gru-balance",
    ]
    assert {f.kind for f in FAMILIES.values()} == {"mlp", "cnn", "charlm", "gru", "transformer"}
    assert {f.loss for f in FAMILIES.values()} == {"mse", "ce"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_builds_a_group_that_learns_in_lockstep(family):
    group, spec = sample_group(family, np.random.default_rng(5), 2, steps=200)
    assert group.size == 2 and spec.family == family
    first = [group.training_task(r).val_loss() for r in range(2)]
    res = run_lockstep(group, [ReplicaStart(lr=3e-3)] * 2, 40, val_every=40)
    assert all(c[-1][1] < f for c, f in zip(res.curves, first, strict=True))
    # replicas share the architecture but not their data or initial weights
    assert (
        not torch.equal(group.x_train[0], group.x_train[1])
        or group.index_seeds[0] != (group.index_seeds[1])
    )
    p = group.stacked_params()
    assert any(not torch.equal(t[0], t[1]) for t in p.values())


def test_a_multi_column_regression_target_gets_one_output_per_column():
    group, _ = sample_group("mlp-denoise", np.random.default_rng(0), 2, steps=200)
    assert group.y_train.shape[-1] == 64
    task = group.training_task(0)
    assert task.model(group.x_val[0][:3]).shape == (3, 64)
    start = task.val_loss()
    res = run_lockstep(group, [ReplicaStart(lr=3e-3)] * 2, 30, val_every=30)
    assert res.curves[0][-1][1] < start


def test_groups_vary_and_run_lengths_span_the_declared_range():
    rng = np.random.default_rng(0)
    specs = [sample_group("mlp-linreg", rng, 1)[1] for _ in range(40)]
    steps = [s.steps for s in specs]
    assert min(steps) >= MIN_STEPS and max(steps) <= MAX_STEPS
    assert max(steps) / min(steps) > 5
    assert len({(s.depth, s.width, s.activation, s.norm) for s in specs}) > 20
    assert len({s.batch_size for s in specs}) > 2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown family"):
        sample_group("nope", np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="replicas must be a positive integer"):
        sample_group("mlp-linreg", np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="steps must be in"):
        sample_group("mlp-linreg", np.random.default_rng(0), 1, steps=50)


def test_a_task_runs_in_the_ordinary_engine():
    task = training_task("mlp-bundled", 3)
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    before = task.val_loss()
    curve = task.run(opt, 30, val_every=30)
    assert curve[-1][1] < before


@pytest.mark.parametrize("family", ["gru-charlm", "transformer-charlm", "gru-signal"])
def test_sequence_models_train_in_lockstep_as_in_the_ordinary_engine(family):
    group, spec = sample_group(family, np.random.default_rng(7), 2, steps=200)
    assert spec.kind in ("gru", "transformer")
    starts = [ReplicaStart(lr=3e-3), ReplicaStart(lr=1e-2)]
    res = run_lockstep(group, starts, 30, val_every=10)  # the batched kernels
    for r in range(2):
        task = group.training_task(r)
        opt = torch.optim.AdamW(task.model.parameters(), lr=starts[r].lr)
        curve = task.run(opt, 30, val_every=10)
        np.testing.assert_allclose(
            [v for _, v in curve], [v for _, v in res.curves[r]], rtol=1e-4, atol=1e-6
        )


def test_a_regression_target_scale_moves_the_targets_not_the_inputs():
    from metatune.lhopt.task_space import _linreg_data

    options = {"features": 5, "n": 600, "noise": 0.5}
    xs, ys, _, _ = _linreg_data({**options, "scale": 0.01}, 3)
    xl, yl, _, _ = _linreg_data({**options, "scale": 10.0}, 3)
    np.testing.assert_array_equal(xs, xl)
    assert ys.std() == pytest.approx(0.01, rel=1e-3) and yl.std() == pytest.approx(10.0, rel=1e-3)
