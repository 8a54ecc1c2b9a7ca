"""Cluster simulator and its allocators: hand-computed cases, MILP against brute force, capacity,
determinism and bad input."""

from __future__ import annotations

import itertools
import math

import pytest

from metatune.goodput import BatchPlan
from metatune.goodput.sim import (
    ALLOCATORS,
    Allocator,
    Cluster,
    JobSpec,
    JobView,
    generate_workload,
    make_allocator,
    register_allocator,
    simulate,
)
from metatune.goodput.sim.allocators.goodput import GoodputAllocator


def test_fixed_reproduces_a_hand_computed_case(job_type_factory):
    """One node of 4 GPUs, perfect scaling, 10 ms steps, no sync cost. A: 4 replicas at batch
    64 (gain 4: 400 M0-steps/s), work 28000 = 70 s of training; B arrives at 10 s asking 2
    replicas at batch 32 (200/s), work 10000 = 50 s. Round 0: A starts, loses 30 s to the
    restart penalty, trains 30 s; round 60: finishes after 40 s (t = 100). B waits for the round
    at 120, loses 30 s, trains 30 + 20 s: done at 200."""
    types = {"ideal": job_type_factory("ideal")}
    jobs = [
        JobSpec(id=0, arrival=0.0, job_type="ideal", replicas=4, batch=64, work=28000.0),
        JobSpec(id=1, arrival=10.0, job_type="ideal", replicas=2, batch=32, work=10000.0),
    ]
    r = simulate(jobs, "fixed", cluster=Cluster(1, 4), job_types=types)
    a, b = r.jobs
    assert (a.start, a.finish, b.start, b.finish) == pytest.approx((0, 100, 120, 200))
    assert r.average_jct == pytest.approx((100 + 190) / 2)
    assert r.makespan == pytest.approx(200)
    assert a.gpu_seconds == pytest.approx(4 * 100)
    assert (a.restarts, b.restarts) == (0, 0)


def test_fixed_is_strict_fifo(job_type_factory):
    """A job that does not fit blocks the smaller ones behind it."""
    types = {"ideal": job_type_factory("ideal")}
    jobs = [
        JobSpec(id=0, arrival=0.0, job_type="ideal", replicas=2, batch=32, work=1e5),
        JobSpec(id=1, arrival=1.0, job_type="ideal", replicas=4, batch=64, work=1e3),
        JobSpec(id=2, arrival=2.0, job_type="ideal", replicas=1, batch=16, work=1e3),
    ]
    r = simulate(jobs, "fixed", cluster=Cluster(1, 4), job_types=types)
    assert r.jobs[2].start >= r.jobs[1].start >= r.jobs[0].finish


def test_las_preempts_the_job_with_more_service(job_type_factory):
    types = {"ideal": job_type_factory("ideal")}
    jobs = [
        JobSpec(id=0, arrival=0.0, job_type="ideal", replicas=4, batch=64, work=1e5),
        JobSpec(id=1, arrival=30.0, job_type="ideal", replicas=4, batch=64, work=1e4),
    ]
    r = simulate(
        jobs,
        "las",
        cluster=Cluster(1, 4),
        job_types=types,
        allocator_options={"thresholds": [100.0]},
    )
    a, b = r.jobs
    assert b.start == 60.0
    assert a.restarts == 1
    assert b.finish < a.finish


def _brute_force(alloc: GoodputAllocator, jobs: list[JobView], cluster: Cluster) -> float:
    options = [alloc.speedups(j, cluster) for j in jobs]
    best = math.inf
    for ks in itertools.product(*[sorted(o) for o in options]):
        if sum(ks) <= cluster.gpus:
            best = min(best, sum(alloc.cost(o[k][0]) for o, k in zip(options, ks, strict=True)))
    return best


def _views(types, specs) -> list[JobView]:
    return [
        JobView(
            id=i,
            job_type=types[name],
            arrival=float(i),
            requested_replicas=1,
            requested_batch=16,
            replicas=cur,
            plan=None,
            progress=frac * 1000.0,
            work=1000.0,
            attained=0.0,
        )
        for i, (name, frac, cur) in enumerate(specs)
    ]


@pytest.mark.parametrize("p", [-1.0, 0.0, 1.0])
def test_milp_choice_equals_brute_force(toy_types, p):
    cluster = Cluster(2, 4)
    jobs = _views(
        toy_types, [("ideal", 0.1, 0), ("noisy", 0.5, 2), ("noisy", 0.9, 0), ("ideal", 0.5, 4)]
    )
    alloc = GoodputAllocator(p=p)
    answer = alloc.allocate(jobs, cluster, 0.0)
    options = [alloc.speedups(j, cluster) for j in jobs]
    got = sum(alloc.cost(o[answer[j.id].replicas][0]) for o, j in zip(options, jobs, strict=True))
    assert got == pytest.approx(_brute_force(alloc, jobs, cluster), rel=1e-6, abs=1e-9)
    assert sum(a.replicas for a in answer.values()) <= cluster.gpus
    for a in answer.values():
        assert a.plan.replicas == a.replicas
        assert 16 <= a.plan.total <= 1024
        assert a.lr_factor >= 1.0


