import json
import math

import numpy as np
import pytest
import torch

from metatune.lhopt.tasks import TASK_FAMILIES, sample_task
from metatune.lhopt.training import MetaTrainConfig, meta_train, speedup_reward


@pytest.mark.parametrize("family", sorted(TASK_FAMILIES))
def test_every_task_family_trains_with_adamw(family):
    task = TASK_FAMILIES[family](3)
    opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr)
    curve = task.run(opt, 60, val_every=20)
    assert [t for t, _ in curve] == [20, 40, 60]
    first = TASK_FAMILIES[family](3).val_loss()
    assert math.isfinite(curve[-1][1]) and curve[-1][1] < first


def test_the_default_mix_is_the_one_the_shipped_policy_was_trained_on():
    from metatune.lhopt.tasks import DEFAULT_FAMILIES

    assert DEFAULT_FAMILIES == ["quadratic", "mlp-tabular", "cnn-digits", "char-lm", "majority-rnn"]
    assert MetaTrainConfig().families == DEFAULT_FAMILIES
    assert set(DEFAULT_FAMILIES) < set(TASK_FAMILIES)


def test_speedup_reward():
    base = [(10, 2.0), (20, 1.5), (40, 1.0)]
    assert speedup_reward(base, [(10, 1.2), (20, 0.9), (40, 0.5)], 40) == pytest.approx(math.log(2))
    assert speedup_reward(base, [(10, 3.0), (40, 2.0)], 40) == pytest.approx(-math.log(2))
    assert speedup_reward(base, [(10, math.inf), (40, math.nan)], 40) == -3.0
    # the target is the baseline's best loss, not its last (an overfitting baseline)
    overfit = [(10, 2.0), (20, 1.0), (40, 1.5)]
    assert speedup_reward(overfit, [(10, 1.6), (20, 1.2), (40, 2.0)], 40) == pytest.approx(
        -math.log(1.2)
    )


def test_sample_task_rejects_unknown_families():
    with pytest.raises(ValueError, match="unknown task families"):
        sample_task(np.random.default_rng(0), ["nope"])
    with pytest.raises(ValueError, match="unknown task families"):
        MetaTrainConfig(families=["nope"])


def test_meta_training_runs_checkpoints_and_resumes(tmp_path):
    cfg = MetaTrainConfig(
        iterations=2,
        episodes_per_iteration=2,
        min_steps=30,
        max_steps=40,
        min_policy_steps=3,
        max_policy_steps=4,
        ppo_epochs=1,
        hidden=16,
        steps_grid=10,
        families=["quadratic", "majority-rnn"],
    )
    seen = []
    meta_train(tmp_path, cfg, progress=lambda it, stats: seen.append(it))
    assert seen == [1, 2]
    assert (tmp_path / "policy.pt").exists() and (tmp_path / "log.json").exists()
    cfg.iterations = 3  # more iterations continue from the checkpoint ...
    meta_train(tmp_path, cfg, progress=lambda it, stats: seen.append(it))
    assert seen == [1, 2, 3]
    cfg.hidden = 32  # ... any other change is refused
    with pytest.raises(ValueError, match="another config"):
        meta_train(tmp_path, cfg)


def _tiny_config(**kw):
    base = dict(
        iterations=1,
        episodes_per_iteration=2,
        min_steps=20,
        max_steps=20,
        min_policy_steps=2,
        max_policy_steps=3,
        ppo_epochs=1,
        hidden=8,
        steps_grid=10,
        families=["quadratic"],
        task_seeds=1,
    )
    return MetaTrainConfig(**{**base, **kw})


def test_parallel_episodes_give_the_same_policy(tmp_path):
    cfg = _tiny_config(task_seeds=16)
    one = meta_train(tmp_path / "one", cfg).state_dict()
    two = meta_train(tmp_path / "two", cfg, workers=2).state_dict()
    assert all(torch.equal(one[k], two[k]) for k in one)
    with pytest.raises(ValueError, match="workers must be"):
        meta_train(tmp_path / "three", cfg, workers=0)


def test_tuned_baseline_is_computed_once_and_kept_on_disk(tmp_path, monkeypatch):
    from metatune.lhopt import training

    calls = []
    real = training._baseline
    monkeypatch.setattr(training, "_baseline", lambda *a: calls.append(a) or real(*a))
    cfg = _tiny_config(baseline_lrs=[3.0, 0.3, 1.0])
    assert cfg.baseline_lrs == [0.3, 1.0, 3.0]
    meta_train(tmp_path, cfg)
    assert calls == [("quadratic", 0, 20, (0.3, 1.0, 3.0), 1.0)]  # one task, one T: one baseline
    stored = json.loads((tmp_path / "baselines.json").read_text())
    assert list(stored) == ["quadratic/0/20/0.3,1,3"]
    cfg.iterations = 2  # resuming reads the file instead of re-running the grid
    training._BASELINES.clear()
    meta_train(tmp_path, cfg)
    assert len(calls) == 1
    # the tuned target is the best of the grid, so never worse than the default rate's
    tuned = training.best_loss(training._baseline("quadratic", 0, 20, (0.3, 1.0, 3.0)))
    assert tuned <= training.best_loss(training._baseline("quadratic", 0, 20))
    with pytest.raises(ValueError, match="baseline_lrs"):
        _tiny_config(baseline_lrs=[0.0, 1.0])


