"""The `metatune` command line: run the demo study and inspect or export stored studies.

Exit codes: 0 success, 1 error (one line on stderr, ``error: ...``), 2 bad usage, 130 Ctrl-C.
Results go to stdout, notes and progress to stderr; progress bars and colour only on a terminal.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from metatune import __version__
from metatune._text import printable
from metatune.demos.common import (
    DEFAULT_DIR,
    DEFAULT_STORAGE,
    STORAGE_ENV,
    CommandError,
    Output,
    display_url,
    fail,
    one_line,
    open_storage,
)
from metatune.demos.svm import DEMO_STUDY, DEMO_TRIALS

try:  # typer >= 0.2x vendors click; older releases use click itself
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover
    import click.exceptions as _click_exc  # type: ignore[no-redef]

if TYPE_CHECKING:
    from metatune.storage import BaseStorage, StudyRecord
    from metatune.trial import Trial

__all__ = ["CLIError", "Settings", "app", "main"]

DEBUG_ENV = "METATUNE_DEBUG"  # set to see the traceback of an internal error
CLIError = CommandError  # a user-facing error: one line ``error: ...`` and its exit code


@dataclass(frozen=True)
class Settings:
    """What every command of one invocation reads from ``ctx.obj`` (made by the root callback).

    `quiet`: no progress bars or notes (--quiet). `stage_clock`: the clock the pipeline demo
    charges its stages by (None: wall seconds; tests pass a simulated one through `main`).
    """

    quiet: bool = False
    stage_clock: Callable[[], float] | None = None


def _settings(ctx: typer.Context, quiet: bool = False) -> Settings:
    """The invocation's settings, quiet also when a command's own --quiet is given."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    return replace(settings, quiet=settings.quiet or quiet)


def _output(ctx: typer.Context, quiet: bool = False) -> Output:
    """The command's output; a command's own --quiet also silences warnings while it runs."""
    if quiet:
        ctx.with_resource(_stderr_logging(True))
    return Output(quiet=_settings(ctx, quiet).quiet)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at emit time, so live progress bars stay intact."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(logging.WARNING)
        self.quiet = quiet

    def emit(self, record: logging.LogRecord) -> None:
        if self.quiet and record.levelno < logging.ERROR:
            return
        try:
            message = printable(self.format(record), keep_newlines=True)
            print(f"{record.levelname.lower()}: {message}", file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


@contextlib.contextmanager
def _stderr_logging(quiet: bool) -> Iterator[None]:
    """While it lasts, metatune's warnings go to stderr as ``warning: ...`` (errors only when
    quiet), in place of an earlier such handler (a command's --quiet replaces the root's)."""
    logger = logging.getLogger("metatune")
    replaced = [h for h in logger.handlers if isinstance(h, _StderrHandler)]
    for h in replaced:
        logger.removeHandler(h)
    handler = _StderrHandler(quiet)
    logger.addHandler(handler)
    old_propagate = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        for h in replaced:
            logger.addHandler(h)
        logger.propagate = old_propagate


def _find_study(storage: BaseStorage, url: str, name: str | None) -> StudyRecord:
    """The record of study `name`; with no name, the only study in the storage."""
    if name is not None:
        record = storage.get_study(name)
        if record is None:
            known = [s.name for s in storage.list_studies()]
            fail(f"no study named {name!r} in {display_url(storage, url)}; studies: {known}")
        return record
    studies = storage.list_studies()
    if len(studies) == 1:
        return studies[0]
    where = display_url(storage, url)
    if not studies:
        fail(f"no studies in {where}")
    known = [s.name for s in studies]
    raise _click_exc.UsageError(
        f"Missing option '--study': {where} holds {len(known)} studies: {known}"
    )


# Options shared by several commands ----------------------------------------------------------
_STUDY_HELP = "Name of the study (may be left out when the storage holds only one)."
_STORAGE_HELP = "SQLAlchemy URL of the storage, e.g. sqlite:///runs.db or postgresql://..."
_StorageOpt = Annotated[
    str, typer.Option("--storage", envvar=STORAGE_ENV, metavar="URL", help=_STORAGE_HELP)
]
_StudyOpt = Annotated[str | None, typer.Option("--study", "-s", help=_STUDY_HELP)]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _StateChoice(str, enum.Enum):
    complete = "complete"
    failed = "failed"
    running = "running"
    pruned = "pruned"


class _SortChoice(str, enum.Enum):
    number = "number"
    value = "value"


class _FormatChoice(str, enum.Enum):
    csv = "csv"
    json = "json"


def _version_callback(value: bool) -> None:
    if value:
        print(f"metatune {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="metatune",
    help="metatune: run and inspect hyperparameter-optimization studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or notes; results only.")
    ] = False,
) -> None:
    """metatune: run and inspect hyperparameter-optimization studies.

    Studies live in a storage given by --storage (default sqlite:///metatune-runs/metatune.db,
    or the METATUNE_STORAGE environment variable).
    """
    settings = _settings(ctx, quiet)
    ctx.obj = settings
    ctx.with_resource(_stderr_logging(settings.quiet))


