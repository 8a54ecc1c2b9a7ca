"""MetatuneSearch: Ray Tune trials chosen by a metatune study kept in metatune storage."""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from metatune import Categorical, Float, Int, Space, cli, load_study  # noqa: E402
from metatune.integrations.ray_tune import MetatuneSearch, convert_search_space  # noqa: E402
from metatune.trial import TrialState  # noqa: E402

STEPS = 6  # a trial reports this many results unless ASHA stops it first
MAX_T = 8  # ASHA's horizon, beyond STEPS: only the trainable itself ends a full trial
N_SAMPLES = 8


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (starting one takes seconds)."""
    # Ray's workers cannot import this test file by name: send its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        # address="local": a Ray of its own, never a cluster already running on the machine.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield
    if started:
        ray.shutdown()


def _trainable(config: dict[str, Any]) -> None:
    # The first trial to start fails (an O_EXCL marker file), the others report a curve that
    # falls towards (x - 0.3)^2 + (y - 2)^2 / 10 as steps go by.
    marker = os.path.join(config["marker_dir"], "failed-once")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        raise RuntimeError("boom: the first trial fails on purpose")
    target = (config["x"] - 0.3) ** 2 + (config["y"] - 2) ** 2 / 10
    for step in range(1, STEPS + 1):
        tune.report({"loss": target + 1.0 / step, "step": step})


@pytest.fixture(scope="module")
def tuned(local_ray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One Tuner run: GP suggestions, ASHA stopping, one failing trial, a SQLite study."""
    root = tmp_path_factory.mktemp("ray_tune")
    url = f"sqlite:///{root / 'study.db'}"
    searcher = MetatuneSearch(
        {"x": Float(-1.0, 1.0), "y": Int(0, 4)},
        optimizer="gp",
        optimizer_options={"n_startup_trials": 4, "n_candidates": 64},
        storage=url,
        study_name="ray-asha",
        seed=3,
    )
    tuner = tune.Tuner(
        _trainable,
        param_space={"marker_dir": str(root)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searcher,
            scheduler=ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=2),
            num_samples=N_SAMPLES,
            max_concurrent_trials=2,
            reuse_actors=True,  # one actor runs trial after trial: seconds saved per trial
        ),
        run_config=tune.RunConfig(storage_path=str(root / "ray"), name="exp", verbose=0),
    )
    results = tuner.fit()
    return {"root": root, "url": url, "searcher": searcher, "results": results}


def test_tuner_with_asha_stores_every_trial_in_the_study(tuned: dict[str, Any]) -> None:
    study = load_study("ray-asha", tuned["url"])
    trials = study.trials
    searcher = tuned["searcher"]
    assert len(trials) == N_SAMPLES
    assert sorted(searcher.trial_numbers.values()) == list(range(N_SAMPLES))
    assert all(t.state is not TrialState.RUNNING for t in trials)
    # Distinct configurations: the running trials were pending points of each ask.
    assert len({(t.params["x"], t.params["y"]) for t in trials}) == N_SAMPLES

    by_id = {r.metrics["trial_id"]: r for r in tuned["results"] if r.error is None}
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(complete) == N_SAMPLES - 1
    for t in complete:
        ray_result = by_id[t.user_attrs["ray_tune_trial_id"]]
        assert t.value == pytest.approx(ray_result.metrics["loss"])  # the last reported loss
        assert t.params["x"] == pytest.approx(ray_result.config["x"])
        iterations = t.user_attrs["ray_tune_iterations"]
        assert iterations == ray_result.metrics["training_iteration"]
        # Marked stopped exactly when ASHA cut it before the trainable's last step.
        assert t.user_attrs["ray_tune_stopped"] is (iterations < STEPS)
    assert any(t.user_attrs["ray_tune_stopped"] for t in complete), "ASHA stopped none"
    assert any(not t.user_attrs["ray_tune_stopped"] for t in complete)


def test_a_trial_that_raises_is_recorded_failed(tuned: dict[str, Any]) -> None:
    study = load_study("ray-asha", tuned["url"])
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert len(failed) == 1
    assert "raised an error" in failed[0].error
    assert sum(r.error is not None for r in tuned["results"]) == 1
    ok_ids = {r.metrics["trial_id"] for r in tuned["results"] if r.error is None}
    assert failed[0].user_attrs["ray_tune_trial_id"] not in ok_ids
    assert tuned["searcher"].trial_numbers[failed[0].user_attrs["ray_tune_trial_id"]] == (
        failed[0].number
    )


