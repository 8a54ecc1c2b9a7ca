"""Build the digits NAS table: every distinct architecture of a small NAS-Bench-201-shaped cell
space, trained on scikit-learn's 8x8 digits by one fixed protocol.

The cell has 4 nodes and the operations none / nor_conv_1x1 / nor_conv_3x3 / avg_pool_3x3 on its
6 edges (4^6 = 4,096 values). Values are grouped by ``cell.canonical`` (dead edges pruned,
isomorphic cells merged) and one representative of each group is trained
(:class:`metatune.nas.networks.TrainingProtocol`, one seed); validation and test accuracy are
recorded after every epoch. Finished records are appended to ``<out>.partial.jsonl`` as they
come, so an interrupted build resumes where it stopped; the table itself is written at the end
(gzip JSON, atomically).

    python benchmarks/build_nas_digits_table.py --workers 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from metatune.benchmarks.common import (
    command_line,
    machine_info,
    make_progress,
    now_utc,
    single_thread_env,
    single_thread_torch,
)

single_thread_env()

NODES = 4
OPS = ("none", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/metatune/nas/tables/digits.json.gz"
FORMAT = "metatune-nas-table/1"


def make_cell():
    from metatune.nas import Cell

    return Cell(nodes=NODES, ops=OPS)


def representatives(cell) -> dict[str, tuple[str, ...]]:
    """canonical form -> the first value of ``cell.enumerate()`` in that class."""
    reps: dict[str, tuple[str, ...]] = {}
    for value in cell.enumerate():
        reps.setdefault(cell.canonical(value), tuple(value))
    return reps


# ---------------------------------------------------------------------------- workers
_STATE: dict[str, Any] = {}


def _init_worker(protocol: dict[str, Any]) -> None:
    single_thread_torch()
    from metatune.nas.networks import TrainingProtocol, digits_splits

    p = TrainingProtocol(**protocol)
    _STATE["protocol"] = p
    _STATE["splits"] = digits_splits(p.split_seed)
    _STATE["cell"] = make_cell()
    # one short throw-away training: the first one pays torch's warm-up, which would otherwise
    # land in the first record's seconds
    from metatune.nas.networks import train_and_score

    warm = TrainingProtocol(**{**protocol, "epochs": 1})
    train_and_score(
        _STATE["cell"], ("nor_conv_3x3",) * len(_STATE["cell"].edges), warm, _STATE["splits"]
    )


def _train(value: tuple[str, ...]) -> dict[str, Any]:
    from metatune.nas.networks import train_and_score

    return train_and_score(_STATE["cell"], value, _STATE["protocol"], _STATE["splits"])


# ---------------------------------------------------------------------------- files
def read_partial(path: Path) -> list[dict[str, Any]]:
    """Records already finished (a torn last line, from a kill mid-write, is dropped)."""
    if not path.exists():
        return []
    out = []
    with path.open() as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def _log_run(path: Path, wall: float, trained: int, workers: int) -> None:
    """Note one run's wall time in the partial file, so a resumed build adds up all its runs."""
    with path.open("a") as fh:
        fh.write(
            json.dumps(
                {
                    "run": {
                        "wall_seconds": round(wall, 1),
                        "trained": trained,
                        "workers": workers,
                        "finished": now_utc(),
                    }
                }
            )
            + "\n"
        )


