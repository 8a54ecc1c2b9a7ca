"""Meta-training of the control policy with PPO over the task distribution.

One episode = one training run of a sampled task for T steps with a widely randomized starting
learning rate (x 10^U(-1.5, 2.5) around the task's default), the policy acting n times. Its
reward compares the run's validation curve with the best of a small AdamW grid: constant and
cosine-decayed, at the task's default learning rate times each of `baseline_lrs` (by default
only 1, i.e. the default rate; a wider grid makes the target a tuned AdamW, which is what the
policy is judged against): log(T / t) if the policy reaches the baseline's best validation loss
at step t, else -log(its best loss / baseline's best loss); clipped to [-3, 3]. Only the end of
the run counts (gamma = 1), as in LHOPT. Task seeds come from a fixed pool and T
from a grid so that baselines are computed once, in parallel, and cached in `baselines.json` in
the output folder. Progress and checkpoints go to that folder; training resumes from it, and may
be extended to more iterations. Every 20 iterations a snapshot of the policy goes to
`snapshots/policy-NNNNN.pt` there. `init_policy` starts from a trained policy (fine-tuning, e.g.
against a tuned baseline after learning the basics against the default rate). With
`init_scale_spread` every task seed also fixes a factor on the task's initial weights.

With `rollouts` > 1, each drawn situation (task, seed, T, start lr, policy steps) is run that
many times with different action samples, and an episode's advantage is its reward minus the
mean reward of the other runs of the same situation (a leave-one-out baseline, as in RLOO),
instead of GAE on the critic. Why: most of an episode's reward is set by its situation (a start
300x too high scores badly whatever the policy does), and a critic that must read that off the
features leaves that variance in the advantages; comparing runs of one situation removes it,
so what is rewarded is acting better than the policy's own average in that situation, which
is meant to make it use its features instead of one schedule for every run (measured on
docs/benchmarks/lhopt-group/lhopt.md).

With `engine="vectorized"` an iteration's episodes come from the procedural task space
(`metatune.lhopt.task_space`, its training families only) and run in lockstep
(`metatune.lhopt.vectorized`): `groups` groups of one architecture each, every replica with its
own start rate, number of policy steps and action seed, run lengths as the group drew them
clipped to [min_steps, max_steps]; each replica's baseline is computed on the spot in lockstep
too (the tasks are new every iteration, so there is nothing to cache). The default engine
("process") is the one the shipped policy was trained with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metatune.lhopt.controller import Controller
from metatune.lhopt.policy import Policy, PolicyConfig
from metatune.lhopt.task_space import TRAIN_FAMILIES, sample_group
from metatune.lhopt.tasks import DEFAULT_FAMILIES, TASK_FAMILIES, TrainingTask
from metatune.lhopt.vectorized import ReplicaStart, TaskGroup, run_lockstep
from metatune.lhopt.vectorized.engine import schedule_factor

__all__ = [
    "MetaTrainConfig",
    "EpisodeSpec",
    "draw_episode",
    "draw_iteration",
    "best_loss",
    "speedup_reward",
    "run_episode",
    "meta_train",
    "vectorized_iteration",
    "ENGINES",
]


ENGINES = ("process", "vectorized")


@dataclass
class MetaTrainConfig:
    iterations: int = 40
    episodes_per_iteration: int = 8
    min_steps: int = 100
    max_steps: int = 300
    min_policy_steps: int = 8
    max_policy_steps: int = 24
    # start lr = default x 10^U(-lr_spread_down, lr_spread_up): reaching far above the default,
    # where Adam stalls or diverges, is what teaches the policy to cut the learning rate
    lr_spread_down: float = 1.5
    lr_spread_up: float = 2.5
    task_seeds: int = 16  # tasks are drawn with seeds 0..task_seeds-1 (cached baselines)
    steps_grid: int = 100  # T is a multiple of this in [min_steps, max_steps]
    ppo_epochs: int = 4
    clip: float = 0.2
    entropy: float = 0.01
    learning_rate: float = 1e-3
    gae_lambda: float = 0.95
    max_grad_norm: float = 5.0
    hidden: int = 64
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES))
    seed: int = 0
    # the reward's baseline: best of constant and cosine AdamW at default lr x each of these
    baseline_lrs: list[float] = field(default_factory=lambda: [1.0])
    # every task's initial weights are scaled by 10^U(-spread, spread), fixed per task seed: the
    # same architecture at other init scales wants other learning rates, so the policy cannot
    # read the right rate off a feature's typical value on the training families
    init_scale_spread: float = 0.0
    init_policy: str = ""  # a policy file to start from ("" = a fresh policy)
    # runs per drawn situation; > 1 switches advantages from GAE to a leave-one-out group mean
    rollouts: int = 1
    # "process": one episode per model (TASK_FAMILIES); "vectorized": lockstep groups drawn from
    # the task space's training families (see the module docstring)
    engine: str = "process"
    groups: int = 1  # lockstep groups per iteration (vectorized engine)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        known = TRAIN_FAMILIES if self.engine == "vectorized" else sorted(TASK_FAMILIES)
        unknown = sorted(set(self.families) - set(known))
        if unknown:
            raise ValueError(
                f"unknown task families {unknown} for engine {self.engine!r}; available: {known}"
            )
        if self.engine == "vectorized":
            if self.groups < 1 or self.episodes_per_iteration % (self.groups * self.rollouts):
                raise ValueError(
                    f"the vectorized engine needs episodes_per_iteration "
                    f"({self.episodes_per_iteration}) divisible by groups ({self.groups}) x "
                    f"rollouts ({self.rollouts})"
                )
            if self.init_scale_spread:
                raise ValueError(
                    "init_scale_spread applies to the process engine; the task space draws its "
                    "own init gains (use init_scale_spread=0 with engine='vectorized')"
                )
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(
                f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}"
            )
        if not 1 <= self.min_policy_steps <= self.max_policy_steps <= self.min_steps:
            raise ValueError("need 1 <= min_policy_steps <= max_policy_steps <= min_steps")
        if self.task_seeds < 1 or not 1 <= self.steps_grid <= self.max_steps:
            raise ValueError("need task_seeds >= 1 and 1 <= steps_grid <= max_steps")
        if self.iterations < 1 or self.episodes_per_iteration < 1:
            raise ValueError("iterations and episodes_per_iteration must be positive")
        if self.rollouts < 1 or self.episodes_per_iteration % self.rollouts:
            raise ValueError(
                f"rollouts must be a positive divisor of episodes_per_iteration "
                f"({self.episodes_per_iteration}), got {self.rollouts!r}"
            )
        if not self.baseline_lrs or any(not 0 < x < math.inf for x in self.baseline_lrs):
            raise ValueError(
                f"baseline_lrs must be positive multipliers of the default lr, "
                f"got {self.baseline_lrs!r}"
            )
        self.baseline_lrs = sorted(float(x) for x in self.baseline_lrs)
        if not 0 <= self.init_scale_spread <= 2:
            raise ValueError(
                f"init_scale_spread must be in [0, 2] (decades), got {self.init_scale_spread!r}"
            )


def best_loss(curve: list[tuple[int, float]]) -> float:
    """Lowest finite validation loss of a run (what early stopping keeps); inf if none."""
    return min((v for _, v in curve if math.isfinite(v)), default=math.inf)


def speedup_reward(
    baseline: list[tuple[int, float]], run: list[tuple[int, float]], steps: int
) -> float:
    """log speedup to the baseline's best validation loss (see the module docstring).

    Best, not last: on a task that overfits, the baseline's last loss is reached early on the way
    down, which would reward a policy for nothing; best-so-far is what early stopping keeps.
    """
    target = best_loss(baseline)
    for t, v in run:
        if math.isfinite(v) and v <= target:
            return float(min(math.log(steps / t), 3.0))
    best = best_loss(run)
    if not math.isfinite(best) or best <= 0 or not 0 < target < math.inf:
        return -3.0
    return float(max(-math.log(best / target), -3.0))


Curve = list[tuple[int, float]]
_BASELINES: dict[tuple[str, int, int, tuple[float, ...], float], Curve] = {}


def _cosine(opt: torch.optim.Optimizer, lr: float, steps: int) -> Callable[..., None]:
    def on_step(t: int, loss: float, val: float | None) -> None:
        for group in opt.param_groups:
            group["lr"] = lr * schedule_factor("cosine", t, steps)

    return on_step


def task_init_scale(seed: int, spread: float) -> float:
    """The factor on a task's initial weights: 10^U(-spread, spread), a fixed function of seed."""
    if spread <= 0:
        return 1.0
    return float(10 ** np.random.default_rng([seed, 7919]).uniform(-spread, spread))


