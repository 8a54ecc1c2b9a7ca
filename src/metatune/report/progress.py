"""A live rich progress bar for `Study.optimize`, silent when disabled (e.g. not a terminal)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metatune.direction import Direction
from metatune.trial import SystemAttr, Trial, TrialState


class StudyProgress:
    """Shows trials done, the best value so far and failures, per `update(trial)`."""

    def __init__(
        self,
        name: str,
        direction: str,
        n_trials: int | None,
        timeout: float | None,
        enabled: bool,
    ) -> None:
        self._enabled = enabled
        self._sign = Direction.parse(direction).sign
        self._best = math.inf
        self._failed = 0
        self._total = n_trials
        self._progress: Progress | None = None
        self._task: Any = None
        self._name = name

    def __enter__(self) -> StudyProgress:
        if self._enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"),
                TextColumn("[red]{task.fields[failed]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._name, total=self._total, best="-", failed="")
        return self

    def update(self, trial: Trial) -> None:
        if trial.state is TrialState.COMPLETE and trial.value is not None:
            self._best = min(self._best, self._sign * trial.value)
        elif trial.state is TrialState.FAILED:
            self._failed += 1
        if self._progress is not None:
            best = "-" if math.isinf(self._best) else f"{self._sign * self._best:.6g}"
            failed = f"{self._failed} failed" if self._failed else ""
            self._progress.update(self._task, advance=1, best=best, failed=failed)
            stages = trial.system_attrs.get(SystemAttr.STAGES)
            if stages:  # a pipeline trial: which stages ran and which came from the cache
                self._progress.console.print(_stage_line(trial, stages))

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


def _stage_line(trial: Trial, stages: list[dict[str, Any]]) -> str:
    parts = []
    for s in stages:
        if s.get("cache_hit"):
            parts.append(f"[cyan]{s['name']} (cache)[/cyan]")
        elif s.get("failed"):
            parts.append(f"[red]{s['name']} (failed)[/red]")
        else:
            parts.append(f"{s['name']} ({float(s['cost']):.3g})")
    value = f"{trial.value:.6g}" if trial.value is not None else trial.state.value
    cost = float(trial.system_attrs.get(SystemAttr.COST, 0.0))
    return f"trial {trial.number}: {' -> '.join(parts)}  cost {cost:.3g}  value {value}"
