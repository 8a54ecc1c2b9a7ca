"""benchmarks/storage_throughput.py: its workers, summary and page (no server, no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("storage_throughput")


def _run(library: str, database: str, workers: int, rate: float) -> dict:
    return {
        "library": library,
        "database": database,
        "workers": workers,
        "trials": int(rate * 2),
        "seconds": 2.0,
        "per_second": rate,
        "errors": 0,
        "error_kinds": [],
        "load_before": 1.5,
    }


def test_workers_store_every_trial_they_count(bench, tmp_path: Path) -> None:
    # Two real workers per library on a SQLite file: the trials counted are the trials stored.
    dbs = bench.Databases(tmp_path, None)
    for library in bench.LIBRARIES:
        with dbs.fresh("sqlite", library) as url:
            bench._create_study(library, url, "s")
            results = bench._run_workers(bench._throughput_worker, 2, (library, url, "s", 0.3))
            counted = sum(r["count"] for r in results)
            assert counted > 0 and not any(r["errors"] for r in results)
            if library == "metatune":
                from metatune import load_study

                trials = load_study("s", url).trials
                stored = sum(t.state.value == "complete" for t in trials)
            else:
                import optuna

                stored = len(optuna.load_study(study_name="s", storage=url).trials)
            assert stored == counted
    assert not list(tmp_path.iterdir())  # each run's database is removed after it


def test_summary_takes_medians_and_the_page_names_no_folder(bench, tmp_path: Path) -> None:
    runs = [_run("metatune", "sqlite", 4, r) for r in (100.0, 120.0, 90.0)] + [
        _run("optuna", "sqlite", 4, r) for r in (50.0, 40.0, 60.0)
    ]
    rows = bench.summarize(runs)
    assert len(rows) == 1
    assert rows[0]["metatune"]["median"] == 100.0 and rows[0]["optuna"]["median"] == 50.0
    assert rows[0]["metatune"]["min"] == 90.0 and rows[0]["ratio"] == pytest.approx(2.0)
    gp_runs = [
        {
            "database": "sqlite",
            "workers": 8,
            "asks": 4,
            "ask_seconds": [2.0, 0.5, 0.4, 0.6],
            "first_ask_seconds": [2.0],
            "later_ask_seconds": [0.5, 0.4, 0.6],
            "load_before": 2.0,
        }
    ]
    gp_rows = bench.summarize_gp(gp_runs)
    assert [(g["which"], g["median"]) for g in gp_rows] == [("first", 2.0), ("later", 0.5)]
    data = {
        "command": f"python {tmp_path}/benchmarks/storage_throughput.py --out {tmp_path}",
        "date": "2026-01-01 00:00 UTC",
        "minutes": 1.0,
        "machine": {"platform": "p", "cpu": "c", "cpu_count": 2, "python": "3.11"},
        "versions": {},
        "postgres": "postgres (PostgreSQL) 15",
        "config": {"seconds": 2.0, "repeats": 3},
        "runs": runs,
        "gp_runs": gp_runs,
        "meaning": bench._meaning(rows),
    }
    page = tmp_path / "page.md"
    bench.write_markdown(data, rows, gp_rows, page)
    text = page.read_text()
    assert text.index("| SQLite (file) | 4 |") < text.index("## How it was run")
    assert "`python benchmarks/storage_throughput.py --out docs/benchmarks`" in text
    assert str(tmp_path) not in text
    assert "at least as fast as Optuna at every one" in text
