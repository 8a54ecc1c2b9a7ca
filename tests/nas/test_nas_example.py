"""examples/nas_joint_search.py runs as a user runs it (two trials, its own SQLite file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nas_joint_search.py"


@pytest.mark.slow  # two fresh processes that train CNNs: about a minute on a busy 2-core machine
def test_the_joint_search_example_runs_and_resumes(tmp_path: Path) -> None:
    for _ in range(2):  # the second run resumes the stored study
        out = subprocess.run(
            [sys.executable, str(EXAMPLE), "1"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        assert "best validation accuracy" in out.stdout
    assert (tmp_path / "metatune-runs" / "metatune.db").exists()