def test_goodput_gives_the_oldest_one_replica_each_when_jobs_outnumber_gpus(toy_types):
    cluster = Cluster(1, 2)
    jobs = _views(toy_types, [("ideal", 0.0, 0)] * 3)
    answer = GoodputAllocator().allocate(jobs, cluster, 0.0)
    assert {i: a.replicas for i, a in answer.items()} == {0: 1, 1: 1}


@pytest.mark.parametrize("name", ["fixed", "las", "goodput"])
def test_capacity_never_exceeded_every_job_finishes_deterministic(toy_types, name):
    cluster = Cluster(2, 4)
    jobs = generate_workload(
        toy_types,
        load=1.5,
        num_jobs=25,
        seed=2,
        cluster=cluster,
        replica_choices=(1, 2, 4, 8),
        replica_probs=(0.4, 0.3, 0.2, 0.1),
        duration_range=(120.0, 1800.0),
    )
    seen = []
    inner = make_allocator(name)

    class Spy(Allocator):
        def allocate(self, views, cl, now):
            out = inner.allocate(views, cl, now)
            seen.append(sum(a.replicas for a in out.values()))
            return out

    r = simulate(jobs, Spy(), cluster=cluster, job_types=toy_types)
    assert max(seen) <= cluster.gpus and r.peak_gpus <= cluster.gpus
    assert all(math.isfinite(j.finish) and j.finish > j.arrival for j in r.jobs)
    assert len(r.jobs) == len(jobs)
    again = simulate(jobs, name, cluster=cluster, job_types=toy_types)
    assert [j.finish for j in again.jobs] == [j.finish for j in r.jobs]


def test_goodput_beats_fixed_on_a_toy_workload(toy_types):
    jobs = generate_workload(
        toy_types,
        load=1.0,
        num_jobs=30,
        seed=0,
        cluster=Cluster(2, 4),
        replica_choices=(1, 2, 4),
        replica_probs=(0.4, 0.3, 0.3),
        duration_range=(300.0, 3000.0),
    )
    fixed = simulate(jobs, "fixed", cluster=Cluster(2, 4), job_types=toy_types)
    good = simulate(jobs, "goodput", cluster=Cluster(2, 4), job_types=toy_types)
    assert good.average_jct < fixed.average_jct


def test_fixed_with_goodput_batch_keeps_replicas_and_picks_the_batch(toy_types):
    cluster = Cluster(1, 4)
    jobs = _views(toy_types, [("ideal", 0.2, 0), ("noisy", 0.5, 0)])
    plain = make_allocator("fixed").allocate(jobs, cluster, 0.0)
    tuned = make_allocator("fixed", {"batch": "goodput"}).allocate(jobs, cluster, 0.0)
    assert {i: a.replicas for i, a in plain.items()} == {i: a.replicas for i, a in tuned.items()}
    assert plain[0].plan.total == 16
    # Perfect scaling and a step time flat in m: the memory bound's largest micro-batch
    # (accumulating more costs as much per example again).
    assert tuned[0].plan == BatchPlan(128, 0, 1)
    with pytest.raises(ValueError, match="batch"):
        make_allocator("las", {"batch": "largest"})


def test_bad_input_raises_before_simulating(toy_types):
    jobs = [JobSpec(id=0, arrival=0.0, job_type="ideal", replicas=4, batch=64, work=1.0)]
    with pytest.raises(ValueError, match="allocator") as e:
        simulate(jobs, "nope", job_types=toy_types)
    assert "fixed" in str(e.value)
    with pytest.raises(ValueError, match="unknown option"):
        simulate(jobs, "las", job_types=toy_types, allocator_options={"nope": 1})
    with pytest.raises(ValueError, match="workload job 0 requests 4 replicas; the cluster has 2"):
        simulate(jobs, "fixed", cluster=Cluster(1, 2), job_types=toy_types)
    with pytest.raises(ValueError, match="job_type"):
        simulate([JobSpec(0, 0.0, "nope", 1, 16, 1.0)], "fixed", job_types=toy_types)
    with pytest.raises(ValueError, match="interval"):
        simulate(jobs, "fixed", job_types=toy_types, interval=0)
    with pytest.raises(ValueError, match="horizon"):
        make_allocator("goodput", {"horizon": 10.0, "restart_penalty": 30.0})
    with pytest.raises(ValueError, match="thresholds"):
        make_allocator("las", {"thresholds": [10.0, 5.0]})


def test_a_registered_allocator_runs_by_name(toy_types):
    @register_allocator("test-nothing-then-fixed")
    class Lazy(Allocator):
        def allocate(self, views, cluster, now):
            return make_allocator("fixed").allocate(views, cluster, now) if now >= 120 else {}

    try:
        jobs = [JobSpec(id=0, arrival=0.0, job_type="ideal", replicas=1, batch=16, work=1e3)]
        r = simulate(jobs, "test-nothing-then-fixed", cluster=Cluster(1, 4), job_types=toy_types)
        assert r.jobs[0].start == 120.0
        assert r.allocator == "test-nothing-then-fixed"
    finally:
        ALLOCATORS.unregister("test-nothing-then-fixed")