# demo ----------------------------------------------------------------------------------------
_DemoStorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar=STORAGE_ENV,
        metavar="URL",
        help=_STORAGE_HELP + " (default: sqlite:///<out>/metatune.db)",
    ),
]


@app.command("demo")
def demo(
    ctx: typer.Context,
    budget: Annotated[
        float,
        typer.Option("--budget", min=1.0, help="Cost budget of this call, in stage seconds."),
    ] = 100.0,
    pipeline: Annotated[
        str, typer.Option("--pipeline", help="vision (CNN on digits) or stacking (tabular).")
    ] = "vision",
    optimizer: Annotated[
        str | None,
        typer.Option(
            "--optimizer", help="eeipu (default), or ei, eips, carbo, ms-carbo, random..."
        ),
    ] = None,
    storage: _DemoStorageOption = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: <pipeline>-<optimizer>).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of a new study.")] = 0,
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Folder for the database, cache and plot."),
    ] = Path(DEFAULT_DIR),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No per-trial lines or notes.")
    ] = False,
) -> None:
    """Tune a multi-stage training pipeline with memoization-aware BO (EEIPU) on a cost budget.

    Stage outputs are cached in --out/cache, so candidates that share earlier stages with a
    previous one only run the rest. Each trial prints which stages ran and which came from the
    cache; the end shows candidates, cache hits, seconds saved, the best configuration and a plot.
    Running it again resumes the study with a new budget.
    """
    from metatune.demos.pipeline import PipelineDemoOptions, run_pipeline_demo

    options = PipelineDemoOptions(
        budget=budget,
        pipeline=pipeline,
        optimizer=optimizer,
        storage=storage,
        study=study,
        seed=seed,
        out=out,
    )
    output = _output(ctx, quiet)
    run_pipeline_demo(options, output, stage_clock=_settings(ctx).stage_clock)


@app.command("demo-svm")
def demo_svm(
    ctx: typer.Context,
    trials: Annotated[
        int,
        typer.Option("--trials", "-n", min=1, help="Trials to run in this call (added on resume)."),
    ] = DEMO_TRIALS,
    storage: _DemoStorageOption = None,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help=f"Study name (default: {DEMO_STUDY}, suffixed when --cv or --max-samples change).",
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            "--optimizer",
            help="gp or random (default: gp for a new study, the stored one on resume).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed of a new study (default: 0); a resumed study keeps its own."
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Folder for the database and plot."),
    ] = Path(DEFAULT_DIR),
    cv: Annotated[int, typer.Option("--cv", min=2, max=20, help="Cross-validation folds.")] = 5,
    max_samples: Annotated[
        int | None,
        typer.Option(
            "--max-samples",
            min=40,
            help="Use a stratified subsample of the 1797 digits (faster, e.g. for smoke tests).",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the summary table.")] = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes.")] = False,
) -> None:
    """Tune an SVM (C, gamma, kernel) on scikit-learn's digits by k-fold CV accuracy.

    Shows a live progress bar, then the top trials and a best-so-far plot (PNG in --out).
    Running it again resumes the same study; Ctrl-C keeps every finished trial.
    """
    from metatune.demos.svm import SvmDemoOptions, run_svm_demo

    options = SvmDemoOptions(
        trials=trials,
        storage=storage,
        study=study,
        optimizer=optimizer,
        seed=seed,
        out=out,
        cv=cv,
        max_samples=max_samples,
        top=top,
    )
    run_svm_demo(options, _output(ctx, quiet))


