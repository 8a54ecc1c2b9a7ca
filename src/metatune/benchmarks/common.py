"""Shared helpers of the benchmark scripts: thread pinning, machine info, command line, progress,
number formatting, notes files and the "How it was run" section of a page.

The scripts under benchmarks/ import this module before torch: `single_thread_env` must run
before torch is first imported; `single_thread_torch` then pins the process that runs the work
(numpy's BLAS pool, loaded by importing metatune, included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import posixpath
import shlex
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metatune.benchmarks.gloo import run_on_gloo

__all__ = [
    "REPO_ROOT",
    "captured_warnings",
    "command_line",
    "fmt_num",
    "format_machine",
    "how_it_was_run",
    "machine_info",
    "make_progress",
    "now_utc",
    "placeholder_sentences",
    "portable_command",
    "read_notes",
    "repo_relative",
    "run_on_gloo",
    "single_thread_env",
    "single_thread_torch",
]

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def single_thread_env() -> None:
    """Pin BLAS/OpenMP to one thread in libraries loaded from now on (torch) and in every process
    started from here; call before torch is first imported. Libraries already loaded (numpy's
    BLAS, which importing metatune loads) keep their pools: `single_thread_torch` pins those."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def single_thread_torch() -> None:
    """Pin this process to one thread before it runs anything: the environment (for a fresh
    process), the BLAS/OpenMP pools already loaded (through threadpoolctl, a dependency of
    scikit-learn) and torch's intra- and inter-op pools."""
    single_thread_env()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        pass
    else:
        threadpool_limits(limits=1)
    import torch

    torch.set_num_threads(1)
    # Raises if already set, or once parallel work has started in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def command_line(out: str | os.PathLike[str] | None = None) -> str:
    """The command that started this process, as one shell-quoted line that anyone can run from
    the repository root (`portable_command`; `out` is the folder the run writes its page to),
    so a recorded JSON names no folder of the machine it ran on."""
    argv = [sys.argv[0], *sys.argv[1:]]
    raw = "python " + " ".join(shlex.quote(a) for a in argv)
    return portable_command(raw, repo_relative(out) if out is not None else None)


def now_utc() -> str:
    """The current time in UTC to the minute, as the pages print it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine_info(
    packages: Sequence[str] = ("torch", "botorch", "optuna", "greenlet"),
) -> dict[str, Any]:
    """Platform, CPU, Python and package versions (greenlet: Optuna's GPSampler batches L-BFGS-B with it)."""
    from importlib import metadata

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    for pkg in ("metatune", *packages):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg] = None
    return info


def format_machine(info: dict[str, Any]) -> str:
    """`machine_info` as one line: platform, CPUs, Python, package versions."""
    versions = ", ".join(
        f"{k} {v if v is not None else 'not installed'}"
        for k, v in info.items()
        if k not in ("platform", "cpu", "cpu_count", "python")
    )
    return (
        f"{info['platform']}, {info['cpu_count']} CPUs ({info['cpu']}), "
        f"Python {info['python']}, {versions}"
    )


def make_progress(enabled: bool):  # -> rich.progress.Progress | None
    """A rich progress bar over jobs, or None when disabled (e.g. output is not a terminal)."""
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
    )


def fmt_num(x: float) -> str:
    """Compact number for tables: 3 significant digits, scientific when tiny or huge."""
    if x != x:  # NaN
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax < 1e-3 or ax >= 1e4:
        return f"{x:.2e}"
    return f"{x:.3g}"


