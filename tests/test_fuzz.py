"""Fuzzing the public API: whatever a user passes, no trial is left RUNNING, a bad input gets one
of the argument errors (never an IndexError, an AttributeError or a database driver's error), and
whatever is stored reads back the same."""

from __future__ import annotations

import math
import tempfile
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metatune import Categorical, Float, Int, Space, Study, TrialState
from metatune.exceptions import MetatuneError

# What a bad argument may raise: our own errors, and the argument errors they are built on. A
# UnicodeError is a ValueError too, but one that escapes unhandled from an encoder: not allowed.
ARGUMENT_ERRORS = (ValueError, TypeError, KeyError, MetatuneError)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

names = st.text(min_size=0, max_size=8)  # empty, control characters, surrogates, dots...
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


@st.composite
def params(draw: Any) -> Any:
    """A parameter: mostly a valid one (so studies run), sometimes any arguments at all."""
    kind = draw(st.sampled_from(["float", "int", "cat"]))
    valid = draw(st.integers(0, 3)) > 0
    if kind == "cat":
        choices = (
            draw(
                st.lists(
                    st.one_of(st.integers(-5, 5), st.text(max_size=3)),
                    unique=True,
                    min_size=1,
                    max_size=4,
                )
            )
            if valid
            else draw(
                st.lists(st.one_of(names, st.integers(-5, 5), st.floats(), st.none()), max_size=4)
            )
        )
        return Categorical, (choices,), {}
    cls = Float if kind == "float" else Int
    if valid:
        low = draw(st.integers(1, 3)) if draw(st.booleans()) else draw(st.integers(-3, 3))
        return cls, (low, low + draw(st.integers(1, 5))), {"log": low > 0 and draw(st.booleans())}
    return cls, (draw(numbers), draw(numbers)), {"log": draw(st.booleans())}


metric_values = st.one_of(
    numbers,
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.sampled_from(
        [np.float32(0.5), np.int64(3), np.array([1.0, 2.0]), {1, 2}, object(), b"x", math.inf]
    ),
    st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=2),
)
results = st.one_of(
    numbers,
    st.floats(-5, 5),
    st.sampled_from(["1.5", True, np.bool_(False), "1"]),
    st.dictionaries(st.sampled_from(["objective", "m", "\x1b[2J", "\ud800"]), metric_values),
    st.sampled_from(["raise", "nan-array"]),
)


def _build_space(specs: list[Any], labels: list[str]) -> Space | None:
    try:
        return Space(
            {label: cls(*args, **kw) for label, (cls, args, kw) in zip(labels, specs, strict=False)}
        )
    except ARGUMENT_ERRORS as exc:
        assert not isinstance(exc, UnicodeError), exc
        assert str(exc), "an argument error needs a message"
        return None


def _objective(outcomes: list[Any]):
    it = iter(outcomes)

    def objective(p: dict) -> Any:
        out = next(it, 1.0)
        if out == "raise":
            raise RuntimeError("objective failed")
        if out == "nan-array":
            return np.array([math.nan])
        return out

    return objective


def _comparable(trial: Any) -> tuple:
    return (trial.number, trial.state, trial.params, trial.value, trial.user_attrs)


@SETTINGS
@given(
    specs=st.lists(params(), min_size=1, max_size=3),
    labels=st.lists(st.one_of(st.sampled_from(["a", "b", "c"]), names), min_size=3, max_size=3),
    outcomes=st.lists(results, min_size=1, max_size=4),
    seed=st.one_of(st.none(), st.integers(-(2**70), 2**70), st.booleans(), st.floats()),
    study_name=names,
    direction=st.sampled_from(["minimize", "maximize", "min", "", None]),
    n_trials=st.one_of(st.integers(-2, 4), st.floats(), st.none()),
)
def test_random_studies_finish_every_trial_and_read_back(
    specs, labels, outcomes, seed, study_name, direction, n_trials
) -> None:
    space = _build_space(specs, labels)
    if space is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'fuzz.db'}"
        try:
            study = Study(
                space,
                storage=url,
                name=study_name or None,
                seed=seed,
                direction=direction,
                optimizer="random",
            )
        except ARGUMENT_ERRORS as exc:
            assert not isinstance(exc, UnicodeError), exc
            return
        try:
            study.optimize(_objective(outcomes), n_trials=n_trials or len(outcomes))
        except ARGUMENT_ERRORS as exc:
            assert not isinstance(exc, UnicodeError), exc
            assert not study.trials, f"{exc!r} was raised after work had started"
        trials = study.trials
        assert all(t.state is not TrialState.RUNNING for t in trials)
        for t in trials:  # only a real number completes a trial
            out = outcomes[t.number] if t.number < len(outcomes) else 1.0
            value = out.get("objective") if isinstance(out, dict) else out
            real = isinstance(value, Real) and not isinstance(value, (bool, np.bool_))
            assert t.state is TrialState.FAILED or (real and math.isfinite(value)), (out, t)
        reread = Study(name=study.name, storage=url).trials
        assert [_comparable(t) for t in reread] == [_comparable(t) for t in trials]


@SETTINGS
@given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "studies",
                    "trials",
                    "best",
                    "export",
                    "demo",
                    "demo-svm",
                    "lhopt",
                    "train",
                    "--study",
                    "--storage",
                    "--json",
                    "--format",
                    "csv",
                    "json",
                    "--output",
                    "--budget",
                    "--help",
                    "-1",
                    "nan",
                    "sqlite:///",
                    "postgresql://",
                    "\x1b[2J",
                    "\ud800",
                ]
            ),
            st.text(max_size=6),
        ),
        max_size=5,
    )
)
def test_random_command_lines_never_raise(argv: list[str], capsys: Any) -> None:
    from metatune.cli import main

    if {"demo", "demo-svm", "train"} & set(argv) and "--help" not in argv:  # no long jobs
        argv = [a for a in argv if a not in ("demo", "demo-svm", "train")] or ["--help"]
    with tempfile.TemporaryDirectory() as tmp:
        import os

        cwd = os.getcwd()
        os.chdir(tmp)  # a default ./metatune-runs goes here
        try:
            code = main(argv)
        finally:
            os.chdir(cwd)
    assert isinstance(code, int)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, out + err)
