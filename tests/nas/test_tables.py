"""The digits NAS table shipped in the package: complete, keyed by canonical forms, looked up."""

from __future__ import annotations

import gzip
import json

import pytest

from metatune._registry import UnknownNameError
from metatune.nas import Cell
from metatune.nas.tables import load, load_file


@pytest.fixture(scope="module")
def table():
    return load("digits")


def test_table_covers_every_architecture_of_its_cell(table):
    cell = table.cell
    assert isinstance(cell, Cell)
    assert len(table) >= 1000
    classes = {cell.canonical(v) for v in cell.enumerate()}
    assert set(table) == classes  # every value of the cell maps to exactly one record
    for key, rec in table.items():
        assert key == rec.canonical == cell.canonical(list(rec.value))
        assert cell.contains(list(rec.value))


def test_records_hold_every_epoch_and_plausible_numbers(table):
    epochs = table.epochs
    assert epochs >= 4 and table.meta["epochs_recorded"] == list(range(1, epochs + 1))
    for rec in table.values():
        assert len(rec.valid_accuracy) == len(rec.test_accuracy) == len(rec.train_seconds) == epochs
        assert all(0.0 <= a <= 1.0 for a in rec.valid_accuracy + rec.test_accuracy)
        assert all(
            b >= a for a, b in zip(rec.train_seconds[:-1], rec.train_seconds[1:], strict=True)
        )
        assert rec.params > 0
    build = table.meta["build"]
    assert build["wall_seconds"] > 0 and min(build["workers"]) >= 1
    # architectures differ: the table is not one number repeated
    finals = [rec.valid() for rec in table.values()]
    assert max(finals) - min(finals) > 0.5


def test_lookup_optimum_and_rank(table):
    cell = table.cell
    best = table.optimum("valid")
    assert best.valid() == max(r.valid() for r in table.values())
    assert table.rank(best.value, "valid")["better"] == 0
    # an isomorphic or dead-edge variant finds the same record
    for value in cell.enumerate():
        if tuple(value) != best.value and cell.canonical(value) == best.canonical:
            assert table.lookup(value) is best
            break
    empty = ["none"] * len(cell.edges)
    rank = table.rank(empty, "test")
    assert rank["size"] == len(table) and rank["percentile"] > 50.0
    assert table.lookup(empty).valid(1) == table.lookup(empty).valid_accuracy[0]
    with pytest.raises(ValueError, match="epoch must be an integer"):
        best.valid(0)
    with pytest.raises(ValueError, match="is not a value of"):
        table.lookup(["conv_7x7"] * len(cell.edges))


def test_unknown_table_and_bad_files_are_refused(tmp_path):
    with pytest.raises(UnknownNameError, match="digits"):
        load("cifar")
    bad = tmp_path / "t.json.gz"
    with gzip.open(bad, "wt") as fh:
        json.dump({"format": "something-else", "meta": {}, "records": []}, fh)
    with pytest.raises(ValueError, match="is not a NAS table"):
        load_file(bad)