def read_notes(parser: Any, path: str | None) -> str | None:
    """The Markdown of a ``--notes`` file, or None without one; a file that cannot be read is a
    usage error (``parser.error``: exit status 2, before any run starts)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        parser.error(f"--notes: cannot read {path!r}: {exc}")
        return None  # parser.error exits; this keeps type checkers content


# --- the "How it was run" section ----------------------------------------------------------------
# A page names no folder of the machine it ran on: commands are shown with their absolute paths
# replaced by repository paths or by the placeholders below, explained once on the page.

REPO_ROOT = Path(__file__).resolve().parents[3]  # src/metatune/benchmarks/common.py
OUT_PLACEHOLDER = "OUT"
EARLIER_PLACEHOLDER = "EARLIER"
_EARLIER_FLAGS = ("--merge", "--from", "--from-json")  # files an earlier run of the list wrote
_OUT_FLAGS = ("--out",)
_NOTES_FLAGS = ("--notes",)


def repo_relative(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> str | None:
    """`path` (absolute, or relative to the working directory) as a POSIX path relative to the
    repository root (`root`, default `REPO_ROOT`), or None when it lies outside it."""
    base = Path(root if root is not None else REPO_ROOT).resolve()
    try:
        rel = Path(os.path.abspath(path)).relative_to(base)
    except ValueError:
        return None
    return rel.as_posix() or "."


def _is_option(token: str) -> bool:
    if not token.startswith("-") or token in ("-", "--"):
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False  # a negative number is a value


def _placeholder(flag: str | None, value: str, out_dir: str | None) -> str | None:
    """What an absolute path outside the repository becomes; None drops it with its flag."""
    if flag in _OUT_FLAGS:
        return out_dir or OUT_PLACEHOLDER
    if flag in _EARLIER_FLAGS:
        return f"{EARLIER_PLACEHOLDER}/{posixpath.basename(value.rstrip('/'))}"
    if flag in _NOTES_FLAGS:
        return None
    if flag is None:  # a positional path: the script itself when it is one of ours
        parts = value.split("/")
        if "benchmarks" in parts and value.endswith(".py"):
            i = len(parts) - 1 - parts[::-1].index("benchmarks")
            return "/".join(parts[i:])
        return "PATH"
    return flag.lstrip("-").upper().replace("-", "_") or "PATH"


def portable_command(
    cmd: str, out_dir: str | None = None, *, root: str | os.PathLike[str] | None = None
) -> str:
    """`cmd` (a shell-quoted command line) as anyone can run it from the repository root.

    Every absolute path argument inside the repository (`root`, default `REPO_ROOT`) becomes
    relative to it. One outside it (a folder of the machine the benchmark ran on) becomes:

    - for ``--out``: `out_dir` (the page's folder, relative to the root) when the run's output
      is what that folder holds, else ``OUT``;
    - for ``--merge``, ``--from``, ``--from-json``: ``EARLIER/<file name>``, the file an earlier
      run of the page's commands wrote to its ``--out`` folder;
    - for ``--notes``: nothing; the flag is dropped (the notes are part of the page);
    - for the script (a positional ``.../benchmarks/<name>.py``): ``benchmarks/<name>.py``;
    - for any other flag: its name in capitals (``--grid-cache /x/g.json`` ->
      ``--grid-cache GRID_CACHE``), for any other positional argument ``PATH``.

    ``--flag=value`` is handled like ``--flag value``. Relative paths and other arguments are
    kept as they are; the result is re-quoted with `shlex.join`, so a command that
    `command_line` wrote comes back unchanged when it names no such path.
    """
    tokens = shlex.split(cmd)
    out: list[str] = []
    flag: str | None = None  # the option the next value belongs to (nargs may be several)
    pending_flag: str | None = None  # a --notes token kept back until its value is seen
    for token in tokens:
        if _is_option(token):
            if pending_flag is not None:  # --notes without a value: keep it as it was
                out.append(pending_flag)
                pending_flag = None
            name, eq, value = token.partition("=")
            if eq:
                new = _portable_value(name, value, out_dir, root)
                if new is not None:
                    out.append(f"{name}={new}")
                flag = None
                continue
            flag = token
            if token in _NOTES_FLAGS:
                pending_flag = token
            else:
                out.append(token)
            continue
        new = _portable_value(flag, token, out_dir, root)
        if pending_flag is not None:
            if new is not None:
                out.append(pending_flag)
            pending_flag = None
        if new is not None:
            out.append(new)
    if pending_flag is not None:
        out.append(pending_flag)
    return shlex.join(out)


def _portable_value(
    flag: str | None, value: str, out_dir: str | None, root: str | os.PathLike[str] | None
) -> str | None:
    if not value.startswith("/"):
        return value
    rel = repo_relative(value, root)
    if rel is not None:
        return rel
    return _placeholder(flag, value, out_dir)


def _dropped_notes(cmd: str, out_dir: str | None, root: str | os.PathLike[str] | None) -> bool:
    def count(tokens: list[str]) -> int:
        return sum(t in _NOTES_FLAGS or t.startswith("--notes=") for t in tokens)

    before = count(shlex.split(cmd))
    return before > count(shlex.split(portable_command(cmd, out_dir, root=root)))


def placeholder_sentences(commands: Iterable[str]) -> list[str]:
    """One sentence per placeholder of `portable_command` that occurs in `commands` (already
    made portable), saying what it stands for."""
    tokens = [t for c in commands for t in shlex.split(c)]
    out = []
    if any(
        t.startswith(f"{EARLIER_PLACEHOLDER}/") or f"={EARLIER_PLACEHOLDER}/" in t for t in tokens
    ):
        out.append(
            f"Merged from earlier runs of the commands listed: `{EARLIER_PLACEHOLDER}/...` stands "
            "for the file an earlier command of the list wrote to its `--out` folder."
        )
    if OUT_PLACEHOLDER in tokens or any(t.endswith(f"={OUT_PLACEHOLDER}") for t in tokens):
        out.append(
            f"`--out {OUT_PLACEHOLDER}` stands for a folder of your choice: that run wrote "
            "outside the repository, and what it wrote was merged or copied into this page's "
            "folder."
        )
    return out


def _code(text: str) -> str:
    """`text` as inline Markdown code, whatever backticks it holds."""
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def how_it_was_run(
    commands: Sequence[tuple[str, str | None, str]],
    facts: Sequence[str] = (),
    intro: Sequence[str] = (),
    *,
    root: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The last section of a benchmark page, as Markdown lines.

    `commands`: (command line as recorded, out_dir for `portable_command`, what to say about
    it: date, duration, what it ran; may be empty), in the order they ran; `facts`: further list
    items ("Machine: ..."); `intro`: paragraphs before the list (the set-up). After the list, one
    sentence per placeholder used, and one when a ``--notes`` file outside the repository was
    dropped from a command.
    """
    lines = ["## How it was run", ""]
    for paragraph in intro:
        lines += [paragraph, ""]
    shown = []
    dropped = False
    for raw, out_dir, about in commands:
        cmd = portable_command(raw, out_dir, root=root)
        shown.append(cmd)
        dropped = dropped or _dropped_notes(raw, out_dir, root)
        lines.append(f"- Command ({about}): {_code(cmd)}" if about else f"- Command: {_code(cmd)}")
    lines += [f"- {fact}" for fact in facts]
    after = placeholder_sentences(shown)
    if dropped:
        after.append(
            "The notes are part of this page: the `--notes` file they were read from is not in "
            "the repository."
        )
    if after:
        lines += ["", " ".join(after)]
    return lines


class _Capture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(f"{record.name}: {record.getMessage()}"[:300])


@contextlib.contextmanager
def captured_warnings(
    loggers: Sequence[str] = ("optuna", "metatune", "botorch", "gpytorch"),
) -> Iterator[list[str]]:
    """Collect the warnings (Python's and those logged by `loggers`) raised inside the block into
    the list it yields, each as one line of at most 300 characters, so a benchmark can record
    them per run instead of printing them."""
    sink: list[str] = []
    handler = _Capture(sink)
    targets = [logging.getLogger(n) for n in loggers]
    for lg in targets:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield sink
            finally:
                sink.extend(f"{w.category.__name__}: {w.message}"[:300] for w in caught)
    finally:
        for lg in targets:
            lg.removeHandler(handler)
