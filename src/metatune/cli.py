"""The `metatune` command line: run the demo study and inspect or export stored studies.

Exit codes: 0 success, 1 error (one line on stderr, ``error: ...``), 2 bad usage, 130 Ctrl-C.
Results go to stdout, notes and progress to stderr; progress bars and colour only on a terminal.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from metatune import __version__

try:  # typer >= 0.2x vendors click; older releases use click itself
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover
    import click.exceptions as _click_exc  # type: ignore[no-redef]

if TYPE_CHECKING:
    from metatune.storage import BaseStorage, StudyRecord
    from metatune.trial import Trial

__all__ = ["app", "main"]

DEFAULT_DIR = "metatune-runs"
DEFAULT_STORAGE = f"sqlite:///{DEFAULT_DIR}/metatune.db"
DEMO_STUDY = "svm-digits"
DEMO_TRIALS = 70
_STORAGE_ENV = "METATUNE_STORAGE"


class CLIError(Exception):
    """A user-facing error: printed as one line ``error: ...`` with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Options:
    quiet = False


_OPTS = _Options()


def _fail(message: str, code: int = 1) -> NoReturn:
    raise CLIError(message, code)


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _out() -> Console:
    """Console for results (stdout); colour only on a terminal (rich decides, NO_COLOR works).

    Off a terminal, tables get 120 columns (or $COLUMNS) instead of rich's cramped 80.
    """
    width = None
    if not sys.stdout.isatty():
        cols = os.environ.get("COLUMNS", "")
        width = int(cols) if cols.isdigit() and int(cols) > 0 else 120
    return Console(highlight=False, width=width)


def _note(message: str) -> None:
    """An informational line on stderr, silenced by --quiet."""
    if not _OPTS.quiet:
        Console(stderr=True, highlight=False, soft_wrap=True).print(message)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at emit time, so live progress bars stay intact."""

    def emit(self, record: logging.LogRecord) -> None:
        if _OPTS.quiet and record.levelno < logging.ERROR:
            return
        try:
            print(f"{record.levelname.lower()}: {self.format(record)}", file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


# Storage helpers ------------------------------------------------------------------------------
def _sqlite_file(url: str) -> str | None:
    """The database file of a file-backed sqlite URL, else None."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return None
    db = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or db in ("", ":memory:") or db.startswith("file:"):
        return None
    return db


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _open_storage(url: str, *, must_exist: bool) -> BaseStorage:
    """Open `url`; for reading, refuse to create a new sqlite file where none exists."""
    from metatune.storage import get_storage

    if must_exist:
        db = _sqlite_file(url)
        if db is not None and not Path(db).is_file():
            _fail(
                f"no database at {db} (storage {_safe_url(url)}); "
                "run 'metatune demo' first or pass --storage URL"
            )
    try:
        return get_storage(url)
    except (ValueError, TypeError, ImportError) as exc:
        _fail(_one_line(str(exc)))


def _display_url(storage: BaseStorage, url: str) -> str:
    return str(getattr(storage, "url", None) or _safe_url(url))


def _find_study(storage: BaseStorage, url: str, name: str | None) -> StudyRecord:
    """The record of study `name`; with no name, the only study in the storage."""
    if name is not None:
        record = storage.get_study(name)
        if record is None:
            known = [s.name for s in storage.list_studies()]
            _fail(f"no study named {name!r} in {_display_url(storage, url)}; studies: {known}")
        return record
    studies = storage.list_studies()
    if len(studies) == 1:
        return studies[0]
    where = _display_url(storage, url)
    if not studies:
        _fail(f"no studies in {where}")
    known = [s.name for s in studies]
    raise _click_exc.UsageError(
        f"Missing option '--study': {where} holds {len(known)} studies: {known}"
    )