def make_task(family: str, seed: int, init_scale: float = 1.0) -> TrainingTask:
    """The task of `family` and `seed` with its initial weights multiplied by `init_scale`."""
    task = TASK_FAMILIES[family](seed)
    if init_scale != 1.0:
        with torch.no_grad():
            for p in task.model.parameters():
                p.mul_(init_scale)
    return task


def _baseline(
    family: str,
    seed: int,
    steps: int,
    lrs: tuple[float, ...] = (1.0,),
    init_scale: float = 1.0,
) -> list[tuple[int, float]]:
    """Validation curve of the best (by best loss) of constant and cosine AdamW runs at the
    task's default learning rate times each of `lrs`."""
    key = (family, seed, steps, tuple(lrs), init_scale)
    if key not in _BASELINES:
        curves = []
        for mult in lrs:
            for cosine in (False, True):
                task = make_task(family, seed, init_scale)
                lr = float(min(task.default_lr * mult, 1.0))
                opt = torch.optim.AdamW(task.model.parameters(), lr=lr)
                hook = _cosine(opt, lr, steps) if cosine else None
                curves.append(task.run(opt, steps, on_step=hook))
        _BASELINES[key] = min(curves, key=best_loss)
    return _BASELINES[key]


def _baseline_key(spec: EpisodeSpec, lrs: list[float]) -> str:
    key = f"{spec.family}/{spec.seed}/{spec.steps}/" + ",".join(f"{x:g}" for x in lrs)
    return key + (f"/init{spec.init_scale!r}" if spec.init_scale != 1.0 else "")


