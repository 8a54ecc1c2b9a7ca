"""The guide's example (docs/guide/pruning.md) runs as written and prunes."""

import contextlib
import io
import re
import runpy
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "pruning.md"


@pytest.mark.slow  # twenty trials with the multi-fidelity GP: about ten CPU seconds
def test_the_guide_example_runs_and_prunes(tmp_path, monkeypatch):
    text = GUIDE.read_text(encoding="utf-8")
    block = re.search(r"^```python\n(.*?)^```", text, re.M | re.S).group(1)
    script = tmp_path / "pruning_example.py"
    script.write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(str(script), run_name="__main__")
    study = ns["study"]
    states = [t.state.value for t in study.trials]
    assert states.count("pruned") >= 5 and "complete" in states
    assert study.best_trial.state.value == "complete"
    assert "trials pruned" in out.getvalue()
