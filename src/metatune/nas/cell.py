"""Cell search spaces: a DAG with an operation on each edge, as a parameter of a `Space`.

Two shapes, one machinery. A `Cell` is NAS-Bench-201's: every edge i -> j (i < j) of a fixed DAG
carries one operation, node j sums its incoming edges, the last node is the output. A
`ChoiceCell` is the DARTS space's: each intermediate node picks `inputs` (operation, source)
pairs from the cell inputs and earlier nodes; the output concatenates the intermediate nodes (or
only the leaves, those no other node reads, as NAS-Bench-Graph does).

A value is plain JSON (a list of operation names, or of [operation, source] pairs), so storage
and resume need nothing special. The model encoding is one one-hot block per choice (the
adjacency encoding), `path_encoding` is BANANAS' (one bit per input-to-output path labelled by
its operations) and `canonical` gives one string per function: edges that carry the zero op or
leave a node that computes zero are dropped, the identity passes its input's terms through, and
the terms of a sum are sorted, so isomorphic cells share one canonical form.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from metatune.nas.operations import DARTS_OPS, NB201_OPS, OPERATIONS
from metatune.space import ParamType

__all__ = ["Cell", "ChoiceCell", "cell_from_dict", "choice_cell_from_dict"]

_ZERO = "0"
_MAX_PATH_FEATURES = 1_000_000


def _check_ops(kind: str, ops: Any) -> tuple[str, ...]:
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise TypeError(f"{kind} ops must be a list of operation names, got {ops!r}")
    ops = tuple(ops)
    if not ops:
        raise ValueError(f"{kind} needs at least one operation in ops, got none")
    for op in ops:
        if not isinstance(op, str) or op not in OPERATIONS:
            raise ValueError(
                f"{kind}: unknown operation {op!r} in ops; registered: {', '.join(OPERATIONS)} "
                "(add your own with metatune.nas.OPERATIONS.register)"
            )
    dupes = sorted({op for op in ops if ops.count(op) > 1})
    if dupes:
        raise ValueError(f"{kind} ops must be distinct, duplicated: {', '.join(dupes)}")
    if all(OPERATIONS.get(op).role == "zero" for op in ops):
        raise ValueError(f"{kind} ops {list(ops)} hold only the zero operation")
    return ops


def _check_count(kind: str, label: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{kind} {label} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{kind} needs {label} >= {minimum}, got {value!r}")
    return int(value)


class _SlotCell(ParamType):
    """A cell as a list of slots: each picks an operation and (maybe) its source node.

    Subclasses fix `_slots` (the destination node and the allowed sources of each slot), the
    input and output nodes, and how a value maps to (operation index, source) pairs.
    """

    kind = "cell"
    ops: tuple[str, ...]
    _slots: list[tuple[int, tuple[int, ...]]]
    _inputs: tuple[int, ...]

    def _setup(self) -> None:
        self._roles = tuple(OPERATIONS.get(op).role for op in self.ops)
        self._radix: list[int] = []
        for _, srcs in self._slots:
            self._radix += [len(self.ops)] + ([len(srcs)] if len(srcs) > 1 else [])
        self._blocks: list[slice] = []
        start = 0
        for width in self._radix:
            self._blocks.append(slice(start, start + width))
            start += width
        self._dims = start
        self._size = math.prod(self._radix)
        self._path_ops = tuple(
            op for op, r in zip(self.ops, self._roles, strict=True) if r != "zero"
        )
        m, longest = len(self._path_ops), self._longest_path()
        self._path_offsets = [sum(m**k for k in range(1, n)) for n in range(1, longest + 2)]

    # -- the slot view ------------------------------------------------------------------------
    def _to_slots(self, value: Any) -> list[tuple[int, int]]:
        """[(operation index, source node)] for a valid value."""
        raise NotImplementedError

    def _from_slots(self, slots: Sequence[tuple[int, int]]) -> Any:
        raise NotImplementedError

    def _output_nodes(self, slots: Sequence[tuple[int, int]]) -> list[int]:
        raise NotImplementedError

    def _digits(self, slots: Sequence[tuple[int, int]]) -> list[int]:
        out: list[int] = []
        for (op, src), (_, srcs) in zip(slots, self._slots, strict=True):
            out.append(op)
            if len(srcs) > 1:
                out.append(srcs.index(src))
        return out

    def _from_digits(self, digits: Sequence[int]) -> list[tuple[int, int]]:
        it = iter(digits)
        slots = []
        for _, srcs in self._slots:
            op = next(it)
            src = srcs[next(it)] if len(srcs) > 1 else srcs[0]
            slots.append((op, src))
        return slots

    # -- ParamType ----------------------------------------------------------------------------
    @property
    def model_dims(self) -> int:
        return self._dims

    @property
    def size(self) -> int:
        """How many raw values (before de-duplication) the cell has."""
        return self._size

    def from_uniform(self, u: float) -> Any:
        index = min(max(int(float(u) * self._size), 0), self._size - 1)
        return self.from_index(index)

    def from_index(self, index: int) -> Any:
        """The `index`-th raw value (mixed radix, the first slot most significant)."""
        digits = []
        for r in reversed(self._radix):
            index, d = divmod(index, r)
            digits.append(d)
        return self._from_slots(self._from_digits(digits[::-1]))

    def enumerate(self) -> Iterator[Any]:
        """Every raw value, isomorphic ones included (`canonical` tells them apart)."""
        for digits in itertools.product(*(range(r) for r in self._radix)):
            yield self._from_slots(self._from_digits(digits))

    def encode(self, value: Any) -> list[float]:
        out = [0.0] * self._dims
        for block, d in zip(self._blocks, self._digits(self._to_slots(value)), strict=True):
            out[block.start + d] = 1.0
        return out

    def decode(self, u: Sequence[float]) -> Any:
        u = np.asarray(u, dtype=float)
        return self._from_slots(self._from_digits([int(np.argmax(u[b])) for b in self._blocks]))

    def round_model(self, cols: np.ndarray) -> np.ndarray:
        cols = np.atleast_2d(cols)
        out = np.zeros_like(cols, dtype=float)
        rows = np.arange(len(cols))
        for b in self._blocks:
            out[rows, b.start + np.argmax(cols[:, b], axis=1)] = 1.0
        return out

    def uniform_to_model(self, u: np.ndarray) -> np.ndarray:
        idx = np.minimum((np.asarray(u, dtype=float) * self._size).astype(np.int64), self._size - 1)
        out = np.zeros((len(idx), self._dims))
        rows = np.arange(len(idx))
        for b, r in zip(reversed(self._blocks), reversed(self._radix), strict=True):
            idx, d = np.divmod(idx, r)
            out[rows, b.start + d] = 1.0
        return out

    def model_neighbours(self, cols: np.ndarray) -> np.ndarray:
        x = self.round_model(np.asarray(cols, dtype=float))[0]
        out = []
        for b in self._blocks:
            cur = int(np.argmax(x[b]))
            for j in range(b.stop - b.start):
                if j != cur:
                    y = x.copy()
                    y[b] = 0.0
                    y[b.start + j] = 1.0
                    out.append(y)
        return np.array(out) if out else np.empty((0, self._dims))

    def contains(self, value: Any) -> bool:
        try:
            self._to_slots(value)
        except (TypeError, ValueError, IndexError):
            return False
        return True

    def normalize(self, value: Any) -> Any:
        return self._from_slots(self._to_slots(value))

    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> Any:
        """The value with one choice changed: one edge's operation (or one input's source)."""
        digits = self._digits(self._to_slots(value))
        movable = [i for i, r in enumerate(self._radix) if r > 1]
        i = movable[int(rng.integers(len(movable)))]
        digits[i] = (digits[i] + 1 + int(rng.integers(self._radix[i] - 1))) % self._radix[i]
        return self._from_slots(self._from_digits(digits))

    def neighbours(self, value: Any) -> list[Any]:
        """Every value one choice away from `value`."""
        digits = self._digits(self._to_slots(value))
        out = []
        for i, r in enumerate(self._radix):
            for d in range(r):
                if d != digits[i]:
                    out.append(
                        self._from_slots(self._from_digits([*digits[:i], d, *digits[i + 1 :]]))
                    )
        return out

    def features(self, value: Any) -> np.ndarray:
        return self.path_encoding(value)

    # -- function-level views -----------------------------------------------------------------
    def _terms(self, slots: Sequence[tuple[int, int]]) -> dict[int, list[str]]:
        """Node -> the sorted terms of the sum it computes ([] computes zero)."""
        terms: dict[int, list[str]] = {i: [f"in{k}"] for k, i in enumerate(self._inputs)}
        incoming: dict[int, list[tuple[int, int]]] = {}
        for (dst, _), slot in zip(self._slots, slots, strict=True):
            incoming.setdefault(dst, []).append(slot)
        for node in sorted(incoming):
            acc: list[str] = []
            for op, src in incoming[node]:
                src_terms = terms.get(src, [])
                if self._roles[op] == "zero" or not src_terms:
                    continue
                if self._roles[op] == "identity":
                    acc += src_terms
                else:
                    acc.append(f"{self.ops[op]}({'+'.join(src_terms)})")
            terms[node] = sorted(acc)
        return terms

    def canonical(self, value: Any) -> str:
        """One string per function the cell computes: equal for isomorphic cells."""
        slots = self._to_slots(value)
        terms = self._terms(slots)
        outs = sorted("+".join(terms.get(n, [])) or _ZERO for n in self._output_nodes(slots))
        return "|".join(outs)

    def paths(self, value: Any) -> list[tuple[str, ...]]:
        """The operation sequences of every live input-to-output path (identities included)."""
        slots = self._to_slots(value)
        incoming: dict[int, list[tuple[int, int]]] = {}
        for (dst, _), slot in zip(self._slots, slots, strict=True):
            incoming.setdefault(dst, []).append(slot)
        memo: dict[int, list[tuple[str, ...]]] = {i: [()] for i in self._inputs}

        def to(node: int) -> list[tuple[str, ...]]:
            if node not in memo:
                memo[node] = [
                    (*p, self.ops[op])
                    for op, src in incoming.get(node, [])
                    if self._roles[op] != "zero"
                    for p in to(src)
                ]
            return memo[node]

        return [p for n in self._output_nodes(slots) for p in to(n) if p]

    @property
    def path_dims(self) -> int:
        """Length of `path_encoding`: one bit per operation sequence of length 1..longest."""
        return self._path_offsets[-1]

    def _longest_path(self) -> int:
        depth = {i: 0 for i in self._inputs}
        for dst, srcs in self._slots:
            depth[dst] = max(depth.get(dst, 0), max(depth.get(s, 0) for s in srcs) + 1)
        return max(depth.values())

    def path_index(self, path: Sequence[str]) -> int:
        """The column of `path_encoding` that stands for the operation sequence `path`."""
        m = len(self._path_ops)
        offset = self._path_offsets[len(path) - 1]
        index = 0
        for op in path:
            index = index * m + self._path_ops.index(op)
        return offset + index

    def path_encoding(self, value: Any) -> np.ndarray:
        """BANANAS' path encoding: 1 where some live path carries that operation sequence."""
        if self.path_dims > _MAX_PATH_FEATURES:
            raise ValueError(
                f"the path encoding of this cell would have {self.path_dims} columns; use the "
                "adjacency encoding (encode) instead"
            )
        out = np.zeros(self.path_dims)
        for p in self.paths(value):
            out[self.path_index(p)] = 1.0
        return out

    def sample(self, rng: np.random.Generator | int | None = None) -> Any:
        return self.from_index(int(np.random.default_rng(rng).integers(self._size)))


