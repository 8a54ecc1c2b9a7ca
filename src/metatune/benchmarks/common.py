"""Shared helpers of the benchmark scripts: thread pinning, machine info, command line, progress,
number formatting and notes files.

The scripts under benchmarks/ import this module before torch: `single_thread_env` must run
before torch is first imported; `single_thread_torch` then pins the process that runs the work
(numpy's BLAS pool, loaded by importing metatune, included).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "command_line",
    "fmt_num",
    "format_machine",
    "machine_info",
    "make_progress",
    "now_utc",
    "read_notes",
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


def command_line() -> str:
    """The command that started this process, as one shell-quoted line."""
    argv = [sys.argv[0], *sys.argv[1:]]
    return "python " + " ".join(shlex.quote(a) for a in argv)


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