def write_table(out: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> None:
    tmp = out.with_suffix(out.suffix + ".tmp")
    payload = json.dumps(
        {"format": FORMAT, "meta": meta, "records": records}, separators=(",", ":")
    )
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as fh:
        # mtime=0 would need GzipFile; the content is what matters for reproducibility
        fh.write(payload)
    os.replace(tmp, out)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from metatune.nas.networks import TrainingProtocol

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="training processes (default 1)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the table file to write")
    ap.add_argument(
        "--partial",
        type=Path,
        default=None,
        help="where finished records are appended (default: <out>.partial.jsonl)",
    )
    ap.add_argument("--epochs", type=int, default=TrainingProtocol.epochs)
    ap.add_argument("--limit", type=int, default=None, help="train at most this many (a trial run)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be >= 1, got {args.workers}")
    if args.epochs < 1:
        ap.error(f"--epochs must be >= 1, got {args.epochs}")

    protocol = TrainingProtocol(epochs=args.epochs)
    cell = make_cell()
    reps = representatives(cell)
    partial_path = args.partial or args.out.with_name(args.out.name + ".partial.jsonl")
    partial_path.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    runs = []
    for rec in read_partial(partial_path):
        if "run" in rec:
            runs.append(rec["run"])
            continue
        if rec.get("protocol") != protocol.as_dict():
            sys.exit(
                f"{partial_path} was made with another protocol ({rec.get('protocol')}); "
                "remove it or rerun with the same options"
            )
        done[cell.canonical(rec["value"])] = rec
    todo = [v for key, v in reps.items() if key not in done]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(
        f"{len(reps)} distinct architectures of {len(list(cell.enumerate()))} values; "
        f"{len(done)} already done, {len(todo)} to train with {args.workers} worker(s)"
    )
    started = time.time()
    trained = 0
    # a SIGTERM (kill, a job scheduler) ends the run like Ctrl-C: the run's wall time is still
    # logged, so a resumed build's total stays right
    signal.signal(signal.SIGTERM, _terminate)
    progress = make_progress(not args.no_progress)
    pool = ProcessPoolExecutor(
        args.workers, initializer=_init_worker, initargs=(protocol.as_dict(),)
    )
    try:
        with open(partial_path, "a") as sink:
            futures = [pool.submit(_train, v) for v in todo]
            task = None
            if progress is not None:
                progress.start()
                task = progress.add_task("training", total=len(todo), last="")
            for fut in as_completed(futures):
                rec = fut.result()
                rec["protocol"] = protocol.as_dict()
                sink.write(json.dumps(rec, separators=(",", ":")) + "\n")
                sink.flush()
                trained += 1
                done[cell.canonical(rec["value"])] = rec
                if progress is not None:
                    progress.update(
                        task,
                        advance=1,
                        last=f"valid {rec['valid_accuracy'][-1]:.3f} in {rec['train_seconds'][-1]:.2f}s",
                    )
    finally:
        if progress is not None:
            progress.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        wall = time.time() - started
        _log_run(partial_path, wall, trained, args.workers)
        runs.append({"wall_seconds": round(wall, 1), "trained": trained, "workers": args.workers})
    missing = [k for k in reps if k not in done]
    if missing:
        print(f"{len(missing)} architectures still to train; rerun to continue")
        return 0
    train_total = sum(r["train_seconds"][-1] for r in done.values())
    meta = {
        "name": "digits",
        "cell": {"nodes": NODES, "ops": list(OPS)},
        "protocol": protocol.as_dict(),
        "data": "scikit-learn load_digits, 8x8, stratified 60/20/20 train/validation/test "
        f"(split seed {protocol.split_seed}); accuracy on 360 validation and 360 test images",
        "values": len(list(cell.enumerate())),
        "architectures": len(reps),
        "epochs_recorded": list(range(1, protocol.epochs + 1)),
        "build": {
            "finished": now_utc(),
            "command": command_line(),
            # the training processes of each run that trained something
            "workers": sorted({r["workers"] for r in runs if r["trained"]}),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1),
            "runs": runs,
            "train_seconds_total": round(train_total, 1),
            "note": "wall_seconds adds up the runs of the build (a stopped build resumes); "
            "train_seconds_total and each record's train_seconds are single-thread wall-clock "
            "seconds on a machine shared with other jobs, so they vary with its load",
            "machine": machine_info(packages=("torch", "scikit-learn")),
        },
    }
    records = []
    for key, value in reps.items():
        rec = dict(done[key])
        rec.pop("protocol", None)
        rec["value"] = list(value)
        records.append(rec)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(args.out, meta, records)
    print(f"wrote {len(records)} architectures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
