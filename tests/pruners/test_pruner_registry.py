"""The pruner registry: built-ins by name, unknown names and options refused up front."""

import pytest

from metatune.pruners import DEFAULT_PRUNER, PRUNERS, NopPruner, Pruner, make_pruner


def test_builtins_are_registered_and_named():
    for name in ("none", "median", "percentile", "successive-halving", "hyperband"):
        assert make_pruner(name).name == name
    assert DEFAULT_PRUNER in PRUNERS
    assert make_pruner(None).name == DEFAULT_PRUNER
    assert isinstance(make_pruner("none"), NopPruner)


def test_unknown_pruner_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown pruner 'asha'; available: hyperband, median"):
        make_pruner("asha")


def test_unknown_option_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['eta'\] for pruner"):
        make_pruner("successive-halving", {"eta": 3})
    with pytest.raises(ValueError, match="it takes no options"):
        make_pruner("none", {"x": 1})
    with pytest.raises(TypeError, match="pruner_options must be a dict"):
        make_pruner("median", [("n_startup_trials", 1)])  # type: ignore[arg-type]


def test_an_instance_passes_through_but_not_with_options():
    p = make_pruner("median")
    assert make_pruner(p) is p
    with pytest.raises(ValueError, match="pruner_options only apply"):
        make_pruner(p, {"n_startup_trials": 1})
    assert isinstance(p, Pruner)
