"""MetatuneCallback on a tiny LightningModule on CPU: reports each validation epoch, a pruner's
decision stops the fit and the trial ends pruned, and the LHOPT controller moves the learning
rate with its decisions recorded for the report."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pytest

from metatune import Float, Study, TrialPruned
from metatune.direction import Direction
from metatune.pruners import Pruner
from metatune.trial import Trial, TrialState

pytest.importorskip("lightning")
import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from metatune.integrations.lightning import MetatuneCallback  # noqa: E402
from metatune.integrations.schedule import LR_SCHEDULE_ATTR, read_schedule  # noqa: E402
from metatune.lhopt import Controller, Policy  # noqa: E402
from metatune.lhopt.actions import DEFAULT_KNOBS  # noqa: E402


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def _loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=8), DataLoader(data, batch_size=32)


def _trainer(cb: MetatuneCallback, epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=8,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        callbacks=[cb],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _fit(cb: MetatuneCallback, lr: float = 1e-2, epochs: int = 3) -> pl.Trainer:
    trainer = _trainer(cb, epochs)
    train, val = _loaders()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(Regressor(lr), train, val)
    return trainer


class PruneAtStep(Pruner):
    """Stops every trial whose lr is above 0.03 once it reported step 1."""

    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        return trial.params["lr"] > 0.03 and (trial.last_step or 0) >= 1


def test_reports_each_epoch_and_pruning_stops_the_fit() -> None:
    fits: dict[int, pl.Trainer] = {}

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", 1e-2, 1e-1, log=True)
        cb = MetatuneCallback("val_loss", trial=trial)
        trainer = _trainer(cb, epochs=4)
        fits[trial.number] = trainer
        train, val = _loaders()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            trainer.fit(Regressor(lr), train, val)
        return float(trainer.callback_metrics["val_loss"])

    study = Study(optimizer="random", seed=1, name="pl", pruner=PruneAtStep())
    study.optimize(objective, n_trials=4, show_progress=False)
    trials = study.trials
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    assert all(t.params["lr"] > 0.03 for t in pruned)
    assert all(t.params["lr"] <= 0.03 for t in done)
    assert pruned and done, [t.params for t in trials]
    for t in done:  # one report per epoch, the sanity check not among them
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]
        assert t.value == pytest.approx(t.intermediate_values[3])
    for t in pruned:  # stopped right after its step-1 report: no third epoch ran
        assert sorted(t.intermediate_values) == [0, 1]
        trainer = fits[t.number]
        assert trainer.current_epoch == 1 and trainer.interrupted


def test_reports_go_to_the_running_trial_without_passing_it() -> None:
    def objective(params: dict) -> float:
        cb = MetatuneCallback("val_loss")
        trainer = _fit(cb, lr=params["lr"], epochs=2)
        return float(trainer.callback_metrics["val_loss"])

    study = Study({"lr": Float(1e-3, 1e-2, log=True)}, optimizer="random", seed=0, pruner="none")
    study.optimize(objective, n_trials=1, show_progress=False)
    assert sorted(study.trials[0].intermediate_values) == [0, 1]


def test_outside_a_trial_the_fit_fails_before_training() -> None:
    cb = MetatuneCallback("val_loss")
    with pytest.raises(RuntimeError, match="outside a running trial"):
        _fit(cb, epochs=1)
    assert cb.reports == {}


def test_a_misspelt_monitor_names_the_logged_metrics() -> None:
    study = Study({"lr": Float(1e-3, 1e-2)}, optimizer="random", seed=0)
    trial = study.ask()
    cb = MetatuneCallback("val_los", trial=trial, study=study)
    with pytest.raises(ValueError, match=r"'val_los' is not among .*'val_loss'"):
        _fit(cb, epochs=1)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="step must be one of epoch, global_step"):
        MetatuneCallback(step="batch")
    with pytest.raises(TypeError, match="trial must have report"):
        MetatuneCallback(trial=3)
    with pytest.raises(TypeError, match="lhopt must be"):
        MetatuneCallback(lhopt="yes")


def _doubling_policy() -> Policy:
    """A policy that always doubles the learning rate and keeps everything else."""
    config = Controller.policy_config(clip=True)
    policy = Policy(config)
    with torch.no_grad():
        for i, head in enumerate(policy.heads):
            head.weight.zero_()
            head.bias.fill_(-10.0)
            knob = DEFAULT_KNOBS[i].name if i < len(DEFAULT_KNOBS) else "checkpoint"
            if knob == "lr":
                head.bias[DEFAULT_KNOBS[i].choices.index(2.0)] = 10.0
            elif i < len(DEFAULT_KNOBS):
                head.bias[config.keep_index[i]] = 10.0
            else:
                head.bias[0] = 10.0  # the checkpoint head's first action: none
    return policy.eval()


def test_lhopt_moves_the_lr_and_the_record_reaches_the_trial() -> None:
    policy = _doubling_policy()
    seen_lrs: list[float] = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen_lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def objective(trial) -> float:
        cb = MetatuneCallback(
            "val_loss",
            trial=trial,
            lhopt={"policy": policy, "n_policy_steps": 4, "guard": False},
        )
        trainer = _trainer(cb, epochs=2)
        trainer.callbacks.append(Spy())
        train, val = _loaders()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            trainer.fit(Regressor(1e-3), train, val)
        assert cb.controller is not None and cb.controller.total_steps == 16
        return float(trainer.callback_metrics["val_loss"])

    study = Study(optimizer="random", seed=0, name="lhopt-pl", pruner="none")
    study.optimize(objective, n_trials=1, show_progress=False)
    t = study.trials[0]
    assert t.state is TrialState.COMPLETE, t.error
    rec = read_schedule(t.user_attrs)
    assert rec is not None, t.user_attrs.keys()
    # 16 optimizer steps, a decision every 4 (none at the last): 0.001 doubled 3 times.
    assert rec["step"] == [0, 4, 8, 12]
    assert rec["lr"] == pytest.approx([1e-3, 2e-3, 4e-3, 8e-3])
    assert max(seen_lrs) == pytest.approx(8e-3) and seen_lrs[0] == pytest.approx(1e-3)
    assert LR_SCHEDULE_ATTR in t.user_attrs


def test_lhopt_clipping_sees_this_steps_gradients() -> None:
    study = Study({"lr": Float(1e-3, 1e-2)}, optimizer="random", seed=0)
    trial = study.ask()
    cb = MetatuneCallback("val_loss", trial=trial, study=study, lhopt={"n_policy_steps": 2})
    _fit(cb, epochs=1)
    clipper = cb.controller.clipper
    assert len(clipper._norms) == 8  # one norm per optimizer step, from after the backward
    assert cb.user_attrs()[LR_SCHEDULE_ATTR]["step"][0] == 0
    study.tell(trial, 1.0)


def test_a_plain_trial_keeps_the_record_through_user_attrs() -> None:
    def objective(params: dict) -> dict:
        cb = MetatuneCallback("val_loss", lhopt={"n_policy_steps": 2})
        trainer = _fit(cb, lr=params["lr"], epochs=1)
        return {"objective": float(trainer.callback_metrics["val_loss"]), **cb.user_attrs()}

    study = Study({"lr": Float(1e-3, 1e-2)}, optimizer="random", seed=0, pruner="none")
    study.optimize(objective, n_trials=1, show_progress=False)
    assert read_schedule(study.trials[0].user_attrs)["step"][:2] == [0, 4]


def test_trial_pruned_is_what_the_fit_raises() -> None:
    class Always(Pruner):
        def prune(self, trial, trials, direction) -> bool:
            return True

    study = Study({"lr": Float(1e-3, 1e-2)}, optimizer="random", seed=0, pruner=Always())
    trial = study.ask()
    cb = MetatuneCallback("val_loss", trial=trial, study=study)
    with pytest.raises(TrialPruned, match="pruned at epoch 0"):
        _fit(cb, epochs=3)
    assert cb.pruned_at == 0