def test_metatune_cli_shows_the_ray_tune_study(
    tuned: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code = cli.main(["trials", "--study", "ray-asha", "--storage", tuned["url"]])
    out = capsys.readouterr().out
    assert code == 0
    assert f"ray-asha (minimize): {N_SAMPLES} trials" in out
    assert "failed" in out and "complete" in out


def test_save_restore_round_trip_continues_the_study(tuned: dict[str, Any], tmp_path: Path) -> None:
    # Ray Tune saved the searcher into the experiment folder itself: as JSON, not a pickle.
    saved = glob.glob(str(tuned["root"] / "ray" / "exp" / "searcher-state-*"))
    assert saved
    state = json.loads(Path(saved[0]).read_text())
    assert state["storage"] == tuned["url"] and state["study_name"] == "ray-asha"
    assert state["trial_numbers"] == tuned["searcher"].trial_numbers

    path = tmp_path / "searcher.json"
    tuned["searcher"].save(str(path))
    restored = MetatuneSearch()
    restored.restore(str(path))
    assert restored.metric == "loss" and restored.mode == "min"
    assert restored.trial_numbers == tuned["searcher"].trial_numbers
    assert restored.study.name == "ray-asha"
    config = restored.suggest("new-trial")
    assert set(config) == {"x", "y"}
    assert restored.trial_numbers["new-trial"] == N_SAMPLES  # numbering goes on in storage
    restored.on_trial_complete("new-trial", {"loss": 0.5, "training_iteration": 1})
    restored.close()
    again = load_study("ray-asha", tuned["url"]).trials[N_SAMPLES]
    assert again.state is TrialState.COMPLETE and again.value == 0.5


def test_in_memory_study_travels_inside_the_saved_state(tmp_path: Path) -> None:
    searcher = MetatuneSearch(
        {"x": Float(0.0, 1.0)}, metric="acc", mode="max", optimizer="random", seed=1
    )
    for i in range(3):
        searcher.suggest(f"t{i}")
    searcher.on_trial_result("t0", {"acc": 0.2, "training_iteration": 1})
    searcher.on_trial_result("t0", {"acc": 0.25, "training_iteration": 2})
    searcher.on_trial_complete("t0", {"acc": 0.25, "training_iteration": 2})  # returned
    searcher.on_trial_complete("t1", error=True)
    path = tmp_path / "state.json"
    searcher.save(str(path))
    restored = MetatuneSearch()
    restored.restore(str(path))
    before = [(t.number, t.state, t.value, t.params) for t in searcher.study.trials]
    after = [(t.number, t.state, t.value, t.params) for t in restored.study.trials]
    assert after == before
    assert restored.study.direction == "maximize"
    restored.on_trial_complete("t2", {"acc": 0.9, "training_iteration": 1})
    assert restored.study.best_value == 0.9
    assert restored.study.trials[0].user_attrs["ray_tune_stopped"] is False
    assert restored.study.trials[2].user_attrs["ray_tune_stopped"] is True  # result unseen


def test_set_search_properties_converts_tune_distributions() -> None:
    config = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "dropout": tune.uniform(0.0, 0.5),
        "units": tune.randint(1, 5),
        "act": tune.choice(["relu", "tanh"]),
        "opt": {"depth": tune.lograndint(1, 100), "momentum": Float(0.5, 0.99)},
        "epochs": 3,  # a constant: Ray Tune merges it into every config
    }
    searcher = MetatuneSearch(optimizer="random", seed=0)
    assert searcher.set_search_properties("loss", "min", config) is True
    assert searcher.metric == "loss" and searcher.mode == "min"
    expected = Space(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "dropout": Float(0.0, 0.5),
            "units": Int(1, 4),  # randint excludes its upper bound
            "act": Categorical(["relu", "tanh"]),
            "opt.depth": Int(1, 99, log=True),
            "opt.momentum": Float(0.5, 0.99),
        }
    )
    assert searcher.study.space == expected
    suggested = searcher.suggest("a")
    assert set(suggested) == {"lr", "dropout", "units", "act", "opt"}
    assert set(suggested["opt"]) == {"depth", "momentum"}
    assert 1 <= suggested["units"] <= 4 and 1 <= suggested["opt"]["depth"] <= 99
    # The study is open now: a different space is refused, as Ray Tune's protocol asks.
    assert searcher.set_search_properties("loss", "min", {"z": tune.uniform(0, 1)}) is False


def test_set_search_properties_refuses_a_second_space_but_takes_metric_and_mode() -> None:
    searcher = MetatuneSearch({"x": Float(0.0, 1.0)}, optimizer="random")
    assert searcher.set_search_properties("score", "max", {"x": tune.uniform(5, 6)}) is False
    assert searcher.set_search_properties("score", "max", {"batch": 32}) is True
    assert searcher.metric == "score" and searcher.mode == "max"
    assert searcher.study.direction == "maximize"


