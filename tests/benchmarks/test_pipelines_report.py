"""The pipelines benchmark page: relative trial cost, ties at the optimum, kept notes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("pipelines")


def _run(method, seed, costs, best, reused=None, n_warmup=2):
    cumulative = [sum(costs[: i + 1]) for i in range(len(costs))]
    return {
        "benchmark": "hartmann-levy",
        "method": method,
        "seed": seed,
        "budget": 100.0,
        "n_warmup": n_warmup,
        "n_trials": len(costs),
        "best": best,
        "optimal_value": -3.86278,
        "values": [0.0] * len(costs),
        "costs": cumulative,
        "best_so_far": [best] * len(costs),
        "reused_stages": reused or [0] * len(costs),
        "wall_seconds": 1.0,
        "error": None,
    }


def test_relative_trial_cost_compares_with_the_warm_up(bench):
    # warm-up trials cost 10 each; the two after it cost 5 and 3: mean 4 / 10
    assert bench.relative_trial_cost([10, 20, 25, 28], n_warmup=2) == pytest.approx(0.4)
    assert bench.relative_trial_cost([10, 20], n_warmup=2) is None  # nothing after warm-up


def test_page_reports_cost_per_trial_ties_and_appends_notes(bench, tmp_path):
    runs = [
        _run("eeipu", 0, [10, 10, 2, 2, 2], best=-3.8627723, reused=[0, 0, 1, 1, 1]),
        _run("ei", 0, [10, 10, 10, 10], best=-3.8627734),
        _run("carbo", 0, [10, 10, 8], best=-3.0),
    ]
    data = {
        "meta": {
            "command": "test",
            "date": "today",
            "machine": "here",
            "wall_minutes": 0.0,
            "workers": 1,
            "seeds": 1,
            "note": "",
        },
        "runs": runs,
    }
    stats = bench.summarize(runs)
    assert stats["hartmann-levy"]["eeipu"]["cost_median"] == pytest.approx(0.2)
    assert stats["hartmann-levy"]["ei"]["cost_median"] == pytest.approx(1.0)
    page = tmp_path / "pipelines.md"
    bench.write_markdown(data, stats, page, notes="- **Hand-written.** Kept.\n")
    text = page.read_text()
    assert "| eeipu | 5 |" in text and "| 0.20 |" in text
    # 1.1e-6 above EI at the optimum is a tie, not "worse"
    assert "at least as good as every baseline's (tied with ei:" in text
    # the notes follow the tables; only "How it was run" comes after them
    assert text.index("| eeipu | 5 |") < text.index("- **Hand-written.** Kept.")
    assert text.index("- **Hand-written.** Kept.") < text.index("\n## How it was run\n")

    # A real gap is still reported as worse.
    runs[1]["best"] = -3.87
    bench.write_markdown(data, bench.summarize(runs), page)
    assert "worse than ei (-3.87)'s" in page.read_text()


def test_render_only_merge_keeps_the_runs_and_the_notes(bench, tmp_path):
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps(
            {
                "meta": {"command": "x", "date": "d", "wall_minutes": 1.0, "workers": 1},
                "runs": [_run("eeipu", 0, [10, 10, 2], -3.0), _run("ei", 0, [10, 10, 10], -2.0)],
            }
        )
    )
    notes = tmp_path / "notes.md"
    notes.write_text("- a note\n")
    out = tmp_path / "out"
    code = bench.main(
        ["--benchmarks", "", "--merge", str(earlier), "--out", str(out), "--notes", str(notes)]
    )
    assert code == 0
    text = (out / "pipelines.md").read_text()
    assert "EEIPU / EI candidates (medians): 1.00x" in text
    assert text.index("- a note") < text.index("\n## How it was run\n")
    with pytest.raises(SystemExit):
        bench.main(["--benchmarks", "", "--merge", str(earlier), "--notes", str(tmp_path / "no")])


def test_method_labels_carry_optimizer_options(bench):
    assert bench.parse_method("eeipu") == ("eeipu", {})
    assert bench.parse_method("eeipu+cost_inputs=prefix+n_top=3") == (
        "eeipu",
        {"cost_inputs": "prefix", "n_top": 3},
    )
    with pytest.raises(ValueError, match="expected \\+option=value"):
        bench.parse_method("eeipu+prefix")
    bench.check_method("ms-carbo+cost_inputs=prefix")
    with pytest.raises(ValueError, match="unknown method 'eipu'"):
        bench.check_method("eipu")
    with pytest.raises(ValueError, match="cost_inputs must be"):
        bench.check_method("eeipu+cost_inputs=everything")
    assert bench.ordered_methods({"eeipu+n_top=3", "ei", "eeipu"}) == [
        "eeipu",
        "ei",
        "eeipu+n_top=3",
    ]


def test_a_variant_runs_under_its_own_label(tmp_path):
    out = tmp_path / "out"
    script = [sys.executable, str(ROOT / "benchmarks" / "pipelines.py")]
    argv = ["--benchmarks", "hartmann-levy", "--seeds", "1", "--workers", "1"]
    argv += ["--budget-scale", "0.25", "--out", str(out), "--methods", "ei,ei+n_candidates=64"]
    done = subprocess.run(script + argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((out / "pipelines.json").read_text())
    assert sorted(r["method"] for r in data["runs"]) == ["ei", "ei+n_candidates=64"]
    assert all(r["error"] is None and r["n_trials"] > 10 for r in data["runs"])
    assert "| ei+n_candidates=64 |" in (out / "pipelines.md").read_text()
    # A bad option is refused before any run starts, naming the option.
    bad = subprocess.run(
        script + [*argv[:-1], "ei+n_candidates=-1"], capture_output=True, text=True, timeout=240
    )
    assert bad.returncode == 2 and "n_candidates must be" in bad.stderr


def test_runs_of_one_benchmark_at_different_budgets_are_refused(bench, tmp_path, capsys):
    old = [dict(_run("ei", s, [10, 10], best=-3.0), budget=2400.0) for s in range(2)]
    planned = {("hartmann-levy", "eeipu"): 4800.0}
    assert bench.budget_conflicts(planned, [old]) == {"hartmann-levy": [2400.0, 4800.0]}
    assert bench.budget_conflicts({("hartmann-levy", "eeipu"): 2400.0}, [old]) == {}
    # a method run again replaces its merged runs, whatever their budget
    assert bench.budget_conflicts({("hartmann-levy", "ei"): 4800.0}, [old]) == {}
    # and a pair taken from an earlier file hides the same pair in a later one
    later = [dict(r, budget=99.0) for r in old]
    assert bench.budget_conflicts({}, [old, later]) == {}
    src = tmp_path / "old.json"
    src.write_text(json.dumps({"meta": {}, "runs": old}))
    with pytest.raises(SystemExit) as exc:
        bench.main(
            ["--benchmarks", "hartmann-levy", "--methods", "eeipu", "--budget-scale", "2"]
            + ["--merge", str(src), "--out", str(tmp_path / "page")]
        )
    assert exc.value.code == 2
    assert "hartmann-levy: 2400, 4800" in capsys.readouterr().err
    assert not (tmp_path / "page").exists()  # refused before any run


def test_paired_comparison_counts_seed_wins_and_tests_them(bench):
    ours = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    better = {k: 0.5 for k in ours}
    wins, n, p = bench.paired_comparison(ours, better)
    assert (wins, n) == (5, 5)
    assert p == pytest.approx(0.0625)  # the smallest two-sided p five seeds allow
    mixed = {0: 0.9, 1: 1.2, 2: 0.95, 3: 1.1, 4: 1.0 + 1e-9}  # seed 4 is a tie
    wins, n, p = bench.paired_comparison(ours, mixed)
    assert (wins, n) == (2, 5) and p > 0.5
    # only seeds both ran are paired; all ties: no test
    assert bench.paired_comparison(ours, {0: 1.0, 9: 0.1}) == (0, 1, None)


def test_page_pairs_seeds_for_a_baseline_with_a_lower_median(bench, tmp_path):
    runs = [_run("eeipu", s, [10, 10, 2], best=-3.0 + 0.01 * s) for s in range(3)]
    runs += [_run("carbo", s, [10, 10, 8], best=-3.1 + 0.2 * (s == 2)) for s in range(3)]
    data = {
        "meta": {
            "command": "t",
            "date": "d",
            "machine": "m",
            "wall_minutes": 0.0,
            "workers": 1,
            "seeds": 3,
            "note": "",
        },
        "runs": runs + [_run("ei", 0, [10, 10, 10], best=-2.0)],
    }
    page = tmp_path / "p.md"
    bench.write_markdown(data, bench.summarize(data["runs"]), page)
    text = page.read_text()
    assert "worse than carbo (-3.1)'s" in text
    assert "carbo found a lower best in 2 of 3 seeds (Wilcoxon signed-rank, two-sided p = " in text
