"""benchmarks/synthetic.py --merge: which earlier runs a page takes, and from which file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("synthetic")


def _run(function: str, method: str, seed: int, value: float) -> dict:
    return {"function": function, "method": method, "seed": seed, "values": [value], "error": None}


def _file(tmp_path: Path, name: str, runs: list[dict]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"command": f"run {name}", "date": "d", "runs": runs}))
    return str(path)


def _args(merge: list[str], methods: str = "hebo", functions: str = "") -> argparse.Namespace:
    return argparse.Namespace(
        merge=merge, merge_methods=methods, merge_functions=functions, seeds=3
    )


def test_later_file_replaces_earlier_and_functions_take_every_method(bench, tmp_path):
    first = _file(
        tmp_path,
        "a.json",
        [
            _run("Branin", "hebo", 0, 1.0),
            _run("Branin", "hebo", 1, 1.0),
            _run("Branin", "random", 0, 5.0),  # neither a merged method nor function
            _run("Ackley20", "random", 0, 7.0),  # a merged function: every method
            _run("Branin", "hebo", 5, 1.0),  # beyond the page's seeds
        ],
    )
    second = _file(tmp_path, "b.json", [_run("Branin", "hebo", 1, 2.0)])
    p = argparse.ArgumentParser()
    runs, about, functions = bench._merged_runs(
        p,
        _args([first, second], functions="Ackley20"),
        ["Branin", "Ackley20"],
        ["random", "hebo"],
        hebo_seeds=3,
    )
    got = {(r["function"], r["method"], r["seed"]): r["values"][0] for r in runs}
    assert got == {
        ("Branin", "hebo", 0): 1.0,
        ("Branin", "hebo", 1): 2.0,
        ("Ackley20", "random", 0): 7.0,
    }
    assert [a["runs"] for a in about] == [2, 1]
    assert about[1]["what"] == ["Branin/hebo"]
    assert functions == ["Ackley20"]
    assert bench._is_merged(about, functions, "Ackley20", "hebo")  # never run here
    assert bench._is_merged(about, [], "Branin", "hebo")
    assert not bench._is_merged(about, [], "Branin", "random")


def test_a_merge_method_outside_the_page_is_refused(bench, tmp_path):
    path = _file(tmp_path, "a.json", [])
    with pytest.raises(SystemExit):
        bench._merged_runs(argparse.ArgumentParser(), _args([path]), ["Branin"], ["random"], 3)
