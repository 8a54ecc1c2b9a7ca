"""Allocators of the cluster simulator, by name: "fixed" (FIFO on the requested replicas and
batch), "las" (Tiresias-like least attained service) and "goodput" (Pollux-like co-adaptive,
a MILP over per-job speedups); `register_allocator` adds your own."""

from metatune.goodput.sim.allocators.base import (
    ALLOCATORS,
    Allocation,
    Allocator,
    JobView,
    make_allocator,
    register_allocator,
)

__all__ = [
    "ALLOCATORS",
    "Allocation",
    "Allocator",
    "JobView",
    "make_allocator",
    "register_allocator",
]
