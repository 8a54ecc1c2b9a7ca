"""The Bayesmark-style problems (valid spaces, a finite loss, bad names refused) and the scores."""

import numpy as np
import pytest

from metatune.benchmarks.bayesmark_score import (
    best_so_far,
    clipped_gap,
    leaderboard_score,
    normalized_score,
    problem_optimum,
)
from metatune.benchmarks.bayesmark_tasks import (
    DEFAULT_PROBLEMS,
    OTHER_PROBLEMS,
    BayesmarkProblem,
    make_problem,
    problem_names,
)
from metatune.space import Space


@pytest.mark.parametrize("name", sorted(set(DEFAULT_PROBLEMS) | set(OTHER_PROBLEMS)))
def test_problem_space_and_one_evaluation(name: str) -> None:
    problem = make_problem(name, cv=2, max_samples=80)
    assert isinstance(problem.space, Space)
    params = problem.space.sample(np.random.default_rng(0))
    problem.space.validate(params)
    loss = problem(params)
    assert np.isfinite(loss) and loss >= 0
    assert loss == problem(params)  # fixed folds: a deterministic function


def test_default_problems_are_registered() -> None:
    assert set(DEFAULT_PROBLEMS) <= set(problem_names())


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (("XGB", "iris", "nll"), "model"),
        (("DT", "boston", "nll"), "dataset"),
        (("DT", "iris", "r2"), "metric"),
        (("DT", "diabetes", "nll"), "regression"),
        (("lasso", "iris", "acc"), "classification"),
        (("SVM", "iris", "nll"), "probabilities"),
    ],
)
def test_bad_problems_are_refused(args: tuple, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        BayesmarkProblem(*args)


def test_unknown_problem_name_lists_the_registered() -> None:
    with pytest.raises(ValueError, match="DT-digits-nll"):
        make_problem("DT-nowhere-nll")


def test_normalized_score_by_hand() -> None:
    # opt = 1.0 (smac's run); random's median best after each evaluation: 4, 3
    curves = {
        "random": [[5.0, 3.0], [4.0, 4.0], [3.0, 2.0]],
        "ours": [[2.0, 1.5]],
        "smac": [[1.0, 1.0]],
    }
    assert problem_optimum(curves) == 1.0
    scores = normalized_score(curves)
    np.testing.assert_allclose(scores["ours"], [[100 * (1 - 1 / 3), 100 * (1 - 0.5 / 2)]])
    np.testing.assert_allclose(scores["smac"], [[100.0, 100.0]])
    np.testing.assert_allclose(np.median(scores["random"], axis=0), [0.0, 0.0])


def test_normalized_score_when_random_median_is_optimal() -> None:
    scores = normalized_score({"random": [[1.0], [1.0], [2.0]], "other": [[3.0]]})
    np.testing.assert_allclose(scores["random"][:, 0], [100.0, 100.0, 0.0])
    np.testing.assert_allclose(scores["other"], [[0.0]])


def test_clipped_gap_and_leaderboard() -> None:
    # clip = random's median first loss = 4; opt = 0
    curves = {"random": [[4.0, 2.0], [6.0, 1.0], [3.0, 3.0]], "ours": [[8.0, 0.0]]}
    gaps = clipped_gap(curves)
    np.testing.assert_allclose(gaps["ours"], [[1.0, 0.0]])  # clipped at 1, then at opt
    np.testing.assert_allclose(gaps["random"][:, -1], [0.5, 0.25, 0.75])
    assert leaderboard_score([gaps], "ours") == pytest.approx(100.0)
    assert leaderboard_score([gaps], "random") == pytest.approx(0.0)


def test_score_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="reference"):
        normalized_score({"ours": [[1.0]]})
    with pytest.raises(ValueError, match="one length"):
        normalized_score({"random": [[1.0, 2.0]], "ours": [[1.0]]})
    with pytest.raises(ValueError, match="non-empty"):
        best_so_far([])
    np.testing.assert_array_equal(best_so_far([3.0, 1.0, 2.0]), [3.0, 1.0, 1.0])
