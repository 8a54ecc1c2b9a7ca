"""Names and values holding terminal escapes print as text; CSV cells cannot run as formulas."""

from __future__ import annotations

import csv
import io
import json
import math

from rich.console import Console

from metatune import Float, Study
from metatune.report.export import write_csv, write_json
from metatune.report.tables import studies_table, summarize_study, trial_table, trials_table

CLEAR = "\x1b[2J"


def _render(table) -> str:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    console.print(table)
    return console.file.getvalue()


def _study() -> Study:
    study = Study({"x": Float(0, 1)}, name=f"s{CLEAR}x", optimizer="random", seed=0)
    results = iter(
        [{"objective": 1.0, f"m{CLEAR}": f"v{CLEAR}"}, {"objective": 2.0, "n": math.nan}]
    )
    study.optimize(lambda p: next(results), n_trials=2)
    return study


def test_tables_escape_control_characters() -> None:
    study = _study()
    record = study.storage.get_study(study.name)
    outputs = [
        _render(trials_table(study.trials, "minimize", title=study.name)),
        _render(trial_table(study.trials[0], title=study.name)),
        _render(studies_table([summarize_study(record, study.trials)])),
    ]
    for out in outputs:
        assert CLEAR not in out and "\\x1b[2J" in out


def test_csv_cells_that_look_like_formulas_are_neutralized() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    results = iter([{"objective": -1.5, "cmd": "=HYPERLINK(1)", "a": "+1", "b": "@x", "c": "-2"}])
    study.optimize(lambda p: next(results), n_trials=1)
    buf = io.StringIO()
    write_csv(study.trials, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    row = rows[0]
    assert row["value"] == "-1.5"  # a number stays a number
    assert row["user_attrs.cmd"] == "'=HYPERLINK(1)"
    assert (row["user_attrs.a"], row["user_attrs.b"], row["user_attrs.c"]) == ("'+1", "'@x", "'-2")


def test_json_export_of_a_nan_metric_is_valid_json() -> None:
    study = _study()
    buf = io.StringIO()
    write_json(study.trials, buf)
    data = json.loads(buf.getvalue())  # strict JSON: no NaN token
    assert data[1]["user_attrs.n"] == "nan"
