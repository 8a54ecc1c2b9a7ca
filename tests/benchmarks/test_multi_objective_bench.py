"""benchmarks/multi_objective.py: its hypervolume on fronts whose area is known, and a tiny run."""

import json
import math

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("multi_objective")


def test_hypervolume_of_a_staircase_front(bench):
    # Minimized points (1, 3), (2, 2), (3, 1) below the reference point (4, 4): the dominated
    # region is a staircase of 3 + 2 + 1 unit squares.
    front = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
    assert bench.hypervolume(front, [4.0, 4.0]) == pytest.approx(6.0)
    # A dominated point and one outside the reference box add nothing.
    assert bench.hypervolume([*front, [3.0, 3.0], [5.0, 0.0]], [4.0, 4.0]) == pytest.approx(6.0)
    assert bench.hypervolume([[5.0, 5.0]], [4.0, 4.0]) == 0.0


def test_hypervolume_in_three_objectives(bench):
    # One point at the origin against (1, 2, 3): a box of volume 6; a second point (0.5, 0, 0)
    # is dominated by it.
    assert bench.hypervolume([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], [1.0, 2.0, 3.0]) == pytest.approx(
        6.0
    )


def test_hypervolume_curve_is_the_prefix_hypervolume(bench):
    losses = [[3.0, 3.0], [1.0, 3.0], [3.5, 3.5], [3.0, 1.0], [2.0, 2.0]]
    curve = bench.hypervolume_curve(losses, [4.0, 4.0])
    expected = [bench.hypervolume(losses[: i + 1], [4.0, 4.0]) for i in range(len(losses))]
    assert curve == pytest.approx(expected)
    assert curve == pytest.approx([1.0, 3.0, 3.0, 5.0, 6.0])


def test_max_hv_of_a_problem_bounds_what_is_found(bench):
    info = bench.problem_info("BraninCurrin")
    assert info["num_objectives"] == 2 and info["max_hv"] > 0
    assert bench.log_hv_difference(info["max_hv"] - 0.01, info["max_hv"]) == pytest.approx(-2.0)
    assert math.isnan(bench.log_hv_difference(1.0, None))


def test_tiny_run_writes_the_page_and_resumes_from_the_cache(bench, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = [
        "--problems", "BraninCurrin",
        "--methods", "random,nsga2,optuna-nsga2",
        "--seeds", "2", "--evals", "12", "--workers", "1",
        "--out", str(out), "--cache", str(cache),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    data = json.loads((out / "multi-objective.json").read_text())
    assert len(data["runs"]) == 6 and not any(r["error"] for r in data["runs"])
    for r in data["runs"]:
        hv = r["hypervolume"]
        assert len(hv) == 12 and all(b >= a for a, b in zip(hv, hv[1:], strict=False))
        assert hv[-1] <= data["problems"]["BraninCurrin"]["max_hv"]
    assert len(list(cache.glob("*.json"))) == 6
    page = (out / "multi-objective.md").read_text()
    assert page.index("| problem |") < page.index("## How it was run")
    assert page.rstrip().splitlines()[-1].startswith("- Machine")
    assert str(tmp_path) not in page
    assert (out / "multi-objective.png").stat().st_size > 0
    # A second run reads every run from the cache: the same hypervolumes.
    before = {(r["method"], r["seed"]): r["hypervolume"] for r in data["runs"]}
    assert bench.main(argv) == 0
    again = json.loads((out / "multi-objective.json").read_text())
    assert {(r["method"], r["seed"]): r["hypervolume"] for r in again["runs"]} == before
    assert all("cache_version" in r for r in again["runs"])
    assert not any("cache_version" in r for r in data["runs"])


@pytest.mark.parametrize(
    "options", [{"reference": "front"}, {"output_transform": "standardize", "fit_iters": 2}]
)
def test_mo_gp_options_the_benchmark_compared(options):
    import metatune

    study = metatune.Study(
        {"x": metatune.Float(0, 1), "y": metatune.Float(0, 1)},
        directions=["minimize", "minimize"],
        optimizer="mo-gp",
        seed=1,
        optimizer_options={"n_startup_trials": 3, "n_candidates": 64, **options},
    )
    for _ in range(5):
        t = study.ask()
        study.tell(t, [t.params["x"], (1 - t.params["x"]) ** 2 + t.params["y"]])
    assert len(study.trials) == 5 and study.best_trials
    with pytest.raises(ValueError, match="reference must be one of"):
        metatune.Study(
            {"x": metatune.Float(0, 1)},
            directions=["minimize", "minimize"],
            optimizer="mo-gp",
            optimizer_options={"reference": "nadir"},
        )
