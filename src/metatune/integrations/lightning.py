"""PyTorch Lightning: report a validation metric to the running trial, stop the fit when the
study's pruner says so, and optionally let the LHOPT controller drive the learning rate.

Inside an objective that `Study.optimize` runs::

    def objective(trial):
        model = MyModule(lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
        cb = MetatuneCallback(monitor="val_loss", trial=trial, lhopt=True)
        trainer = lightning.Trainer(max_epochs=20, callbacks=[cb])
        trainer.fit(model, train_loader, val_loader)
        return trainer.callback_metrics["val_loss"].item()

After each validation run (not the sanity check) the callback reports the monitored metric at
step = the epoch (or the global step, `step="global_step"`) and asks the study's pruner; when it
says stop, the callback raises `metatune.TrialPruned`: Lightning tears the fit down (its
``on_exception`` hooks run, the strategy is torn down) and passes the exception on, and
`Study.optimize` marks the trial pruned with its reports kept.

With ``lhopt=True`` (or a dict of `metatune.lhopt.Controller` options) the callback builds a
`Controller` on the fit's optimizer when training starts and calls it after every optimizer
step with the training loss (and the monitored metric as the validation loss, unless
``val_is_loss=False``); the controller moves the learning rate (and betas, eps, weight decay,
clipping) of every param group itself. Its gradient clipping runs in Lightning's
``on_before_optimizer_step``, once the closure computed the step's gradients. Each decision is
recorded (`metatune.integrations.schedule`): in ``trial.set_user_attr`` when the trial passed
has it (a define-by-run trial), and always in `schedule`; an objective of the plain form returns
``{"objective": value, **cb.user_attrs()}`` to keep it. The report and the dashboard then plot
the learning rate over the steps.

Needs ``lightning`` (or the older ``pytorch_lightning``): ``pip install 'metatune[lightning]'``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package of older releases
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError(
            "metatune.integrations.lightning needs PyTorch Lightning: "
            "pip install 'metatune[lightning]'"
        ) from exc

from metatune.exceptions import TrialPruned
from metatune.integrations.schedule import LR_SCHEDULE_ATTR, schedule_record
from metatune.reporting import Reporter, StudyReporter, current_reporter

__all__ = ["MetatuneCallback"]

_STEPS = ("epoch", "global_step")


def _as_float(value: Any) -> float | None:
    if hasattr(value, "detach"):
        if value.numel() != 1:
            return None
        value = value.detach().cpu().item()
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f


class MetatuneCallback(Callback):
    """Reports `monitor` to a metatune trial each validation, prunes, drives LHOPT.

    Args:
        monitor: the key in ``trainer.callback_metrics`` to report (what ``self.log`` named).
        trial: where reports go: a define-by-run trial (anything with ``report(value, step)``
            and ``should_prune()``), or a stored trial or its number together with `study`
            (ask/tell). Default: the trial `Study.optimize` is running
            (``metatune.report_intermediate``).
        study: the `Study` of `trial` when `trial` is a stored `Trial` or a number.
        step: what a report's step is: ``"epoch"`` (default) or ``"global_step"`` (several
            validations per epoch; the first report at a step stands).
        prune: raise `metatune.TrialPruned` when the study's pruner says so (default True).
        lhopt: False (default), True for a `Controller` with its defaults, or a dict of
            `Controller` options (``total_steps`` defaults to the fit's estimated optimizer
            steps).
        val_is_loss: hand the monitored metric to the controller as its validation loss
            (lower is better); False when it is an accuracy.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        trial: Any = None,
        study: Any = None,
        step: str = "epoch",
        prune: bool = True,
        lhopt: bool | dict[str, Any] = False,
        val_is_loss: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a metric's name (a string), got {monitor!r}")
        if step not in _STEPS:
            raise ValueError(f"step must be one of {', '.join(_STEPS)}, got {step!r}")
        if not isinstance(lhopt, (bool, dict)):
            raise TypeError(
                f"lhopt must be True, False or a dict of Controller options, got {lhopt!r}"
            )
        if study is None and trial is not None and not _is_reporter(trial):
            raise TypeError(
                "trial must have report(value, step) and should_prune() (a define-by-run "
                f"trial), or come with study=...; got {type(trial).__name__}"
            )
        self.monitor = monitor
        self.step = step
        self.prune = bool(prune)
        self.val_is_loss = bool(val_is_loss)
        self._lhopt_options: dict[str, Any] | None = (
            (dict(lhopt) if isinstance(lhopt, dict) else {}) if lhopt is not False else None
        )
        self._trial, self._study = trial, study
        self._reporter: Reporter | None = None
        self.controller: Any = None
        self.schedule: dict[str, list[Any]] | None = None
        self.reports: dict[int, float] = {}
        self.pruned_at: int | None = None
        self._start_lr: float | None = None
        self._last_val: float | None = None
        self._last_global_step = -1
        self._decisions = 0

    # What the objective keeps ------------------------------------------------------------------
    def user_attrs(self) -> dict[str, Any]:
        """The learning-rate record as user attributes to return with the objective's value
        (``{"objective": v, **cb.user_attrs()}``); empty without the controller."""
        return {} if self.schedule is None else {LR_SCHEDULE_ATTR: self.schedule}

    # Lightning hooks ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # Where reports go is settled before any training, so a callback used outside a
        # running trial fails at once with the reason.
        if self._study is not None:
            number = self._trial if isinstance(self._trial, int) else self._trial.number
            self._reporter = StudyReporter(self._study, int(number))
        elif self._trial is not None:
            self._reporter = self._trial
        else:
            self._reporter = current_reporter()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._lhopt_options is None:
            return
        from metatune.lhopt.controller import Controller

        optimizers = list(trainer.optimizers)
        if len(optimizers) != 1:
            raise ValueError(
                f"lhopt drives one optimizer; this fit has {len(optimizers)} "
                "(configure_optimizers must return one torch.optim.Adam/AdamW)"
            )
        if getattr(trainer, "lr_scheduler_configs", None):
            warnings.warn(
                "MetatuneCallback(lhopt=...) and a learning-rate scheduler both set the rate; "
                "the controller's moves are relative to whatever the scheduler left",
                stacklevel=2,
            )
        options = dict(self._lhopt_options)
        total = options.pop("total_steps", None) or trainer.estimated_stepping_batches
        if not isinstance(total, int) and not (isinstance(total, float) and math.isfinite(total)):
            raise ValueError(
                "lhopt needs the number of optimizer steps: set max_epochs or max_steps on "
                "the Trainer, or pass lhopt={'total_steps': N}"
            )
        optimizer = optimizers[0]
        self._start_lr = float(optimizer.param_groups[0]["lr"])
        self.controller = Controller(optimizer, total_steps=int(total), **options)
        if self.controller.clipper is not None:
            # Lightning runs the backward pass inside optimizer.step(closure): the controller's
            # step pre-hook would see the previous step's gradients. The clipping runs in
            # on_before_optimizer_step instead, after the closure.
            self.controller.clipper.remove()
        self._last_global_step = trainer.global_step
        self._record()

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.controller is not None and self.controller.clipper is not None:
            self.controller.clipper._hook()  # the clipping the removed pre-hook would do

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.controller is None or trainer.global_step == self._last_global_step:
            return  # no controller, or gradients still accumulating (no optimizer step)
        self._last_global_step = trainer.global_step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        value = _as_float(loss) if loss is not None else None
        if value is None:
            raise ValueError(
                "lhopt needs the training loss: training_step must return the loss "
                "(a tensor or a dict with 'loss')"
            )
        val = self._last_val if self.val_is_loss else None
        self._last_val = None  # the controller sees each validation once
        self.controller.step(value, val_loss=val)
        if len(self.controller.history) != self._decisions:
            self._record()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self._reporter is None:
            return
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            raise ValueError(
                f"monitor={self.monitor!r} is not among the logged metrics "
                f"{sorted(trainer.callback_metrics)}; log it with self.log({self.monitor!r}, ...) "
                "in validation_step"
            )
        value = _as_float(metric)
        if value is None or not math.isfinite(value):
            raise ValueError(f"{self.monitor} is {metric!r}: a report needs a finite number")
        step = int(trainer.current_epoch if self.step == "epoch" else trainer.global_step)
        if step in self.reports:  # a second validation at the same step: the first stands
            return
        self.reports[step] = value
        self._last_val = value
        self._reporter.report(value, step)
        if self.prune and self._reporter.should_prune():
            self.pruned_at = step
            raise TrialPruned(f"pruned at {self.step} {step} ({self.monitor}={value:.6g})")

    # Internals -----------------------------------------------------------------------------------
    def _record(self) -> None:
        self._decisions = len(self.controller.history)
        self.schedule = schedule_record(self.controller, self._start_lr)
        setter = getattr(self._trial, "set_user_attr", None)
        if callable(setter):
            setter(LR_SCHEDULE_ATTR, self.schedule)


def _is_reporter(obj: Any) -> bool:
    return callable(getattr(obj, "report", None)) and callable(getattr(obj, "should_prune", None))