class Cell(_SlotCell):
    """A NAS-Bench-201-shaped cell: `nodes` nodes, one operation from `ops` on every edge i -> j.

    Node 0 is the input and node ``nodes - 1`` the output; a value lists the edges' operations in
    the order of `edges`: (0, 1), (0, 2), (1, 2), (0, 3), ... (sources of node 1, then node 2, ...).
    """

    kind = "cell"

    def __init__(self, nodes: int = 4, ops: Sequence[str] = NB201_OPS) -> None:
        self.nodes = _check_count("Cell", "nodes", nodes, 2)
        self.ops = _check_ops("Cell", ops)
        self.edges: list[tuple[int, int]] = [(i, j) for j in range(1, self.nodes) for i in range(j)]
        self._slots = [(j, (i,)) for i, j in self.edges]
        self._inputs = (0,)
        self._setup()

    def _to_slots(self, value: Any) -> list[tuple[int, int]]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"a Cell value is a list of {len(self.edges)} operation names")
        if len(value) != len(self.edges):
            raise ValueError(f"a Cell value needs {len(self.edges)} operations, got {len(value)}")
        return [(self.ops.index(op), i) for op, (i, _) in zip(value, self.edges, strict=True)]

    def _from_slots(self, slots: Sequence[tuple[int, int]]) -> list[str]:
        return [self.ops[op] for op, _ in slots]

    def _output_nodes(self, slots: Sequence[tuple[int, int]]) -> list[int]:
        return [self.nodes - 1]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "cell", "nodes": self.nodes, "ops": list(self.ops)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(("cell", self.nodes, self.ops))

    def __repr__(self) -> str:
        return f"Cell(nodes={self.nodes}, ops={list(self.ops)!r})"