@pytest.mark.parametrize(
    ("domain", "fragment"),
    [
        (tune.grid_search([1, 2]), "grid_search"),
        (tune.randn(0, 1), "tune.uniform"),
        (tune.quniform(0, 1, 0.1), "quantized"),
        (tune.qrandint(0, 10, 2), "q=2"),
    ],
)
def test_unsupported_distributions_name_the_parameter(domain: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        convert_search_space({"p": domain})
    assert "'p'" in str(info.value)


def test_bad_arguments_fail_before_any_trial() -> None:
    with pytest.raises(ValueError, match="mode"):
        MetatuneSearch({"x": Float(0, 1)}, metric="m", mode="best")
    with pytest.raises(ValueError, match="storage"):
        MetatuneSearch({"x": Float(0, 1)}, storage="runs.db")
    with pytest.raises(Exception, match="no-such-optimizer"):
        MetatuneSearch({"x": Float(0, 1)}, optimizer="no-such-optimizer")
    searcher = MetatuneSearch(optimizer="random")
    with pytest.raises(RuntimeError, match="search space"):
        searcher.suggest("t")
    no_metric = MetatuneSearch({"x": Float(0, 1)}, optimizer="random")
    with pytest.raises(RuntimeError, match="metric and mode"):
        no_metric.suggest("t")


def test_a_trial_without_the_metric_fails_with_the_reason() -> None:
    searcher = MetatuneSearch({"x": Float(0.0, 1.0)}, metric="loss", mode="min", optimizer="random")
    searcher.suggest("t")
    searcher.on_trial_complete("t", {"accuracy": 0.9, "training_iteration": 3})
    trial = searcher.study.trials[0]
    assert trial.state is TrialState.FAILED
    assert "'loss'" in trial.error and "accuracy" in trial.error


def test_a_result_for_a_trial_failed_meanwhile_is_kept_as_a_new_trial(tmp_path: Path) -> None:
    # E.g. a restarted driver: the old driver's running trials were failed as stale, and Ray
    # Tune then finishes one of them.
    searcher = MetatuneSearch(
        {"x": Float(0.0, 1.0)},
        metric="loss",
        mode="min",
        optimizer="random",
        storage=f"sqlite:///{tmp_path / 's.db'}",
    )
    params = searcher.suggest("t")
    study = searcher.study
    record = study.storage.get_study(study.name)
    study.storage.finish_trial(record.id, 0, TrialState.FAILED, error="stale trial: test")
    searcher.on_trial_complete("t", {"loss": 0.125, "training_iteration": 1})
    searcher.close()
    first, again = study.trials
    assert first.state is TrialState.FAILED
    assert again.state is TrialState.COMPLETE and again.value == 0.125
    assert again.params == params and again.user_attrs["ray_tune_retold_from"] == 0
    assert searcher.trial_numbers == {"t": 1}


def test_a_last_result_that_is_not_a_finite_number_fails_the_trial() -> None:
    searcher = MetatuneSearch({"x": Float(0.0, 1.0)}, metric="loss", mode="min", optimizer="random")
    searcher.suggest("t")
    searcher.on_trial_result("t", {"loss": 0.5, "training_iteration": 1})
    searcher.on_trial_result("t", {"loss": float("nan"), "training_iteration": 2})
    searcher.on_trial_complete("t", {"loss": float("nan"), "training_iteration": 2})
    trial = searcher.study.trials[0]
    assert trial.state is TrialState.FAILED and "nan" in trial.error


def test_the_driver_sends_heartbeats_for_its_running_trials(tmp_path: Path) -> None:
    import time

    searcher = MetatuneSearch(
        {"x": Float(0.0, 1.0)},
        metric="loss",
        mode="min",
        optimizer="random",
        storage=f"sqlite:///{tmp_path / 's.db'}",
        heartbeat_interval=0.05,
    )
    searcher.suggest("t")
    storage = searcher.study.storage
    study_id = storage.get_study(searcher.study.name).id
    ((_, _, first_beat),) = storage._running_owners(study_id)
    beat = first_beat
    deadline = time.monotonic() + 30  # far beyond the 0.05 s interval: no timing assumption
    while beat == first_beat and time.monotonic() < deadline:
        time.sleep(0.05)
        ((_, _, beat),) = storage._running_owners(study_id)
    assert beat > first_beat
    searcher.on_trial_complete("t", {"loss": 1.0, "training_iteration": 1})
    searcher.close()
    assert storage._running_owners(study_id) == []


def test_a_nas_space_with_a_nas_optimizer() -> None:
    from metatune.nas import Cell

    space = Space({"cell": Cell(nodes=4), "lr": Float(1e-3, 1e-1, log=True)})
    searcher = MetatuneSearch(
        space, metric="acc", mode="max", optimizer="regularized-evolution", seed=0
    )
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        space.validate(config)
        score = sum(op == "nor_conv_3x3" for op in config["cell"]) + config["lr"]
        searcher.on_trial_complete(f"t{i}", {"acc": score, "training_iteration": 1})
    trials = searcher.study.trials
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({tuple(t.params["cell"]) for t in trials}) > 1
