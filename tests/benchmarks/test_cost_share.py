"""The cost-share family of synthetic pipelines and its summary page."""

import json

import numpy as np
import pytest

from metatune.benchmarks.pipelines import cost_share_pipeline, run_synthetic


@pytest.fixture(scope="module")
def cs(load_benchmark):
    return load_benchmark("pipelines_cost_share")


@pytest.mark.parametrize("share", [0.05, 0.3])
def test_the_last_stage_takes_its_share_of_a_fresh_trial(share):
    sim = cost_share_pipeline(share).make()
    rng = np.random.default_rng(0)
    costs = []
    for _ in range(3000):
        params = {n: sim.space[n].from_uniform(float(rng.random())) for n in sim.space}
        costs.append([sim.stage_cost(k, params) for k in range(sim.n_stages)])
    costs = np.array(costs)
    assert costs[:, 1].mean() / costs.sum(1).mean() == pytest.approx(share, abs=0.01)
    assert costs.sum(1).mean() == pytest.approx(40.0, rel=0.03)
    # every stage's cost spans 0.5x to 1.5x of its mean
    assert costs[:, 1].min() >= 0.5 * share * 40 - 1e-9
    assert costs[:, 1].max() <= 1.5 * share * 40 + 1e-9


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, float("nan")])
def test_a_share_outside_the_open_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="last_share"):
        cost_share_pipeline(bad)
    with pytest.raises(ValueError, match="mean_cost"):
        cost_share_pipeline(0.1, mean_cost=0.0)


def test_runs_record_each_stage_cost_with_cached_stages_at_epsilon():
    # ms-bo re-tunes the last stage on the best first stage: every trial after warm-up reuses it
    run = run_synthetic("ms-bo", 0, 160.0, pipeline=cost_share_pipeline(0.1), n_warmup=3)
    assert len(run["stage_costs"]) == run["n_trials"] > 3
    for costs, reused in zip(run["stage_costs"], run["reused_stages"], strict=True):
        assert len(costs) == 2
        if reused:
            assert costs[0] == pytest.approx(0.1)  # the simulated cache's epsilon
        else:
            assert costs[0] >= 0.5 * 36 - 1e-9
    assert any(run["reused_stages"][3:])
    assert np.sum(run["stage_costs"]) == pytest.approx(run["costs"][-1])


def _run(bench, method, seed, n, stage_costs):
    return {
        "benchmark": bench,
        "method": method,
        "seed": seed,
        "budget": 100.0,
        "n_warmup": 1,
        "n_trials": n,
        "best": -3.0 if method == "eeipu" else -2.0,
        "optimal_value": -3.86278,
        "costs": [float(c) for c in np.cumsum([sum(c) for c in stage_costs])],
        "best_so_far": [-2.0] * n,
        "reused_stages": [0 if c[0] > 1 else 1 for c in stage_costs],
        "stage_costs": stage_costs,
        "wall_seconds": 1.0,
        "error": None,
    }


def _data(cs):
    b10 = cost_share_pipeline(0.1).name
    b50 = cost_share_pipeline(0.5).name
    runs = [
        _run(b10, "eeipu", 0, 4, [[36, 4], [0.1, 4], [0.1, 4], [0.1, 4]]),
        _run(b10, "ei", 0, 2, [[36, 4], [36, 4]]),
        _run(b10, "eeipu", 1, 3, [[36, 4], [0.1, 4], [0.1, 4]]),
        _run(b10, "ei", 1, 1, [[36, 4]]),
        _run(b50, "eeipu", 0, 3, [[20, 20], [0.1, 20], [20, 20]]),
        _run(b50, "ei", 0, 3, [[20, 20], [20, 20], [20, 20]]),
        _run("hartmann-levy", "ei", 0, 3, [[20, 20], [20, 20], [20, 20]]),  # not in the family
    ]
    meta = {"command": "test", "date": "today", "machine": "here", "wall_minutes": 0.0}
    return {"meta": meta, "runs": runs}


def test_summary_pairs_seeds_and_measures_the_share_on_fresh_trials(cs):
    rows = cs.summary_rows(_data(cs)["runs"], ["eeipu", "ei"])
    assert [r["share"] for r in rows] == [0.1, 0.5]  # hartmann-levy is left out
    assert rows[0]["ratio_by"]["eeipu"] == [2.0, 3.0]  # 4 / 2 in seed 0, 3 / 1 in seed 1
    assert rows[0]["measured_share"] == pytest.approx(0.1)  # cached trials do not count
    assert rows[1]["ratio_by"]["eeipu"] == [1.0]
    assert rows[1]["measured_share"] == pytest.approx(0.5)


def test_page_and_plot_from_earlier_runs(cs, tmp_path):
    src = tmp_path / "runs.json"
    src.write_text(json.dumps(_data(cs)))
    out = tmp_path / "page"
    assert cs.main(["--from", str(src), "--out", str(out), "--methods", "eeipu,ei"]) == 0
    page = (out / "cost-share.md").read_text()
    assert "| 10% (10.0%) | 2.50x [2.00, 3.00] | 10.0x |" in page
    assert "| 50% (50.0%) | 1.00x [1.00, 1.00] | 2.0x |" in page
    assert (out / "cost-share.png").stat().st_size > 0


def test_bad_arguments_are_refused_before_any_run(cs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cs.main(["--shares", "0.07", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--shares" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cs.main(["--methods", "carbo,ei", "--out", str(tmp_path)])
    assert "must include eeipu and ei" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_page_shows_what_a_cached_prefix_still_pays_on_the_real_pipelines(cs, tmp_path):
    data = _data(cs)
    data["meta"]["real_shares"] = [
        {
            "pipeline": "vision",
            "stages": ["prep", "phase1", "phase2", "evaluate"],
            "shares": [0.02, 0.62, 0.35, 0.01],
            "mean_cost": 2.2,
            "trials": 8,
        }
    ]
    src = tmp_path / "runs.json"
    src.write_text(json.dumps(data))
    assert cs.main(["--from", str(src), "--out", str(tmp_path), "--methods", "eeipu,ei"]) == 0
    page = (tmp_path / "cost-share.md").read_text()
    assert (
        "| vision | 2.20 | prep 2%, phase1 62%, phase2 35%, evaluate 1% | "
        "after prep: 98%, after phase1: 36%, after phase2: 1% |" in page
    )
