"""NAS-Bench-Graph (Qin et al., NeurIPS 2022 datasets track) as a tabular NAS benchmark.

The `nas-bench-graph` package ships, for each of 9 graph datasets, the validation and test
accuracy of 26,206 GNN architectures: four layers, each reading the input or an earlier layer
(one of 9 connection patterns up to relabelling) and applying one of 9 operations (8 on
proteins); the output aggregates the layers nothing else reads. In our terms that is a
`ChoiceCell(nodes=4, inputs=1, cell_inputs=1, output="leaves")` over the GNN operations, with
"skip" as our identity. A value of that cell is looked up through the package's own
canonicalization (`Arch(link, ops).valid_hash()`), so isomorphic values find the same record.

The tables are pickles; they are read with an unpickler that builds only dicts, numbers and
NumPy scalars, so a tampered file cannot run code.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from metatune.nas import OPERATIONS, ChoiceCell, Operation

__all__ = ["DATASETS", "GraphTable", "load_table", "space"]

DATASETS = (
    "cora",
    "citeseer",
    "pubmed",
    "cs",
    "physics",
    "photo",
    "computers",
    "arxiv",
    "proteins",
)
_GNN_OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc")
_PROTEINS_OPS = ("gcn", "sage", "arma", "fc")
_SKIP = "skip_connect"

for _op in _GNN_OPS:
    if _op not in OPERATIONS:
        OPERATIONS.register(_op, Operation("op", f"NAS-Bench-Graph's {_op} layer"))


def space(dataset: str = "cora") -> ChoiceCell:
    """The cell whose values are this dataset's architectures."""
    ops = _PROTEINS_OPS if dataset == "proteins" else _GNN_OPS
    return ChoiceCell(nodes=4, ops=(*ops, _SKIP), inputs=1, cell_inputs=1, output="leaves")


class _TableUnpickler(pickle.Unpickler):
    """Only the classes a NAS-Bench-Graph table holds: NumPy scalars and their dtypes."""

    _ALLOWED = {
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a benchmark table")


@dataclass(frozen=True)
class GraphTable:
    """One dataset's records: validation and test accuracy (higher is better) by architecture."""

    dataset: str
    records: Mapping[int, Mapping[str, float]]
    cell: ChoiceCell

    @functools.cached_property
    def best_test(self) -> float:
        return max(float(r["perf"]) for r in self.records.values())

    @functools.cached_property
    def best_valid(self) -> float:
        return max(float(r["valid_perf"]) for r in self.records.values())

    def key(self, value: Sequence[Sequence[Any]]) -> int:
        """The table's key of a cell value (raises KeyError for the one value it lacks: every
        layer a skip connection)."""
        from nas_bench_graph import Arch

        pairs = self.cell.normalize(value)
        link = [int(src) for _, src in pairs]
        ops = ["skip" if op == _SKIP else op for op, _ in pairs]
        if all(op == "skip" for op in ops):
            raise KeyError("an architecture of skip connections only is not in the table")
        return int(Arch(link, ops).valid_hash())

    def lookup(self, value: Sequence[Sequence[Any]]) -> Mapping[str, float]:
        return self.records[self.key(value)]


@functools.cache
def load_table(dataset: str) -> GraphTable:
    """The installed table of `dataset` (needs the `nas-bench-graph` package, extra `bench`)."""
    if dataset not in DATASETS:
        raise ValueError(
            f"unknown NAS-Bench-Graph dataset {dataset!r}; known: {', '.join(DATASETS)}"
        )
    try:
        files = resources.files("nas_bench_graph")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "NAS-Bench-Graph's tables come with the nas-bench-graph package: "
            "pip install 'metatune[bench]'"
        ) from None
    data = (files / "light" / f"{dataset}.bench").read_bytes()
    records = _TableUnpickler(io.BytesIO(data)).load()
    if not isinstance(records, dict):
        raise ValueError(f"the {dataset} table is not a dict of records")
    return GraphTable(dataset, records, space(dataset))