# Options shared by several commands ----------------------------------------------------------
_STUDY_HELP = "Name of the study (may be left out when the storage holds only one)."
_STORAGE_HELP = "SQLAlchemy URL of the storage, e.g. sqlite:///runs.db or postgresql://..."
_StorageOpt = Annotated[
    str, typer.Option("--storage", envvar=_STORAGE_ENV, metavar="URL", help=_STORAGE_HELP)
]
_StudyOpt = Annotated[str | None, typer.Option("--study", "-s", help=_STUDY_HELP)]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _StateChoice(str, enum.Enum):
    complete = "complete"
    failed = "failed"
    running = "running"


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
    _OPTS.quiet = _OPTS.quiet or quiet


# demo ----------------------------------------------------------------------------------------
def _interrupted(study: Any, where: str) -> NoReturn:
    """After Ctrl-C in a demo: say what is kept and exit 130."""
    print(
        f"Interrupted: the {len(study.completed_trials())} completed trials of study "
        f"{study.name!r} are saved in {where}; run the same command again to resume.",
        file=sys.stderr,
    )
    raise typer.Exit(130)


_DemoStorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar=_STORAGE_ENV,
        metavar="URL",
        help=_STORAGE_HELP + " (default: sqlite:///<out>/metatune.db)",
    ),
]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "study"


