"""Job types of the cluster simulator: a goodput model per kind of training job.

Each type holds what was measured on real training (benchmarks/goodput_traces.py): the fitted
step-time model (Pollux's, from metatune.goodput.throughput), the gradient noise scale against
training progress, and the M0-equivalent steps its training took to reach its target. The
simulator asks a type two things: the best (micro-batch, accumulation) plan for a number of
replicas, and how many M0-equivalent steps per second a plan makes at a point of training.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from metatune.goodput.choice import BatchPlan, candidate_plans, goodput, plan_for_total
from metatune.goodput.efficiency import gain
from metatune.goodput.lr_rules import LR_RULES, ScaleContext
from metatune.goodput.throughput import StepTimeParams, ThroughputModel, predict_step_time

__all__ = ["JobType", "load_job_types", "nodes_for"]

TRACES = "job_types.json"


def nodes_for(replicas: int, gpus_per_node: int) -> int:
    """Nodes a packed placement of `replicas` spans (the simulator packs every job)."""
    return max(1, math.ceil(replicas / gpus_per_node))


@dataclass(frozen=True)
class JobType:
    """One kind of job.

    Args:
        name: the type's name in workloads.
        base_batch: M0, the batch the job's recipe was written for.
        max_batch: the largest total batch the job may train with.
        max_micro_batch: examples one replica holds at once (beyond it, accumulation).
        params: the fitted step-time model (seconds).
        noise_fraction: points of training as fractions of `steps_to_target` (increasing).
        noise_scale: tr(Sigma) / |G|^2 measured at those points.
        steps_to_target: M0-equivalent steps the measured run took to reach its target.
        lr_rule: the learning-rate rule the job's batch changes go with.
    """

    name: str
    base_batch: int
    max_batch: int
    max_micro_batch: int
    params: StepTimeParams
    noise_fraction: tuple[float, ...]
    noise_scale: tuple[float, ...]
    steps_to_target: float
    lr_rule: str = "adascale"
    about: str = ""
    _model: ThroughputModel = field(init=False, repr=False, compare=False)
    _log_phi: np.ndarray = field(init=False, repr=False, compare=False)
    _fractions: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.noise_fraction) != len(self.noise_scale) or not self.noise_fraction:
            raise ValueError(f"job type {self.name!r}: one noise scale per point is needed")
        if np.any(np.diff(self.noise_fraction) <= 0):
            raise ValueError(f"job type {self.name!r}: noise_fraction must increase")
        model = ThroughputModel()
        model.params = self.params  # the fitted model, used as is
        object.__setattr__(self, "_model", model)
        logs = np.log(np.maximum(np.asarray(self.noise_scale, dtype=float), 1e-9))
        object.__setattr__(self, "_log_phi", logs)
        object.__setattr__(self, "_fractions", np.asarray(self.noise_fraction, dtype=float))

    # -- the goodput model ------------------------------------------------------------------
    def phi(self, fraction: float) -> float:
        """The noise scale at `fraction` of training, interpolated in log space (held at the
        ends)."""
        return float(np.exp(np.interp(fraction, self._fractions, self._log_phi)))

    def step_time(self, plan: BatchPlan, gpus_per_node: int) -> float:
        """Seconds per optimizer step of `plan` placed on as few nodes as it fits."""
        nodes = nodes_for(plan.replicas, gpus_per_node)
        return float(
            predict_step_time(self.params, plan.micro_batch, plan.accum_steps, plan.replicas, nodes)
        )

    def rate(self, plan: BatchPlan, fraction: float, gpus_per_node: int) -> float:
        """M0-equivalent steps per second: gain of one step at the plan's total / step time."""
        g = float(gain(self.phi(fraction), self.base_batch, plan.total))
        return g / self.step_time(plan, gpus_per_node)

    def fixed_plan(self, replicas: int, batch: int) -> BatchPlan:
        """The plan of a job that keeps its total `batch` on `replicas` (fewest accumulation
        steps within the memory bound)."""
        return plan_for_total(max(batch, replicas), self.max_micro_batch, replicas)

    def best_plan(self, replicas: int, fraction: float, gpus_per_node: int) -> BatchPlan:
        """The goodput-best plan for `replicas` at `fraction` of training (the choice code of
        metatune.goodput over geometric total batches in [M0, max_batch])."""
        low = max(self.base_batch, replicas)
        plans = candidate_plans(low, max(self.max_batch, low), self.max_micro_batch, replicas)
        nodes = nodes_for(replicas, gpus_per_node)
        values = goodput(plans, self._model, self.phi(fraction), self.base_batch, nodes)
        return plans[int(np.argmax(values))]

    def lr_factor(self, plan: BatchPlan, fraction: float) -> float:
        """The factor on the M0 learning rate the job's rule gives for `plan`."""
        scale = plan.total / self.base_batch
        g = float(gain(self.phi(fraction), self.base_batch, plan.total))
        progress = fraction * self.steps_to_target
        ctx = ScaleContext(scale=scale, gain=g, progress=progress, examples=progress)
        return float(LR_RULES.get(self.lr_rule)(ctx))

    # -- (de)serialising --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> JobType:
        noise = d["noise"]
        return cls(
            name=str(d["name"]),
            base_batch=int(d["base_batch"]),
            max_batch=int(d["max_batch"]),
            max_micro_batch=int(d["max_micro_batch"]),
            params=StepTimeParams(**d["step_time"]["params"]),
            noise_fraction=tuple(float(x) for x in noise["fraction"]),
            noise_scale=tuple(float(x) for x in noise["noise_scale"]),
            steps_to_target=float(d["steps_to_target"]),
            lr_rule=str(d.get("lr_rule", "adascale")),
            about=str(d.get("about", "")),
        )


def load_job_types(path: str | Path | None = None) -> dict[str, JobType]:
    """The job types measured here (the package's traces file), or those of `path`."""
    if path is None:
        text = resources.files(__package__).joinpath(TRACES).read_text()
    else:
        text = Path(path).read_text()
    data = json.loads(text)
    return {d["name"]: JobType.from_dict(d) for d in data["job_types"]}