# trials / best / export / studies -------------------------------------------------------------
@app.command("trials")
def trials_cmd(
    ctx: typer.Context,
    storage: _StorageOpt = DEFAULT_STORAGE,
    study: _StudyOpt = None,
    state: Annotated[
        _StateChoice | None, typer.Option("--state", help="Only trials in this state.")
    ] = None,
    sort: Annotated[
        _SortChoice,
        typer.Option("--sort", help="Order by trial number, or by value (best first)."),
    ] = _SortChoice.number,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Show at most N trials: the most recent, or the best with --sort value.",
        ),
    ] = None,
) -> None:
    """Show the trials of a study as a table."""
    from metatune.constraints import stored_constraints
    from metatune.report.tables import directions_label, rank_trials, trials_table
    from metatune.trial import TrialState

    output = _output(ctx)
    store = open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        states = None if state is None else [TrialState(state.value)]
        rows = store.get_trials(record.id, states)
    finally:
        store.close()
    total = len(rows)
    if sort is _SortChoice.value:
        rows = rank_trials(rows, record.direction, record.directions)
        if limit is not None:
            rows = rows[:limit]
    elif limit is not None:
        rows = rows[-limit:]
    what = f"{state.value} trial" if state else "trial"
    what += "" if total == 1 else "s"
    title = f"{record.name} ({directions_label(record)}): {total} {what}"
    if len(rows) < total:
        title += f", showing {len(rows)}"
    if not rows:
        output.note(escape(f"study {record.name!r} has no {what}"))
        return
    output.results().print(
        trials_table(
            rows,
            record.direction,
            title=title,
            show_started=True,
            directions=record.directions,
            constraints=stored_constraints(record.optimizer_options),
        )
    )


def _trial_json(trial: Trial) -> dict[str, Any]:
    from metatune.report.export import iso_utc, jsonable

    return {
        "number": trial.number,
        "value": trial.value,
        "params": trial.params,
        "user_attrs": {k: jsonable(v) for k, v in trial.user_attrs.items()},
        "started_at": iso_utc(trial.started_at),
        "finished_at": iso_utc(trial.finished_at),
        "duration": trial.duration,
    }


