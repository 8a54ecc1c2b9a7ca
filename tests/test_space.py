import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metatune import Categorical, Float, Int, Space


# --- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Float(1.0, 1.0), "low < high"),
        (lambda: Float(2.0, 1.0), "low < high"),
        (lambda: Float(0.0, 1.0, log=True), "log=True needs low > 0"),
        (lambda: Float(float("nan"), 1.0), "finite"),
        (lambda: Int(3, 3), "low < high"),
        (lambda: Int(0, 10, log=True), "low >= 1"),
        (lambda: Categorical([]), "at least one choice"),
        (lambda: Categorical(["a", "b", "a"]), "distinct.*'a'"),
    ],
)
def test_bad_parameters_fail_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Float("0", 1),
        lambda: Int(0.5, 3),
        lambda: Int(True, 3),
        lambda: Categorical("abc"),
        lambda: Categorical([object()]),
    ],
)
def test_bad_parameter_types(make):
    with pytest.raises(TypeError):
        make()


def test_bool_and_int_choices_are_distinct():
    c = Categorical([True, 1, "1"])
    assert c.index(True) == 0 and c.index(1) == 1 and c.index("1") == 2


@pytest.mark.parametrize("name", ["", "1x", "a b", "x/y", 3])
def test_bad_names(name):
    with pytest.raises(ValueError, match="bad parameter name"):
        Space({name: Float(0, 1)})


def test_space_needs_parameters_of_known_types():
    with pytest.raises(ValueError, match="at least one"):
        Space({})
    with pytest.raises(TypeError, match="must be Float, Int, Categorical or a"):
        Space({"x": (0, 1)})


def test_validate_names_missing_unknown_and_out_of_range():
    s = Space({"x": Float(0, 1), "n": Int(1, 5)})
    with pytest.raises(ValueError, match=r"missing \['n'\]"):
        s.validate({"x": 0.5})
    with pytest.raises(ValueError, match=r"unknown \['z'\]"):
        s.validate({"x": 0.5, "n": 2, "z": 1})
    with pytest.raises(ValueError, match="'n'=9 is outside"):
        s.validate({"x": 0.5, "n": 9})
    with pytest.raises(ValueError, match="'n'=2.5"):
        s.validate({"x": 0.5, "n": 2.5})


# --- round trips ----------------------------------------------------------------------------------
@st.composite
def spaces(draw):
    params = {}
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["float", "logfloat", "int", "logint", "cat"]))
        if kind in ("float", "logfloat"):
            lo = draw(st.floats(1e-3 if kind == "logfloat" else -1e3, 1e3))
            width = draw(st.floats(1e-3, 1e3))
            params[f"p{i}"] = Float(lo, lo + width, log=kind == "logfloat")
        elif kind in ("int", "logint"):
            lo = draw(st.integers(1 if kind == "logint" else -1000, 1000))
            params[f"p{i}"] = Int(lo, lo + draw(st.integers(1, 2000)), log=kind == "logint")
        else:
            n = draw(st.integers(1, 6))
            params[f"p{i}"] = Categorical([f"c{j}" for j in range(n - 1)] + [None])
    return Space(params)


@settings(max_examples=200, deadline=None)
@given(spaces(), st.data())
def test_encode_decode_round_trip(space, data):
    u = data.draw(
        st.lists(st.floats(0, 1, exclude_max=True), min_size=len(space), max_size=len(space))
    )
    params = space.from_uniform(u)
    space.validate(params)
    x = space.encode(params)
    assert x.shape == (space.dim,)
    assert np.all((x >= 0) & (x <= 1))
    back = space.decode(x)
    for name, p in space.items():
        if isinstance(p, Float):
            assert math.isclose(back[name], params[name], rel_tol=1e-9, abs_tol=1e-9)
        else:
            assert back[name] == params[name] and type(back[name]) is type(params[name])
    # encoding is idempotent under the model-space rounding used by the optimizers
    np.testing.assert_allclose(space.round(x[None])[0], x, atol=1e-12)
    np.testing.assert_allclose(space.uniform_to_model(np.array([u]))[0], x, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(spaces(), st.data())
def test_decode_of_any_point_is_valid(space, data):
    x = np.array(data.draw(st.lists(st.floats(-2, 3), min_size=space.dim, max_size=space.dim)))
    space.validate(space.decode(x))
    rounded = space.round(x[None])[0]
    assert space.decode(rounded) == space.decode(x)


def test_categorical_is_one_hot_and_unordered():
    s = Space({"c": Categorical(["a", "b", "c"])})
    assert s.dim == 3
    np.testing.assert_array_equal(s.encode({"c": "b"}), [0, 1, 0])
    # every pair of distinct choices is the same distance apart: no order is implied
    d = {
        (a, b): np.linalg.norm(s.encode({"c": a}) - s.encode({"c": b}))
        for a in "abc"
        for b in "abc"
        if a < b
    }
    assert len(set(np.round(list(d.values()), 12))) == 1


def test_sampling_is_uniform_in_the_parameters_scale():
    s = Space({"lr": Float(1e-4, 1.0, log=True), "n": Int(1, 4), "c": Categorical(["x", "y"])})
    rng = np.random.default_rng(0)
    draws = [s.sample(rng) for _ in range(4000)]
    logs = np.log10([d["lr"] for d in draws])
    assert abs(np.mean(logs < -2) - 0.5) < 0.05  # log-uniform: half the mass below 1e-2
    counts = np.bincount([d["n"] for d in draws], minlength=5)[1:]
    assert counts.min() > 850
    assert abs(np.mean([d["c"] == "x" for d in draws]) - 0.5) < 0.05


def test_serialization_round_trip():
    s = Space(
        {"a": Float(0.1, 2, log=True), "b": Int(-3, 7), "c": Categorical([1, "x", None, 2.5])}
    )
    assert Space.from_dict(s.to_dict()) == s
    assert Space.from_dict(s.to_dict()).to_dict() == s.to_dict()
