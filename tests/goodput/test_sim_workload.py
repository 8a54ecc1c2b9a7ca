"""Workload generator and measured job types of the cluster simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metatune.goodput.sim import Cluster, generate_workload, load_job_types, requested_duration


def test_same_seed_same_workload_other_seed_other(toy_types):
    a = generate_workload(toy_types, load=1.0, num_jobs=30, seed=3)
    b = generate_workload(toy_types, load=1.0, num_jobs=30, seed=3)
    c = generate_workload(toy_types, load=1.0, num_jobs=30, seed=4)
    assert a == b
    assert a != c


def test_load_scales_the_arrival_rate(toy_types):
    one = generate_workload(toy_types, load=1.0, num_jobs=50, seed=0)
    two = generate_workload(toy_types, load=2.0, num_jobs=50, seed=0)
    np.testing.assert_allclose([j.arrival for j in two], [j.arrival / 2 for j in one])
    assert [j.work for j in one] == [j.work for j in two]


def test_offered_load_matches_the_request(toy_types):
    """Offered GPU-seconds per second of arrivals, over the cluster, is about the load."""
    cluster = Cluster(4, 4)
    jobs = generate_workload(toy_types, load=0.8, num_jobs=4000, seed=1, cluster=cluster)
    per_step = {}  # seconds per unit of work, by (type, replicas, batch)
    for j in jobs:
        key = (j.job_type, j.replicas, j.batch)
        if key not in per_step:
            per_step[key] = requested_duration(toy_types[j.job_type], *key[1:], 1.0, 4)
    demand = sum(j.replicas * j.work * per_step[(j.job_type, j.replicas, j.batch)] for j in jobs)
    offered = demand / jobs[-1].arrival / cluster.gpus
    assert offered == pytest.approx(0.8, rel=0.1)


def test_jobs_ask_for_what_the_options_say(toy_types):
    jobs = generate_workload(
        toy_types,
        load=1.0,
        num_jobs=200,
        seed=0,
        mix={"noisy": 1.0},
        replica_choices=(1, 4),
        replica_probs=(0.5, 0.5),
        duration_range=(600.0, 600.0),
    )
    assert {j.job_type for j in jobs} == {"noisy"}
    assert {j.replicas for j in jobs} == {1, 4}
    jt = toy_types["noisy"]
    for j in jobs[:5]:
        assert j.batch == min(jt.base_batch * j.replicas, jt.max_batch)
        assert requested_duration(jt, j.replicas, j.batch, j.work, 4) == pytest.approx(600.0)
    assert all(b.arrival >= a.arrival for a, b in zip(jobs, jobs[1:], strict=False))


@pytest.mark.parametrize("load", [0, -1.0, math.nan, math.inf])
def test_non_positive_load_raises_naming_it(toy_types, load):
    with pytest.raises(ValueError, match="load"):
        generate_workload(toy_types, load=load)


def test_bad_mix_and_replicas_raise_naming_them(toy_types):
    with pytest.raises(ValueError, match="mix"):
        generate_workload(toy_types, load=1.0, mix={"nope": 1.0})
    with pytest.raises(ValueError, match="replica_choices"):
        generate_workload(
            toy_types,
            load=1.0,
            cluster=Cluster(1, 4),
            replica_choices=(1, 8),
            replica_probs=(0.5, 0.5),
        )
    with pytest.raises(ValueError, match="replica_probs"):
        generate_workload(toy_types, load=1.0, replica_choices=(1, 2), replica_probs=(0.5, 0.2))
    with pytest.raises(ValueError, match="num_jobs"):
        generate_workload(toy_types, load=1.0, num_jobs=0)


def test_cluster_rejects_bad_shapes():
    with pytest.raises(ValueError, match="gpus_per_node"):
        Cluster(2, 3)
    with pytest.raises(ValueError, match="nodes"):
        Cluster(0, 4)
    assert Cluster(2, 4).sizes() == [1, 2, 4, 8]


def test_measured_job_types_ship_with_the_package():
    types = load_job_types()
    assert len(types) >= 4
    for jt in types.values():
        assert jt.steps_to_target > 0
        assert all(p > 0 for p in jt.noise_scale)
        assert jt.params.alpha_c > 0
        one = jt.best_plan(1, 0.5, 4)
        assert jt.base_batch <= one.total <= jt.max_batch
        assert jt.rate(one, 0.5, 4) > 0
