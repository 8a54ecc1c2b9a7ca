"""Meta-training with the lockstep engine (`engine="vectorized"`): runs, checkpoints, resumes."""

import json
import math

import numpy as np
import pytest

from metatune.lhopt.controller import Controller
from metatune.lhopt.policy import Policy
from metatune.lhopt.training import MetaTrainConfig, meta_train, vectorized_iteration


def _config(**kw):
    base = dict(
        iterations=2,
        episodes_per_iteration=4,
        min_steps=30,
        max_steps=40,
        min_policy_steps=3,
        max_policy_steps=4,
        ppo_epochs=1,
        hidden=16,
        steps_grid=10,
        families=["mlp-linreg", "mlp-classify"],
        engine="vectorized",
        groups=2,
    )
    return MetaTrainConfig(**{**base, **kw})


def test_the_default_engine_is_unchanged():
    assert MetaTrainConfig().engine == "process"


def test_vectorized_meta_training_runs_checkpoints_and_resumes(tmp_path):
    meta_train(tmp_path, _config(iterations=1))
    assert (tmp_path / "policy.pt").exists()
    meta_train(tmp_path, _config(iterations=2))  # resumes and extends
    log = json.loads((tmp_path / "log.json").read_text())
    assert [e["iteration"] for e in log] == [1, 2]
    assert all(math.isfinite(e["mean_reward"]) for e in log)


def test_rollouts_repeat_each_situation_with_its_own_action_seed():
    cfg = _config(rollouts=2, groups=1)
    policy = Policy(Controller.policy_config(hidden=16))
    eps = vectorized_iteration(policy, np.random.default_rng(0), cfg)
    assert len(eps) == 4
    for a, b in (eps[0:2], eps[2:4]):
        assert (a["lr_exponent"], a["n_policy"], a["task"]) == (
            b["lr_exponent"],
            b["n_policy"],
            b["task"],
        )
        assert a["controller_seed"] != b["controller_seed"]
    assert all(len(e["record"]) >= 1 and -3 <= e["reward"] <= 3 for e in eps)


def test_the_vectorized_engine_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="unknown task families"):
        _config(families=["mlp-diabetes"])  # held out
    with pytest.raises(ValueError, match="unknown task families"):
        _config(families=["quadratic"])  # a process-engine family
    with pytest.raises(ValueError, match="divisible by groups"):
        _config(groups=3)
    with pytest.raises(ValueError, match="init_scale_spread"):
        _config(init_scale_spread=0.5)
    with pytest.raises(ValueError, match="engine must be one of"):
        _config(engine="gpu")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--engine", "gpu"], "engine must be one of"),
        (["--engine", "vectorized", "--families", "mlp-diabetes"], "unknown task families"),
        (["--engine", "vectorized", "--groups", "3"], "divisible by groups"),
    ],
)
def test_the_cli_refuses_bad_engine_options_before_any_work(
    capsys, tmp_path, monkeypatch, args, fragment
):
    from metatune import cli

    monkeypatch.chdir(tmp_path)
    code = cli.main(["lhopt", "train", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and fragment in err
    assert list(tmp_path.iterdir()) == []
