"""Tabular NAS benchmarks that ship with the package: every architecture of a cell space,
trained once by a fixed protocol, looked up by the cell's canonical form.

``load("digits")`` returns a :class:`Table`: a mapping canonical form -> :class:`Record`, the
cell space it covers, the protocol's metadata and the optimum. Records hold validation and test
accuracy after every epoch (for multi-fidelity and cost-aware work), the parameter count and the
cumulative training seconds. Search by validation, report test.

Tables are gzip-compressed JSON (never pickle), registered by name in ``TABLES``; the file of
the ``digits`` table is rebuilt by ``benchmarks/build_nas_digits_table.py``.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metatune._registry import Registry

__all__ = ["TABLES", "Record", "Table", "load", "load_file"]

FORMAT = "metatune-nas-table/1"
_METRICS = ("valid", "test")


def _check_path(obj: Any) -> None:
    if not isinstance(obj, os.PathLike):
        raise TypeError(f"a table is registered as the path of its file, got {obj!r}")


TABLES: Registry[os.PathLike[str]] = Registry("NAS table", check=_check_path)
# registered as a Path: a plain string would be read as a lazy "module:attribute" entry
TABLES.register("digits", Path(__file__).with_name("digits.json.gz"))


@dataclass(frozen=True)
class Record:
    """One architecture's measurements; epochs are 1-based, ``None`` means the last one."""

    value: tuple[str, ...]
    canonical: str
    params: int
    valid_accuracy: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    train_seconds: tuple[float, ...]

    def _at(self, series: tuple[float, ...], epoch: int | None) -> float:
        if epoch is None:
            return series[-1]
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch <= len(series):
            raise ValueError(
                f"epoch must be an integer in [1, {len(series)}] or None, got {epoch!r}"
            )
        return series[epoch - 1]

    def valid(self, epoch: int | None = None) -> float:
        """Validation accuracy after ``epoch`` epochs (default: the last)."""
        return self._at(self.valid_accuracy, epoch)

    def test(self, epoch: int | None = None) -> float:
        """Test accuracy after ``epoch`` epochs (default: the last)."""
        return self._at(self.test_accuracy, epoch)

    def seconds(self, epoch: int | None = None) -> float:
        """Training seconds spent up to the end of ``epoch`` (evaluation excluded)."""
        return self._at(self.train_seconds, epoch)

    def metric(self, metric: str, epoch: int | None = None) -> float:
        """``valid(epoch)`` or ``test(epoch)`` by name."""
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        return self.valid(epoch) if metric == "valid" else self.test(epoch)


class Table(Mapping[str, Record]):
    """Canonical form -> :class:`Record` for every architecture of ``cell``.

    Keys are computed with ``cell.canonical`` when the table is loaded, so any value of the
    cell (not only the stored representatives) finds its record through :meth:`lookup`.
    """

    def __init__(self, name: str, meta: Mapping[str, Any], records: Sequence[Mapping[str, Any]]):
        from metatune.nas import Cell

        self.name = name
        self.meta = dict(meta)
        spec = self.meta["cell"]
        self.cell = Cell(nodes=spec["nodes"], ops=spec["ops"])
        self.epochs = int(self.meta["protocol"]["epochs"])
        self._records: dict[str, Record] = {}
        for raw in records:
            value = tuple(raw["value"])
            key = self.cell.canonical(list(value))
            if key in self._records:
                raise ValueError(
                    f"table {name!r}: two records share the canonical form {key!r} "
                    f"({list(self._records[key].value)} and {list(value)})"
                )
            rec = Record(
                value=value,
                canonical=key,
                params=int(raw["params"]),
                valid_accuracy=tuple(float(a) for a in raw["valid_accuracy"]),
                test_accuracy=tuple(float(a) for a in raw["test_accuracy"]),
                train_seconds=tuple(float(s) for s in raw["train_seconds"]),
            )
            if (
                not len(rec.valid_accuracy)
                == len(rec.test_accuracy)
                == len(rec.train_seconds)
                == self.epochs
            ):
                raise ValueError(
                    f"table {name!r}: record {list(value)} lacks some of the {self.epochs} epochs"
                )
            self._records[key] = rec

    # Mapping
    def __getitem__(self, key: str) -> Record:
        return self._records[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, {len(self)} architectures of {self.cell!r})"

    # look-ups
    def lookup(self, value: Sequence[str]) -> Record:
        """The record of any value of the cell (isomorphic values share one)."""
        if not self.cell.contains(list(value)):
            raise ValueError(f"{list(value)!r} is not a value of {self.cell!r}")
        key = self.cell.canonical(list(value))
        try:
            return self._records[key]
        except KeyError:
            raise KeyError(
                f"table {self.name!r} has no record for {list(value)!r} ({key})"
            ) from None

    def optimum(self, metric: str = "valid", epoch: int | None = None) -> Record:
        """The record with the highest ``metric`` after ``epoch`` (ties: the first stored)."""
        return max(self._records.values(), key=lambda r: r.metric(metric, epoch))

    def rank(
        self, value: Sequence[str], metric: str = "valid", epoch: int | None = None
    ) -> dict[str, float]:
        """Where ``value`` stands by ``metric``: ``better`` (architectures strictly better),
        ``tied`` (others equal), ``size``, and ``percentile``, the share of the table ahead of it
        counting half the ties, in percent (0: alone at the top; "top 5%" means < 5)."""
        score = self.lookup(value).metric(metric, epoch)
        scores = [r.metric(metric, epoch) for r in self._records.values()]
        better = sum(s > score for s in scores)
        tied = sum(s == score for s in scores) - 1
        n = len(scores)
        return {
            "better": better,
            "tied": tied,
            "size": n,
            "percentile": 100.0 * (better + 0.5 * tied) / n,
        }


def load_file(path: str | os.PathLike[str], name: str | None = None) -> Table:
    """A table from a file written by the table builders (gzip JSON)."""
    path = Path(path)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a NAS table (format {data.get('format')!r}, expected {FORMAT!r})"
        )
    return Table(name or data["meta"].get("name", path.stem), data["meta"], data["records"])


@functools.cache
def _load_cached(name: str) -> Table:
    return load_file(TABLES.get(name), name)


def load(name: str = "digits") -> Table:
    """The shipped table ``name`` (loaded once per process); unknown names list the known ones."""
    return _load_cached(name)