def _load_baselines(path: Path) -> dict[str, Curve]:
    if not path.exists():
        return {}
    return {k: [tuple(p) for p in v] for k, v in json.loads(path.read_text()).items()}


def _baselines_for(
    specs: list[EpisodeSpec],
    config: MetaTrainConfig,
    stored: dict[str, Curve],
    path: Path,
    pool: Any,
) -> list[Curve]:
    """The baseline curve of every episode: from `stored` (loaded from `path` once per run),
    else computed (in the pool when there is one), added to it and written to `path`."""
    keys = [_baseline_key(s, config.baseline_lrs) for s in specs]
    missing = sorted(
        {(k, s.family, s.seed, s.steps, s.init_scale) for k, s in zip(keys, specs, strict=True)}
    )
    missing = [m for m in missing if m[0] not in stored]
    if missing:
        lrs = tuple(config.baseline_lrs)
        args = [(f, seed, steps, lrs, scale) for _, f, seed, steps, scale in missing]
        curves = (
            pool.starmap(_baseline, args) if pool is not None else [_baseline(*a) for a in args]
        )
        stored.update({m[0]: c for m, c in zip(missing, curves, strict=True)})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored))
        tmp.replace(path)
    return [stored[k] for k in keys]


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything random about one episode, drawn up front so workers can run it anywhere."""

    family: str
    seed: int
    steps: int
    n_policy: int
    lr_exponent: float  # start lr = task default x 10^lr_exponent
    controller_seed: int
    init_scale: float = 1.0  # factor on the task's initial weights


def draw_episode(rng: np.random.Generator, config: MetaTrainConfig) -> EpisodeSpec:
    family = config.families[int(rng.integers(len(config.families)))]
    seed = int(rng.integers(0, config.task_seeds))
    grid = range(
        -(-config.min_steps // config.steps_grid) * config.steps_grid,
        config.max_steps + 1,
        config.steps_grid,
    )
    steps = int(rng.choice(list(grid))) if len(grid) else config.min_steps
    n_policy = int(rng.integers(config.min_policy_steps, config.max_policy_steps + 1))
    exponent = float(rng.uniform(-config.lr_spread_down, config.lr_spread_up))
    scale = task_init_scale(seed, config.init_scale_spread)  # draws nothing from rng
    return EpisodeSpec(family, seed, steps, n_policy, exponent, int(rng.integers(2**31)), scale)


def draw_iteration(rng: np.random.Generator, config: MetaTrainConfig) -> list[EpisodeSpec]:
    """The episodes of one iteration: `episodes_per_iteration / rollouts` situations, each run
    `rollouts` times with its own controller seed (so its own action samples); runs of one
    situation are adjacent. With one rollout this is `draw_episode` repeated."""
    specs = []
    for _ in range(config.episodes_per_iteration // config.rollouts):
        spec = draw_episode(rng, config)
        specs.append(spec)
        for _ in range(config.rollouts - 1):
            specs.append(replace(spec, controller_seed=int(rng.integers(2**31))))
    return specs


def run_episode(
    policy: Policy,
    spec: EpisodeSpec,
    greedy: bool = False,
    baseline: list[tuple[int, float]] | None = None,
) -> dict[str, Any]:
    """One training run under the policy; returns its steps (for PPO) and reward.

    `baseline` is the validation curve the reward compares with; by default, the better of
    constant and cosine AdamW at the task's default learning rate.
    """
    if baseline is None:
        baseline = _baseline(spec.family, spec.seed, spec.steps, init_scale=spec.init_scale)
    task = make_task(spec.family, spec.seed, spec.init_scale)
    lr = task.default_lr * 10**spec.lr_exponent
    opt = torch.optim.AdamW(task.model.parameters(), lr=float(min(lr, 1.0)))
    record: list[dict[str, Any]] = []
    ctl = Controller(
        opt,
        spec.steps,
        policy=policy,
        n_policy_steps=spec.n_policy,
        greedy=greedy,
        seed=spec.controller_seed,
        recorder=record,
        guard=False,  # the policy must learn to recover by itself; the guard is for deployment
    )
    curve = task.run(opt, spec.steps, on_step=lambda t, loss, val: ctl.step(loss, val))
    if ctl.clipper is not None:
        ctl.clipper.remove()
    reward = speedup_reward(baseline, curve, spec.steps)
    return {**asdict(spec), "record": record, "reward": reward}


_WORKER_POLICY: Policy | None = None


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _worker_run(blob: dict[str, Any], spec: EpisodeSpec, baseline: Curve) -> dict[str, Any]:
    global _WORKER_POLICY
    if _WORKER_POLICY is None or _WORKER_POLICY.config != PolicyConfig(**blob["config"]):
        _WORKER_POLICY = Policy(PolicyConfig(**blob["config"]))
    _WORKER_POLICY.load_state_dict(blob["state_dict"])
    return run_episode(_WORKER_POLICY.eval(), spec, baseline=baseline)


def _ppo_update(
    policy: Policy, opt: torch.optim.Optimizer, episodes: list[dict], config: MetaTrainConfig
) -> dict[str, float]:
    if config.rollouts > 1:
        _group_advantages(episodes, config.rollouts)
    episodes = [e for e in episodes if e["record"]]
    if not episodes:
        return {}
    obs_all = torch.tensor([s["obs"] for e in episodes for s in e["record"]], dtype=torch.float32)
    policy.norm.update(obs_all)
    # advantages: reward only at the end, gamma = 1, GAE(lambda) on the recorded values
    for e in episodes:
        if "group_adv" in e:  # leave-one-out group baseline; the critic still learns the return
            e["adv"] = [e["group_adv"]] * len(e["record"])
            e["ret"] = [e["reward"]] * len(e["record"])
            continue
        values = [s["value"] for s in e["record"]] + [0.0]
        rewards = [0.0] * (len(e["record"]) - 1) + [e["reward"]]
        adv, gae = [], 0.0
        for t in reversed(range(len(rewards))):
            delta = rewards[t] + values[t + 1] - values[t]
            gae = delta + config.gae_lambda * gae
            adv.append(gae)
        e["adv"] = list(reversed(adv))
        e["ret"] = [a + v for a, v in zip(e["adv"], values[:-1], strict=True)]
    flat = np.array([a for e in episodes for a in e["adv"]])
    mean, std = flat.mean(), flat.std() + 1e-8
    stats: dict[str, float] = {}
    for _ in range(config.ppo_epochs):
        total = torch.zeros(())
        for e in episodes:
            obs = torch.tensor([s["obs"] for s in e["record"]], dtype=torch.float32)
            choices = torch.tensor([s["choices"] for s in e["record"]])
            old = torch.tensor([s["logp"] for s in e["record"]])
            adv = (torch.tensor(e["adv"], dtype=torch.float32) - mean) / std
            ret = torch.tensor(e["ret"], dtype=torch.float32)
            state = policy.initial_state()
            logps, ents, vals = [], [], []
            for t in range(len(obs)):
                logits, value, state = policy(obs[t : t + 1], state)
                lp = sum(lg.log_softmax(-1)[0, choices[t, i]] for i, lg in enumerate(logits))
                ent = sum(-(lg.softmax(-1) * lg.log_softmax(-1)).sum() for lg in logits)
                logps.append(lp)
                ents.append(ent)
                vals.append(value[0])
            logp, ent, val = torch.stack(logps), torch.stack(ents), torch.stack(vals)
            ratio = (logp - old).exp()
            surrogate = torch.min(ratio * adv, ratio.clamp(1 - config.clip, 1 + config.clip) * adv)
            loss = -surrogate.mean() + 0.5 * ((val - ret) ** 2).mean() - config.entropy * ent.mean()
            total = total + loss / len(episodes)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        opt.step()
        stats = {"loss": float(total.detach())}
    return stats


def _group_advantages(episodes: list[dict[str, Any]], rollouts: int) -> None:
    """Set `group_adv` on every episode: its reward minus the mean reward of the other runs of
    its situation (runs of one situation are `rollouts` adjacent episodes)."""
    for i in range(0, len(episodes), rollouts):
        group = episodes[i : i + rollouts]
        total = sum(e["reward"] for e in group)
        for e in group:
            e["group_adv"] = e["reward"] - (total - e["reward"]) / (len(group) - 1)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint: plain data and tensors only (weights_only), so a file planted in
    the output folder cannot run code; ValueError naming the file if it is not ours."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated, not a torch file
        raise ValueError(
            f"cannot resume from {path}: not a readable metatune checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "delete it to start over, or use another --out folder"
        ) from None
    keys = {"config", "policy", "optimizer", "iteration", "log"}
    if not isinstance(blob, dict) or not keys <= set(blob):
        raise ValueError(f"cannot resume from {path}: it lacks the fields {sorted(keys)}")
    return blob


def meta_train(
    out: str | Path,
    config: MetaTrainConfig,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    workers: int = 1,
) -> Policy:
    """Train a policy, checkpointing to `out` after every iteration; resumes from `out`.

    `workers` > 1 runs an iteration's episodes in that many processes (one torch thread each);
    the result is the same as with one, since every episode's randomness is drawn up front.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    policy = Policy(Controller.policy_config(hidden=config.hidden))
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    ckpt = out / "checkpoint.pt"
    start, log = 0, []
    if config.init_policy and not ckpt.exists():
        init = Policy.load(config.init_policy)
        if init.config != policy.config:
            raise ValueError(
                f"init_policy {config.init_policy} has another policy config "
                f"({init.config}); expected {policy.config}"
            )
        policy.load_state_dict(init.state_dict())
    if ckpt.exists():
        blob = _read_checkpoint(ckpt)
        theirs, ours = dict(blob["config"]), asdict(config)
        for name, default in asdict(MetaTrainConfig()).items():  # fields added since
            theirs.setdefault(name, default)
        theirs.pop("iterations"), ours.pop("iterations")
        if theirs != ours:  # only the number of iterations may change (to train longer)
            raise ValueError(f"{ckpt} was written with another config; use another folder")
        policy.load_state_dict(blob["policy"])
        opt.load_state_dict(blob["optimizer"])
        start, log = blob["iteration"], blob["log"]
    pool = None
    if workers > 1 and config.engine == "process":  # lockstep groups run in this process
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(1,))
    baselines_path = out / "baselines.json"
    stored_baselines = _load_baselines(baselines_path)
    try:
        for it in range(start, config.iterations):
            rng = np.random.default_rng([config.seed, it])
            if config.engine == "vectorized":
                episodes = vectorized_iteration(policy, rng, config)
                _iterate(policy, opt, episodes, config, it, log, out, progress)
                continue
            specs = draw_iteration(rng, config)
            baselines = _baselines_for(specs, config, stored_baselines, baselines_path, pool)
            if pool is None:
                episodes = [
                    run_episode(policy, spec, baseline=b)
                    for spec, b in zip(specs, baselines, strict=True)
                ]
            else:
                blob = {"config": asdict(policy.config), "state_dict": policy.state_dict()}
                episodes = pool.starmap(
                    _worker_run, [(blob, s, b) for s, b in zip(specs, baselines, strict=True)]
                )
            _iterate(policy, opt, episodes, config, it, log, out, progress)
    finally:
        if pool is not None:
            pool.terminate()
    return policy.eval()