@app.command()
def best(
    storage: _StorageOpt = DEFAULT_STORAGE,
    study: _StudyOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Show the best completed trial of a study (the Pareto front for several objectives)."""
    from metatune.constraints import stored_constraints
    from metatune.pareto import front_trials
    from metatune.report.tables import best_trial, trial_table, trials_table

    store = open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        rows = store.get_trials(record.id)
    finally:
        store.close()
    if record.directions and len(record.directions) > 1:
        constraints = stored_constraints(record.optimizer_options)
        front = front_trials(rows, record.directions, constraints)
        if not front:
            what = "trial that meets its constraints" if constraints else "completed trial"
            fail(f"study {record.name!r} has no {what} yet ({len(rows)} trials in all)")
        if as_json:
            payload = {
                "study": record.name,
                "directions": record.directions,
                "best_trials": [{**_trial_json(t), "values": t.values} for t in front],
            }
            sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")
            return
        title = (
            f"Pareto front of {record.name} ({', '.join(record.directions)}): "
            f"{len(front)} of {len(rows)} trials"
        )
        Output().results().print(
            trials_table(
                front,
                record.direction,
                title=title,
                directions=record.directions,
                constraints=constraints,
            )
        )
        return
    top = best_trial(rows, record.direction)
    if top is None:
        fail(f"study {record.name!r} has no completed trial yet ({len(rows)} trials in all)")
    if as_json:
        payload = {"study": record.name, "direction": record.direction, **_trial_json(top)}
        sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return
    console = Output().results()
    console.print(
        f"[bold]Best trial of {escape(printable(record.name))}[/] "
        f"({record.direction}, {len(rows)} trials)"
    )
    console.print(trial_table(top))


@app.command()
def export(
    ctx: typer.Context,
    storage: _StorageOpt = DEFAULT_STORAGE,
    study: _StudyOpt = None,
    format: Annotated[
        _FormatChoice, typer.Option("--format", "-f", help="Output format.")
    ] = _FormatChoice.csv,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="File to write (default: stdout)."),
    ] = None,
) -> None:
    """Export every trial of a study as CSV or JSON, one row per trial.

    Columns: number, state, value, error (first line), started_at, finished_at (UTC),
    duration (s), params.<name> for each parameter, user_attrs.<name> for extra metrics.
    """
    from metatune.report.export import write_trials

    store = open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        rows = store.get_trials(record.id)
    finally:
        store.close()
    if output is None or str(output) == "-":
        write_trials(rows, sys.stdout, format.value)
        sys.stdout.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fp:
            write_trials(rows, fp, format.value)
        tmp.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror or exc}")
    except BaseException:  # no half-written temp file is left behind, whatever happened
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _output(ctx).note(
        escape(f"Wrote {len(rows)} trials of {record.name!r} to {output} ({format.value}).")
    )


@app.command()
def studies(
    ctx: typer.Context,
    storage: _StorageOpt = DEFAULT_STORAGE,
    as_json: _JsonOpt = False,
) -> None:
    """List the studies in a storage with trial counts and best values."""
    from metatune.report.tables import studies_table, summarize_study

    store = open_storage(storage, must_exist=True)
    try:
        summaries = [summarize_study(r, store.get_trials(r.id)) for r in store.list_studies()]
        where = display_url(store, storage)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([s.to_dict() for s in summaries], indent=2) + "\n")
        return
    output = _output(ctx)
    if not summaries:
        output.note(f"no studies in {escape(where)}")
        return
    output.results().print(studies_table(summaries, title=f"Studies in {where}"))


# report / dashboard ---------------------------------------------------------------------------
@app.command()
def report(
    ctx: typer.Context,
    storage: _StorageOpt = DEFAULT_STORAGE,
    study: _StudyOpt = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="HTML file to write.")
    ] = Path("report.html"),
) -> None:
    """Write a study's report: one HTML file with its plots, opening offline.

    Best so far against trials, wall time and cost; parameter importance, parallel coordinates
    and slices; for pipelines the cost per stage, cache hits and the budget; failed trials.
    """
    from metatune.report.data import StudyView
    from metatune.report.html import write_report

    store = open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        rows = store.get_trials(record.id)
    finally:
        store.close()
    try:
        write_report(StudyView.from_record(record, rows), output)
    except ImportError as exc:
        fail(one_line(str(exc)))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    _output(ctx).note(
        escape(f"Wrote the report of {record.name!r} ({len(rows)} trials) to {output}")
    )


@app.command()
def dashboard(
    ctx: typer.Context,
    storage: _StorageOpt = DEFAULT_STORAGE,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free).")
    ] = 8080,
) -> None:
    """Serve a read-only web dashboard of the studies in a storage, updating while they run."""
    from metatune.report.dashboard import serve

    out = _output(ctx)
    store = open_storage(storage, must_exist=True)
    try:
        where = display_url(store, storage)
        serve(store, host=host, port=port, where=where, note=lambda m: out.note(escape(m)))
    except (ImportError, ValueError) as exc:
        fail(one_line(str(exc)))
    finally:
        store.close()


# lhopt ------------------------------------------------------------------------------------------
lhopt_app = typer.Typer(
    help="Learned hyperparameter control: meta-train a policy (LHOPT-style).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lhopt_app, name="lhopt")


@lhopt_app.command("train")
def lhopt_train(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Folder for checkpoints, log.json and policy.pt.")
    ] = Path(f"{DEFAULT_DIR}/lhopt"),
    iterations: Annotated[int, typer.Option(help="PPO iterations.")] = 40,
    episodes: Annotated[int, typer.Option(help="Training runs (episodes) per iteration.")] = 8,
    families: Annotated[
        str,
        typer.Option(
            help="Comma-separated task families (default: all but mlp-regression, the mix the "
            "shipped policy was trained on)."
        ),
    ] = "",
    seed: Annotated[int, typer.Option(help="Seed of the whole meta-training.")] = 0,
    max_steps: Annotated[
        int, typer.Option(help="Longest training run of an episode, in steps (>= 100).")
    ] = 300,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads (the tasks are tiny: 1 is fastest).")
    ] = 1,
    workers: Annotated[
        int,
        typer.Option(help="Processes running episodes in parallel (same result as with 1)."),
    ] = 1,
    baseline_lrs: Annotated[
        str,
        typer.Option(
            help="Comma-separated multipliers of each task's default lr: the reward's baseline "
            "is the best constant or cosine AdamW run among them (1 = the default rate only)."
        ),
    ] = "1",
    init_scale_spread: Annotated[
        float,
        typer.Option(
            help="Scale every task's initial weights by 10^U(-x, x), fixed per task seed "
            "(0 = as built)."
        ),
    ] = 0.0,
    init_policy: Annotated[
        Path | None,
        typer.Option(help="Start from this policy file (fine-tuning) instead of a fresh one."),
    ] = None,
    rollouts: Annotated[
        int,
        typer.Option(
            help="Runs of each drawn situation (task, start lr, length) per iteration; above 1, "
            "an episode's advantage is its reward minus the other runs' mean. Must divide "
            "--episodes."
        ),
    ] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="process: one model per episode (the shipped policy's engine); vectorized: "
            "lockstep groups from the procedural task space's training families."
        ),
    ] = "process",
    groups: Annotated[
        int, typer.Option(help="Lockstep groups per iteration (--engine vectorized).")
    ] = 1,
) -> None:
    """Meta-train a control policy with PPO on small tasks; resumes from --out if it exists.

    Run again with a larger --iterations (and nothing else changed) to train longer.
    """
    import torch
    from rich.progress import Progress

    from metatune.lhopt.task_space import TRAIN_FAMILIES
    from metatune.lhopt.tasks import DEFAULT_FAMILIES
    from metatune.lhopt.training import MetaTrainConfig, meta_train

    if iterations < 1 or episodes < 1:
        raise CLIError("--iterations and --episodes must be positive integers", code=2)
    if max_steps < 100:
        raise CLIError(f"--max-steps must be at least 100, got {max_steps}", code=2)
    if threads < 1 or workers < 1:
        raise CLIError(
            f"--threads and --workers must be positive integers, got {threads}, {workers}", code=2
        )
    torch.set_num_threads(threads)
    default = TRAIN_FAMILIES if engine == "vectorized" else DEFAULT_FAMILIES
    chosen = [f.strip() for f in families.split(",") if f.strip()] or list(default)
    try:
        multipliers = [float(x) for x in baseline_lrs.split(",") if x.strip()]
    except ValueError:
        raise CLIError(
            f"--baseline-lrs must be comma-separated numbers, got {baseline_lrs!r}", code=2
        ) from None
    if init_policy is not None and not init_policy.is_file():
        raise CLIError(f"--init-policy: no policy file at {init_policy}", code=2)
    try:
        config = MetaTrainConfig(
            iterations=iterations,
            episodes_per_iteration=episodes,
            families=chosen,
            seed=seed,
            max_steps=max_steps,
            baseline_lrs=multipliers,
            init_scale_spread=init_scale_spread,
            init_policy=str(init_policy) if init_policy is not None else "",
            rollouts=rollouts,
            engine=engine,
            groups=groups,
        )
    except ValueError as exc:
        raise CLIError(str(exc), code=2) from None
    output = _output(ctx)
    show = output.live
    with Progress(console=Console(stderr=True), disable=not show) as bar:
        task = bar.add_task("meta-training", total=iterations)

        def report(it: int, stats: dict[str, float]) -> None:
            reward = stats.get("mean_reward", 0.0)
            bar.update(task, completed=it, description=f"meta-training (reward {reward:+.3f})")
            if not show and not output.quiet:  # a log line per iteration when not on a terminal
                print(f"iteration {it}/{iterations}: mean reward {reward:+.3f}", flush=True)

        try:
            meta_train(out, config, progress=report, workers=workers)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    print(f"policy: {out / 'policy.pt'} (log: {out / 'log.json'})")


# Entry point ----------------------------------------------------------------------------------
def _error(message: str) -> None:
    """``error: <message>`` on stderr; what the stream cannot encode (a lone surrogate from an
    undecodable argument) is written as a backslash escape instead of raising."""
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    line = f"error: {printable(message)}".encode(encoding, "backslashreplace").decode(encoding)
    print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run the CLI on `argv` (default: sys.argv[1:]) and return the exit code.

    `settings` start the invocation's `Settings` (the options then add to them), e.g. a
    simulated stage clock in tests.
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = command.main(
            args=args, prog_name="metatune", standalone_mode=False, obj=settings or Settings()
        )
        return rv if isinstance(rv, int) else 0
    except _click_exc.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except _click_exc.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _error(f"{one_line(exc.format_message())}{hint}")
        return exc.exit_code
    except _click_exc.ClickException as exc:
        _error(one_line(exc.format_message()))
        return exc.exit_code
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: stop quietly.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            _error(f"database error: {one_line(str(exc))[:500]}")
            return 1
        if os.environ.get(DEBUG_ENV):
            raise
        # A bug of ours, not a bad input: still one line, with how to get the traceback.
        _error(
            f"internal error: {type(exc).__name__}: {one_line(str(exc))[:500]} "
            f"(set {DEBUG_ENV}=1 for the traceback, and please report it)"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