def test_init_policy_starts_from_a_trained_policy(tmp_path):
    first = meta_train(tmp_path / "a", _tiny_config())
    frozen = meta_train(
        tmp_path / "b",
        _tiny_config(init_policy=str(tmp_path / "a" / "policy.pt"), learning_rate=0.0),
    )
    ours, theirs = frozen.state_dict(), first.state_dict()
    weights = [k for k in ours if not k.startswith("norm.")]
    assert all(torch.equal(ours[k], theirs[k]) for k in weights)  # lr 0: only the norm moved
    assert ours["norm.count"] > theirs["norm.count"]
    with pytest.raises(ValueError, match="another policy config"):
        meta_train(
            tmp_path / "c", _tiny_config(init_policy=str(tmp_path / "a" / "policy.pt"), hidden=16)
        )


def test_init_scale_is_fixed_per_task_seed_and_scales_the_weights():
    from metatune.lhopt import training

    assert training.task_init_scale(3, 0.0) == 1.0
    scales = [training.task_init_scale(seed, 0.5) for seed in range(16)]
    assert scales == [training.task_init_scale(seed, 0.5) for seed in range(16)]
    assert all(10**-0.5 <= x <= 10**0.5 for x in scales) and len(set(scales)) == 16
    plain = training.make_task("mlp-tabular", 4)
    scaled = training.make_task("mlp-tabular", 4, init_scale=scales[4])
    for a, b in zip(plain.model.parameters(), scaled.model.parameters(), strict=True):
        assert torch.allclose(b, a * scales[4])
    cfg = _tiny_config(init_scale_spread=0.5, task_seeds=4)
    specs = [training.draw_episode(np.random.default_rng(0), cfg) for _ in range(3)]
    assert all(s.init_scale == scales[s.seed] for s in specs)
    # without a spread the episodes are drawn exactly as before the option existed
    old = training.draw_episode(np.random.default_rng(1), _tiny_config(task_seeds=4))
    assert old.init_scale == 1.0
    assert training._baseline_key(old, [1.0]) == f"quadratic/{old.seed}/20/1"
    with pytest.raises(ValueError, match="init_scale_spread"):
        _tiny_config(init_scale_spread=-1.0)


def test_rollouts_repeat_a_situation_with_their_own_action_samples():
    from metatune.lhopt.training import draw_episode, draw_iteration

    cfg = _tiny_config(episodes_per_iteration=6, rollouts=3, task_seeds=16)
    specs = draw_iteration(np.random.default_rng(0), cfg)
    assert len(specs) == 6
    for group in (specs[:3], specs[3:]):
        situations = {(s.family, s.seed, s.steps, s.n_policy, s.lr_exponent) for s in group}
        assert len(situations) == 1
        assert len({s.controller_seed for s in group}) == 3
    # one rollout: exactly the episodes drawn one by one, as before the option existed
    one = _tiny_config(episodes_per_iteration=3)
    rng = np.random.default_rng(5)
    expected = [draw_episode(rng, one) for _ in range(3)]
    assert draw_iteration(np.random.default_rng(5), one) == expected
    with pytest.raises(ValueError, match="rollouts must be a positive divisor"):
        _tiny_config(episodes_per_iteration=4, rollouts=3)
    with pytest.raises(ValueError, match="rollouts"):
        _tiny_config(rollouts=0)


def test_group_advantage_is_reward_minus_the_other_runs_mean():
    from metatune.lhopt.training import _group_advantages

    episodes = [{"reward": r} for r in (1.0, 2.0, 6.0, -1.0, -1.0)]
    with pytest.raises(ZeroDivisionError):  # a group of one has no other run to compare with
        _group_advantages([{"reward": 1.0}], 1)
    _group_advantages(episodes[:3], 3)
    assert [e["group_adv"] for e in episodes[:3]] == pytest.approx([-3.0, -1.5, 4.5])
    _group_advantages(episodes[3:], 2)
    assert [e["group_adv"] for e in episodes[3:]] == [0.0, 0.0]  # equal runs teach nothing


def test_group_update_makes_the_better_runs_actions_more_likely():
    """Two runs of one situation differ only in their sampled moves; PPO with the group
    baseline must raise the probability of the better run's moves and lower the other's."""
    from metatune.lhopt.controller import Controller
    from metatune.lhopt.policy import Policy
    from metatune.lhopt.training import _ppo_update, draw_iteration, run_episode

    torch.manual_seed(0)
    cfg = _tiny_config(rollouts=2, ppo_epochs=2, entropy=0.0, learning_rate=1e-2)
    policy = Policy(Controller.policy_config(hidden=cfg.hidden))
    specs = draw_iteration(np.random.default_rng(1), cfg)
    episodes = [run_episode(policy, s) for s in specs]
    assert episodes[0]["record"] and episodes[1]["record"]
    episodes[0]["reward"], episodes[1]["reward"] = 1.0, -1.0  # run 0 was the better one

    def logp(episode):
        state, total = policy.initial_state(), 0.0
        with torch.no_grad():
            for step in episode["record"]:
                logits, _, state = policy(torch.tensor([step["obs"]]), state)
                total += sum(
                    float(lg.log_softmax(-1)[0, c])
                    for lg, c in zip(logits, step["choices"], strict=True)
                )
        return total

    before = [logp(e) for e in episodes]
    _ppo_update(policy, torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate), episodes, cfg)
    after = [logp(e) for e in episodes]
    assert after[0] > before[0] and after[1] < before[1]
