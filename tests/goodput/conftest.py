"""Small synthetic job types for the cluster simulator's tests (no measured traces needed)."""

from __future__ import annotations

import pytest

from metatune.goodput import StepTimeParams
from metatune.goodput.sim import JobType


def make_job_type(name: str = "toy", phi: float = 1e12, **params: float) -> JobType:
    """A job type with a constant noise scale (huge by default: perfect scaling, gain = S)."""
    p = {
        "alpha_c": 0.01,
        "beta_c": 0.0,
        "alpha_r": 0.0,
        "beta_r": 0.0,
        "alpha_n": 0.0,
        "beta_n": 0.0,
        "gamma": 1.0,
        "alpha_o": 0.0,
    }
    p.update(params)
    return JobType(
        name=name,
        base_batch=16,
        max_batch=1024,
        max_micro_batch=128,
        params=StepTimeParams(**p),
        noise_fraction=(0.0, 1.0),
        noise_scale=(phi, phi),
        steps_to_target=1000.0,
    )


@pytest.fixture
def job_type_factory():
    """`make_job_type` for tests that build their own types."""
    return make_job_type


@pytest.fixture
def toy_types() -> dict[str, JobType]:
    """Two types: `ideal` scales perfectly; `noisy` has a small noise scale and a sync cost,
    so large batches and many replicas pay off little."""
    return {
        "ideal": make_job_type("ideal"),
        "noisy": make_job_type(
            "noisy",
            phi=50.0,
            alpha_c=2e-3,
            beta_c=1e-4,
            alpha_r=2e-3,
            beta_r=1e-4,
            alpha_n=8e-3,
            beta_n=4e-4,
        ),
    }
