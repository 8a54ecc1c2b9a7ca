"""mo-gp's acquisition option: qLogEHVI (default) or qLogNEHVI, both giving valid points."""

import pytest

from metatune import Float, Study


@pytest.mark.parametrize("acquisition", ["ehvi", "nehvi"])
def test_each_acquisition_suggests_points_in_the_space(acquisition, caplog, small_mo_study):
    study = small_mo_study(acquisition=acquisition)
    for _ in range(7):
        t = study.ask()
        x, y = t.params["x"], t.params["y"]
        study.tell(t, [x, 1 - x + y])
    assert len(study.trials) == 7
    assert "multi-objective GP failed" not in caplog.text  # no fallback to Sobol points
    assert all(0 <= t.params["x"] <= 1 and 0 <= t.params["y"] <= 1 for t in study.trials)


def test_an_unknown_acquisition_is_refused():
    with pytest.raises(ValueError, match="acquisition must be one of"):
        Study(
            {"x": Float(0, 1)},
            directions=["minimize", "minimize"],
            optimizer="mo-gp",
            optimizer_options={"acquisition": "ucb"},
        )