def _lockstep_baselines(group: TaskGroup, steps: int, config: MetaTrainConfig) -> list[Curve]:
    """Per replica, the better (by best loss) of constant and cosine AdamW at its default rate
    times each of `baseline_lrs`: `_baseline`, run in lockstep, every cell of every replica in
    one run (one batched step amortizes the per-step overhead that separate runs would pay)."""
    cells = [(m, s) for m in config.baseline_lrs for s in ("constant", "cosine")]
    wide = group.subset([i for i in range(group.size) for _ in cells])
    starts = [
        ReplicaStart(lr=float(min(wide.default_lr[k] * cells[k % len(cells)][0], 1.0)))
        for k in range(wide.size)
    ]
    schedules = [cells[k % len(cells)][1] for k in range(wide.size)]
    res = run_lockstep(wide, starts, steps, schedule=schedules)
    n = len(cells)
    return [min(res.curves[i * n : (i + 1) * n], key=best_loss) for i in range(group.size)]


def vectorized_iteration(
    policy: Policy, rng: np.random.Generator, config: MetaTrainConfig
) -> list[dict[str, Any]]:
    """One iteration's episodes with the lockstep engine (`engine="vectorized"`).

    `config.groups` groups of `episodes_per_iteration / groups` replicas; with rollouts K, each
    distinct task appears K times in a row with one start rate and number of policy steps and
    its own action seed (the adjacent runs `_group_advantages` compares).
    """
    per_group = config.episodes_per_iteration // config.groups
    episodes: list[dict[str, Any]] = []
    for _ in range(config.groups):
        family = config.families[int(rng.integers(len(config.families)))]
        distinct = per_group // config.rollouts
        group, spec = sample_group(family, rng, distinct)
        steps = int(min(max(spec.steps, config.min_steps), config.max_steps))
        situations = [
            (
                float(rng.uniform(-config.lr_spread_down, config.lr_spread_up)),
                int(rng.integers(config.min_policy_steps, config.max_policy_steps + 1)),
            )
            for _ in range(distinct)
        ]
        order = [i for i in range(distinct) for _ in range(config.rollouts)]
        # one baseline per distinct task: its rollouts share the task, so they share it
        distinct_baselines = _lockstep_baselines(group, steps, config)
        group = group.subset(order)
        seeds = [int(rng.integers(2**31)) for _ in order]
        starts = [
            ReplicaStart(lr=float(min(group.default_lr[k] * 10 ** situations[i][0], 1.0)))
            for k, i in enumerate(order)
        ]
        n_policy = [min(situations[i][1], steps) for i in order]
        res = run_lockstep(
            group, starts, steps, policy=policy, n_policy_steps=n_policy, seeds=seeds
        )
        baselines = [distinct_baselines[i] for i in order]
        for k, i in enumerate(order):
            episodes.append(
                {
                    "family": family,
                    "task": spec.label(),
                    "steps": steps,
                    "n_policy": n_policy[k],
                    "lr_exponent": situations[i][0],
                    "controller_seed": seeds[k],
                    "record": res.records[k],
                    "reward": speedup_reward(baselines[k], res.curves[k], steps),
                }
            )
    return episodes


def _iterate(
    policy: Policy,
    opt: torch.optim.Optimizer,
    episodes: list[dict[str, Any]],
    config: MetaTrainConfig,
    it: int,
    log: list[dict[str, Any]],
    out: Path,
    progress: Callable[[int, dict[str, float]], None] | None,
) -> None:
    """One PPO update from the iteration's episodes, then checkpoint (atomically) and report."""
    stats = _ppo_update(policy, opt, episodes, config)
    stats["mean_reward"] = float(np.mean([e["reward"] for e in episodes]))
    log.append({"iteration": it + 1, **stats})
    ckpt = out / "checkpoint.pt"
    tmp = ckpt.with_suffix(".tmp")
    torch.save(
        {
            "config": asdict(config),
            "policy": policy.state_dict(),
            "optimizer": opt.state_dict(),
            "iteration": it + 1,
            "log": log,
        },
        tmp,
    )
    tmp.replace(ckpt)
    policy.save(out / "policy.pt")
    if (it + 1) % 20 == 0:  # snapshots, to pick an iteration by training reward afterwards
        policy.save(out / "snapshots" / f"policy-{it + 1:05d}.pt")
    (out / "log.json").write_text(json.dumps(log, indent=1))
    if progress is not None:
        progress(it + 1, stats)