@app.command("demo")
def demo(
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
    from metatune.benchmarks.ml_pipelines import ML_PIPELINES
    from metatune.optimizers import available_optimizers
    from metatune.pipeline import summarize
    from metatune.report.plots import plot_best_so_far
    from metatune.report.tables import best_trial, format_params, format_value
    from metatune.study import Study
    from metatune.trial import TrialState

    _OPTS.quiet = _OPTS.quiet or quiet
    demo_pipelines = ("vision", "stacking")
    if pipeline not in demo_pipelines:
        raise typer.BadParameter(
            f"{pipeline!r} is not one of {', '.join(map(repr, demo_pipelines))}",
            param_hint="'--pipeline'",
        )
    optimizer = optimizer or "eeipu"
    if optimizer not in available_optimizers():
        raise typer.BadParameter(
            f"{optimizer!r} is not one of {', '.join(repr(o) for o in available_optimizers())}",
            param_hint="'--optimizer'",
        )
    study = study or f"{pipeline}-{optimizer}"
    url = storage or f"sqlite:///{(out / 'metatune.db').as_posix()}"
    store = _open_storage(url, must_exist=False)
    where = _display_url(store, url)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create output folder {out}: {exc.strerror or exc}")
    pipe = ML_PIPELINES[pipeline](cache=out / "cache")
    try:
        st = Study(pipe, optimizer=optimizer, storage=store, name=study, seed=seed)
    except ValueError as exc:
        _fail(_one_line(str(exc)))
    spent_before = st.cost_spent
    total = spent_before + budget
    _note(
        f"Study [bold]{escape(study)}[/] in {escape(where)}: pipeline {pipeline} "
        f"({' -> '.join(pipe.stage_names)}), optimizer {escape(st.optimizer.name)}, "
        f"budget {budget:g} s of stage time"
        + (f" (after {spent_before:.0f} s already spent)" if spent_before else "")
        + f"; cache in {escape(str(out / 'cache'))}."
    )
    err = Console(stderr=True, highlight=False)
    show = not _OPTS.quiet and sys.stderr.isatty()
    best_value = [math.inf]

    def report(s: Study, t: Any) -> None:
        if not show:
            return
        marks = " ".join(
            f"[cyan]{escape(r['name'])}:cache[/]"
            if r.get("cache_hit")
            else f"{escape(r['name'])}:ran"
            for r in t.system_attrs.get("stages", [])
        )
        if t.state is TrialState.COMPLETE and t.value is not None:
            best_value[0] = min(best_value[0], t.value)
            outcome = f"loss {t.value:.4f} (best {best_value[0]:.4f})"
        else:
            outcome = f"[red]failed[/]: {escape((t.error or '').splitlines()[0][:60])}"
        cost = float(t.system_attrs.get("cost", 0.0))
        err.print(
            f"#{t.number:<4} {marks}  {cost:6.2f} s  {outcome}  [dim]{s.cost_spent:.0f}/{total:.0f} s[/]"
        )

    try:
        st.optimize(pipe, budget=total, callbacks=[report], show_progress=False)
    except KeyboardInterrupt:
        _interrupted(st, where)

    trials = st.trials
    summary = summarize(trials)
    console = _out()
    console.print(
        f"{summary['candidates']} candidates in {summary['cost_spent']:.0f} s of stage time "
        f"({summary['completed']} completed, {summary['failed']} failed); "
        f"{summary['trials_with_cache_hits']} reused a cached prefix, "
        f"{summary['stage_cache_hits']} stage runs served from the cache, "
        f"{summary['seconds_saved']:.0f} s saved."
    )
    best = best_trial(trials, st.direction)
    if best is not None:
        acc = best.user_attrs.get("accuracy")
        acc_txt = f", accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
        console.print(
            f"Best: trial #{best.number}, validation loss {format_value(best.value)}{acc_txt} "
            f"with {escape(format_params(best.params))}"
        )
    plot = out / f"{_slug(study)}-best-so-far.png"
    plot_best_so_far(
        trials, plot, st.direction, title=f"{study}: {pipeline} pipeline", ylabel="validation loss"
    )
    console.print(f"Plot: {escape(str(plot))}")


@app.command("demo-svm")
def demo_svm(
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
    from metatune.benchmarks.sklearn_tasks import SVMDigits
    from metatune.optimizers import available_optimizers
    from metatune.report.plots import plot_best_so_far
    from metatune.report.tables import (
        best_trial,
        format_params,
        format_value,
        rank_trials,
        trials_table,
    )
    from metatune.space import Space
    from metatune.study import Study
    from metatune.trial import TrialState

    _OPTS.quiet = _OPTS.quiet or quiet
    if optimizer is not None and optimizer not in available_optimizers():
        raise typer.BadParameter(
            f"{optimizer!r} is not one of {', '.join(repr(o) for o in available_optimizers())}",
            param_hint="'--optimizer'",
        )
    if max_samples is not None and max_samples < 10 * cv:
        raise typer.BadParameter(
            f"{max_samples} is too small for {cv}-fold CV; use at least {10 * cv}",
            param_hint="'--max-samples'",
        )
    if study is None:
        study = DEMO_STUDY
        if cv != 5:
            study += f"-cv{cv}"
        if max_samples is not None:
            study += f"-n{max_samples}"
    if not study.strip():
        raise typer.BadParameter("the study name must not be empty", param_hint="'--study'")

    url = storage or f"sqlite:///{(out / 'metatune.db').as_posix()}"
    store = _open_storage(url, must_exist=False)
    where = _display_url(store, url)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create output folder {out}: {exc.strerror or exc}")
    try:
        task = SVMDigits(cv=cv, max_samples=max_samples, seed=0)
        config = {"cv": cv, "n_samples": len(task.y)}
        record = store.get_study(study)
        if record is not None:
            existing = store.get_trials(record.id)
            if record.direction != task.direction or Space.from_dict(record.space) != task.space:
                _fail(
                    f"study {study!r} in {where} is not an SVM-digits demo study "
                    "(different space or direction); pass --study NAME for a new one"
                )
            ran = next((t.user_attrs for t in reversed(existing) if "cv" in t.user_attrs), None)
            if ran is not None and {k: ran.get(k) for k in config} != config:
                _fail(
                    f"study {study!r} was run with cv={ran.get('cv')} on {ran.get('n_samples')} "
                    f"samples, not cv={cv} on {config['n_samples']}; pass --study NAME for a new one"
                )
            done = [t for t in existing if t.state is TrialState.COMPLETE]
            best = best_trial(existing, record.direction)
            best_txt = f", best {format_value(best.value)} (#{best.number})" if best else ""
            opt_txt = optimizer or record.optimizer
            _note(
                f"Resuming study [bold]{escape(study)}[/] in {escape(where)}: {len(existing)} trials so far "
                f"({len(done)} complete){best_txt}; adding {trials} with optimizer {escape(opt_txt)}."
            )
            if seed is not None and seed != record.seed:
                _note(f"--seed {seed} ignored: a resumed study keeps its seed ({record.seed}).")
        else:
            _note(
                f"New study [bold]{escape(study)}[/] in {escape(where)}: {trials} trials, "
                f"optimizer {escape(optimizer or 'gp')}, seed {0 if seed is None else seed}."
            )
        st = Study(
            task.space,
            direction=task.direction,
            optimizer=optimizer if record is not None else (optimizer or "gp"),
            storage=store,
            name=study,
            seed=0 if seed is None else seed,
        )
    except ValueError as exc:
        _fail(_one_line(str(exc)))
    _note(
        f"Objective: {cv}-fold CV accuracy of sklearn SVC(C, gamma, kernel) on digits "
        f"({len(task.y)} samples), maximized."
    )

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        return {**task(params), **config}

    show_progress = not _OPTS.quiet and sys.stderr.isatty()
    try:
        st.optimize(objective, n_trials=trials, show_progress=show_progress)
    except KeyboardInterrupt:
        _interrupted(st, where)

    all_trials = st.trials
    n_failed = sum(t.state is TrialState.FAILED for t in all_trials)
    ranked = [t for t in rank_trials(all_trials, st.direction) if t.state is TrialState.COMPLETE]
    console = _out()
    console.print(
        trials_table(
            ranked[:top],
            st.direction,
            title=(
                f"{study}: top {min(top, len(ranked))} of {len(all_trials)} trials"
                + (f" ({n_failed} failed)" if n_failed else "")
            ),
        )
    )
    best = best_trial(all_trials, st.direction)
    if best is not None:
        console.print(
            f"Best: trial #{best.number}, accuracy {format_value(best.value)} "
            f"with {escape(format_params(best.params))}"
        )
    plot = out / f"{_slug(study)}-best-so-far.png"
    plot_best_so_far(
        all_trials,
        plot,
        st.direction,
        title=f"{study}: SVC on digits, {cv}-fold CV accuracy",
        ylabel="CV accuracy",
    )
    console.print(f"Plot: {escape(str(plot))}")
    storage_arg = "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(where)}"
    _note(
        escape(
            "Run the same command again to add trials to this study; inspect it with "
            f"'metatune trials{storage_arg} --study {shlex.quote(study)}'."
        )
    )


# trials / best / export / studies -------------------------------------------------------------
@app.command("trials")
def trials_cmd(
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
    from metatune.report.tables import rank_trials, trials_table
    from metatune.trial import TrialState

    store = _open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        states = None if state is None else [TrialState(state.value)]
        rows = store.get_trials(record.id, states)
    finally:
        store.close()
    total = len(rows)
    if sort is _SortChoice.value:
        rows = rank_trials(rows, record.direction)
        if limit is not None:
            rows = rows[:limit]
    elif limit is not None:
        rows = rows[-limit:]
    what = f"{state.value} trial" if state else "trial"
    what += "" if total == 1 else "s"
    title = f"{record.name} ({record.direction}): {total} {what}"
    if len(rows) < total:
        title += f", showing {len(rows)}"
    if not rows:
        _note(escape(f"study {record.name!r} has no {what}"))
        return
    _out().print(trials_table(rows, record.direction, title=title, show_started=True))


def _trial_json(trial: Trial) -> dict[str, Any]:
    from metatune.report.export import _iso, _jsonable

    return {
        "number": trial.number,
        "value": trial.value,
        "params": trial.params,
        "user_attrs": {k: _jsonable(v) for k, v in trial.user_attrs.items()},
        "started_at": _iso(trial.started_at),
        "finished_at": _iso(trial.finished_at),
        "duration": trial.duration,
    }


@app.command()
def best(
    storage: _StorageOpt = DEFAULT_STORAGE,
    study: _StudyOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Show the best completed trial of a study: number, value and params."""
    from metatune.report.tables import best_trial, trial_table

    store = _open_storage(storage, must_exist=True)
    try:
        record = _find_study(store, storage, study)
        rows = store.get_trials(record.id)
    finally:
        store.close()
    top = best_trial(rows, record.direction)
    if top is None:
        _fail(f"study {record.name!r} has no completed trial yet ({len(rows)} trials in all)")
    if as_json:
        payload = {"study": record.name, "direction": record.direction, **_trial_json(top)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console = _out()
    console.print(
        f"[bold]Best trial of {escape(record.name)}[/] ({record.direction}, {len(rows)} trials)"
    )
    console.print(trial_table(top))


@app.command()
def export(
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

    store = _open_storage(storage, must_exist=True)
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
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    _note(escape(f"Wrote {len(rows)} trials of {record.name!r} to {output} ({format.value})."))


@app.command()
def studies(
    storage: _StorageOpt = DEFAULT_STORAGE,
    as_json: _JsonOpt = False,
) -> None:
    """List the studies in a storage with trial counts and best values."""
    from metatune.report.tables import studies_table, summarize_study

    store = _open_storage(storage, must_exist=True)
    try:
        summaries = [summarize_study(r, store.get_trials(r.id)) for r in store.list_studies()]
        where = _display_url(store, storage)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([s.to_dict() for s in summaries], indent=2) + "\n")
        return
    if not summaries:
        _note(f"no studies in {escape(where)}")
        return
    _out().print(studies_table(summaries, title=f"Studies in {where}"))


# lhopt ------------------------------------------------------------------------------------------
lhopt_app = typer.Typer(
    help="Learned hyperparameter control: meta-train a policy (LHOPT-style).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lhopt_app, name="lhopt")


@lhopt_app.command("train")
def lhopt_train(
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
) -> None:
    """Meta-train a control policy with PPO on small tasks; resumes from --out if it exists.

    Run again with a larger --iterations (and nothing else changed) to train longer.
    """
    import torch
    from rich.progress import Progress

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
    chosen = [f.strip() for f in families.split(",") if f.strip()] or list(DEFAULT_FAMILIES)
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
        )
    except ValueError as exc:
        raise CLIError(str(exc), code=2) from None
    show = not _OPTS.quiet and sys.stderr.isatty()
    with Progress(console=Console(stderr=True), disable=not show) as bar:
        task = bar.add_task("meta-training", total=iterations)

        def report(it: int, stats: dict[str, float]) -> None:
            reward = stats.get("mean_reward", 0.0)
            bar.update(task, completed=it, description=f"meta-training (reward {reward:+.3f})")
            if not show and not _OPTS.quiet:  # a log line per iteration when not on a terminal
                print(f"iteration {it}/{iterations}: mean reward {reward:+.3f}", flush=True)

        try:
            meta_train(out, config, progress=report, workers=workers)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    print(f"policy: {out / 'policy.pt'} (log: {out / 'log.json'})")


# Entry point ----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default: sys.argv[1:]) and return the exit code."""
    _OPTS.quiet = False
    logger = logging.getLogger("metatune")
    handler = _StderrHandler()
    logger.addHandler(handler)
    old_propagate = logger.propagate
    logger.propagate = False
    try:
        return _main(argv, handler)
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


def _main(argv: Sequence[str] | None, handler: logging.Handler) -> int:
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    handler.setLevel(logging.WARNING)
    try:
        rv = command.main(args=args, prog_name="metatune", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except _click_exc.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except _click_exc.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        print(f"error: {_one_line(exc.format_message())}{hint}", file=sys.stderr)
        return exc.exit_code
    except _click_exc.ClickException as exc:
        print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
        return exc.exit_code
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
            print(f"error: database error: {_one_line(str(exc))[:500]}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
