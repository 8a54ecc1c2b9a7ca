"""benchmarks/pipelines_hedge.py --from: a re-render lists its command once, however often it
runs, and keeps the commands that produced the runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "benchmarks" / "pipelines-hedge"


def test_rendering_twice_lists_the_render_once(load_benchmark, tmp_path):
    bench = load_benchmark("pipelines_hedge")
    out = tmp_path / "page"
    out.mkdir()
    shutil.copy(PAGE / "commands.json", out / "commands.json")
    before = json.loads((out / "commands.json").read_text())
    runs = str(PAGE / "runs.jsonl")
    for _ in range(2):
        bench.main(["--from", runs, "--out", str(out), "--seeds", "0-9"])
    after = json.loads((out / "commands.json").read_text())
    renders = [c for c in after if c["about"] == "rendered this page from the runs"]
    assert len(renders) == 1
    produced = [c for c in before if c["about"] != "rendered this page from the runs"]
    assert after[: len(produced)] == produced
    assert (out / "hedge.md").read_text().count(renders[0]["command"]) == 1