class ChoiceCell(_SlotCell):
    """A DARTS-shaped cell: each of `nodes` intermediate nodes sums `inputs` chosen
    (operation, source) pairs, a source being a cell input or an earlier node.

    Nodes are numbered after the `cell_inputs` inputs (0, 1 for DARTS). A value lists the pairs
    node by node: ``[[op, source], ...]`` (``nodes * inputs`` of them). The output concatenates
    every intermediate node (``output="concat"``, DARTS) or only those no slot reads
    (``output="leaves"``, NAS-Bench-Graph).
    """

    kind = "choice_cell"

    def __init__(
        self,
        nodes: int = 4,
        ops: Sequence[str] = DARTS_OPS,
        *,
        inputs: int = 2,
        cell_inputs: int = 2,
        output: str = "concat",
    ) -> None:
        self.nodes = _check_count("ChoiceCell", "nodes", nodes, 1)
        self.inputs = _check_count("ChoiceCell", "inputs", inputs, 1)
        self.cell_inputs = _check_count("ChoiceCell", "cell_inputs", cell_inputs, 1)
        self.ops = _check_ops("ChoiceCell", ops)
        if output not in ("concat", "leaves"):
            raise ValueError(f"ChoiceCell output must be 'concat' or 'leaves', got {output!r}")
        self.output = output
        self._inputs = tuple(range(self.cell_inputs))
        self._slots = [
            (self.cell_inputs + k, tuple(range(self.cell_inputs + k)))
            for k in range(self.nodes)
            for _ in range(self.inputs)
        ]
        self._setup()

    def _to_slots(self, value: Any) -> list[tuple[int, int]]:
        n = len(self._slots)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != n:
            raise ValueError(f"a ChoiceCell value is a list of {n} [operation, source] pairs")
        out = []
        for pair, (_, srcs) in zip(value, self._slots, strict=True):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"{pair!r} is not an [operation, source] pair")
            op, src = pair
            if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or src not in srcs:
                raise ValueError(f"source {src!r} is not one of {list(srcs)}")
            out.append((self.ops.index(op), int(src)))
        return out

    def _from_slots(self, slots: Sequence[tuple[int, int]]) -> list[list[Any]]:
        return [[self.ops[op], src] for op, src in slots]

    def _output_nodes(self, slots: Sequence[tuple[int, int]]) -> list[int]:
        nodes = range(self.cell_inputs, self.cell_inputs + self.nodes)
        if self.output == "concat":
            return list(nodes)
        read = {src for _, src in slots}
        return [n for n in nodes if n not in read]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "choice_cell",
            "nodes": self.nodes,
            "ops": list(self.ops),
            "inputs": self.inputs,
            "cell_inputs": self.cell_inputs,
            "output": self.output,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChoiceCell) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(map(str, self.to_dict().items()))))

    def __repr__(self) -> str:
        return (
            f"ChoiceCell(nodes={self.nodes}, ops={list(self.ops)!r}, inputs={self.inputs}, "
            f"cell_inputs={self.cell_inputs}, output={self.output!r})"
        )


def cell_from_dict(d: Mapping[str, Any]) -> Cell:
    return Cell(nodes=d["nodes"], ops=d["ops"])


def choice_cell_from_dict(d: Mapping[str, Any]) -> ChoiceCell:
    return ChoiceCell(
        nodes=d["nodes"],
        ops=d["ops"],
        inputs=d.get("inputs", 2),
        cell_inputs=d.get("cell_inputs", 2),
        output=d.get("output", "concat"),
    )
