"""The simulated cluster: nodes of GPUs, the replica counts a job may get, and packing.

Replica counts are powers of two (1, 2, 4, ... up to the cluster's size) and a node holds a
power of two GPUs, so any set of jobs whose counts add up to at most the cluster's GPUs packs
(first fit, largest first) with each job on as few nodes as it can span: a job below a node's
size shares one node, a larger one takes whole nodes. That keeps a job's placement a function
of its replica count, which is what makes the goodput allocation a linear program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Cluster"]


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass(frozen=True)
class Cluster:
    """`nodes` machines of `gpus_per_node` GPUs each (a power of two)."""

    nodes: int = 16
    gpus_per_node: int = 4

    def __post_init__(self) -> None:
        if not (isinstance(self.nodes, int) and self.nodes >= 1):
            raise ValueError(f"nodes must be a positive integer, got {self.nodes!r}")
        if not (isinstance(self.gpus_per_node, int) and _is_power_of_two(self.gpus_per_node)):
            raise ValueError(
                f"gpus_per_node must be a power of two (1, 2, 4, 8, ...), got {self.gpus_per_node!r}"
            )

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def sizes(self, limit: int | None = None) -> list[int]:
        """The replica counts a job may hold: powers of two up to the cluster (or `limit`)."""
        top = self.gpus if limit is None else min(self.gpus, limit)
        out, k = [], 1
        while k <= top:
            out.append(k)
            k *= 2
        return out

    def check_replicas(self, replicas: int, what: str) -> None:
        """Raise naming `what` unless `replicas` is a count this cluster can place."""
        if replicas not in self.sizes():
            raise ValueError(
                f"{what} must be one of {self.sizes()} (powers of two up to the cluster's "
                f"{self.gpus} GPUs), got {replicas!r}"
            )

    def place(self, replicas: Mapping[int, int]) -> dict[int, list[tuple[int, int]]]:
        """Job id -> [(node, GPUs on it)] for the nonzero counts; raises if they do not fit."""
        total = sum(replicas.values())
        if total > self.gpus:
            raise ValueError(f"{total} GPUs allocated, the cluster has {self.gpus}")
        free = [self.gpus_per_node] * self.nodes
        out: dict[int, list[tuple[int, int]]] = {}
        for job, k in sorted(replicas.items(), key=lambda item: (-item[1], item[0])):
            if k <= 0:
                continue
            self.check_replicas(k, f"replicas of job {job}")
            if k >= self.gpus_per_node:
                whole = [n for n in range(self.nodes) if free[n] == self.gpus_per_node]
                need = k // self.gpus_per_node
                if len(whole) < need:
                    raise ValueError(f"job {job}: {need} free nodes needed, {len(whole)} free")
                for n in whole[:need]:
                    free[n] = 0
                out[job] = [(n, self.gpus_per_node) for n in whole[:need]]
            else:
                node = next((n for n in range(self.nodes) if free[n] >= k), None)
                if node is None:
                    raise ValueError(f"job {job}: no node has {k} free GPUs")
                free[node] -= k
                out[job] = [(node, k)]
        return out
