"""What the demos share with each other and with the CLI's inspection commands.

User-facing errors (`CommandError`: one line ``error: ...`` and an exit code), where output goes
(`Output`: results on stdout, notes and progress on stderr, silenced by quiet), opening a storage
and the output folder, the optimizer-name check, and the end of a demo: the best trial and the
best-so-far plot.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from metatune._text import printable

if TYPE_CHECKING:
    from metatune.storage import BaseStorage
    from metatune.trial import Trial

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_STORAGE",
    "STORAGE_ENV",
    "CommandError",
    "Output",
    "check_optimizer",
    "display_url",
    "fail",
    "interrupted",
    "one_line",
    "free_cores",
    "torch_threads_on_free_cores",
    "open_demo_storage",
    "open_storage",
    "report_best",
    "safe_url",
    "slug",
    "write_best_so_far_plot",
    "write_html_report",
]

DEFAULT_DIR = "metatune-runs"
DEFAULT_STORAGE = f"sqlite:///{DEFAULT_DIR}/metatune.db"
STORAGE_ENV = "METATUNE_STORAGE"


class CommandError(Exception):
    """A user-facing error: printed as one line ``error: ...`` with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CommandError(message, code)


def one_line(text: str) -> str:
    """`text` with its non-empty lines joined by "; " (an error message on one line)."""
    return "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


@dataclass(frozen=True)
class Output:
    """Where a command writes: results to stdout, notes and progress to stderr. `quiet`
    silences notes and progress (results stay); colour and live progress only on a terminal."""

    quiet: bool = False

    def quieter(self, quiet: bool) -> Output:
        """This output, also quiet when `quiet` (a command's own --quiet)."""
        return replace(self, quiet=self.quiet or quiet)

    @property
    def live(self) -> bool:
        """Whether progress bars and per-trial lines belong on stderr now."""
        return not self.quiet and sys.stderr.isatty()

    def results(self) -> Console:
        """Console for results (stdout); colour only on a terminal (rich decides, NO_COLOR works).

        Off a terminal, tables get 120 columns (or $COLUMNS) instead of rich's cramped 80.
        """
        width = None
        if not sys.stdout.isatty():
            cols = os.environ.get("COLUMNS", "")
            width = int(cols) if cols.isdigit() and int(cols) > 0 else 120
        return Console(highlight=False, width=width)

    def progress(self) -> Console:
        """Console for progress on stderr."""
        return Console(stderr=True, highlight=False)

    def note(self, message: str) -> None:
        """An informational line on stderr (rich markup), silenced by quiet."""
        if not self.quiet:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                printable(message, keep_newlines=True)
            )


def free_cores() -> int:
    """Cores not busy with other work now: the core count less the 1-minute load average
    (rounded), at least 1. Where the load cannot be read, every core."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return cores
    return max(1, min(cores, cores - int(load + 0.5)))


@contextlib.contextmanager
def torch_threads_on_free_cores() -> Iterator[None]:
    """Run torch on the cores no other job is using (restored afterwards): torch's default of
    one thread per core fights any other job on the machine, which can make each trial ten times
    slower, while on an idle machine every core helps."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, free_cores()))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Storage -------------------------------------------------------------------------------------
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


def safe_url(url: str) -> str:
    """`url` with its password hidden (as given when it does not parse)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(url: str, *, must_exist: bool) -> BaseStorage:
    """Open `url`; for reading, refuse to create a new sqlite file where none exists."""
    from metatune.storage import get_storage

    if must_exist:
        db = _sqlite_file(url)
        if db is not None and not Path(db).is_file():
            fail(
                f"no database at {db} (storage {safe_url(url)}); "
                "run 'metatune demo' first or pass --storage URL"
            )
    try:
        return get_storage(url, read_only=must_exist)  # a read-only command writes nothing
    except (ValueError, TypeError, ImportError) as exc:
        fail(one_line(str(exc)))


def display_url(storage: BaseStorage, url: str) -> str:
    """How to name the storage to the user (the storage's own URL, password hidden)."""
    return str(getattr(storage, "url", None) or safe_url(url))


def open_demo_storage(storage: str | None, out: Path) -> tuple[BaseStorage, str, str]:
    """A demo's storage (default: sqlite in `out`) and its output folder, created if needed.

    Returns the storage, its URL and how to name it to the user.
    """
    url = storage or f"sqlite:///{(out / 'metatune.db').as_posix()}"
    store = open_storage(url, must_exist=False)
    where = display_url(store, url)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create output folder {out}: {exc.strerror or exc}")
    return store, url, where


# Demo pieces ---------------------------------------------------------------------------------
def check_optimizer(name: str | None) -> None:
    """A usage error (exit 2, naming --optimizer) for an optimizer that is not registered."""
    from metatune.optimizers import available_optimizers

    if name is not None and name not in available_optimizers():
        known = ", ".join(repr(o) for o in available_optimizers())
        raise typer.BadParameter(f"{name!r} is not one of {known}", param_hint="'--optimizer'")


def slug(name: str) -> str:
    """`name` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "study"


def interrupted(study: Any, where: str) -> NoReturn:
    """After Ctrl-C in a demo: say what is kept and exit 130."""
    print(
        f"Interrupted: the {len(study.completed_trials())} completed trials of study "
        f"{study.name!r} are saved in {where}; run the same command again to resume.",
        file=sys.stderr,
    )
    raise typer.Exit(130)


def report_best(console: Console, best: Trial | None, value_label: str, extra: str = "") -> None:
    """``Best: trial #N, <value_label> <value><extra> with <params>`` (nothing without one)."""
    from metatune.report.tables import format_params, format_value

    if best is None:
        return
    console.print(
        f"Best: trial #{best.number}, {value_label} {format_value(best.value)}{extra} "
        f"with {escape(format_params(best.params))}"
    )


def write_best_so_far_plot(
    console: Console,
    trials: list[Trial],
    out: Path,
    study: str,
    direction: str,
    *,
    title: str,
    ylabel: str,
    x: str = "number",
    xlabel: str | None = None,
) -> Path:
    """Write ``<out>/<study>-best-so-far.png`` and say where it is."""
    from metatune.report.plots import plot_best_so_far

    plot = out / f"{slug(study)}-best-so-far.png"
    plot_best_so_far(trials, plot, direction, title=title, ylabel=ylabel, x=x, xlabel=xlabel)
    console.print(f"Plot: {escape(str(plot))}")
    return plot


def write_html_report(console: Console, study: Any, out: Path, name: str) -> Path | None:
    """Write ``<out>/<study>-report.html`` (the HTML report) and say where it is; without
    plotly, say how to get it instead."""
    try:
        from metatune.report.html import write_report

        path = write_report(study, out / f"{slug(name)}-report.html")
    except ImportError as exc:
        console.print(f"No HTML report: {escape(str(exc))}")
        return None
    console.print(f"Report: {escape(str(path))} (open it in a browser; it works offline)")
    return path
