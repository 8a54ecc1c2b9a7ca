"""Cell spaces: encodings, canonical forms, moves, and the errors of a bad specification."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metatune import Float, Space
from metatune.nas import OPERATIONS, Cell, Chain, ChoiceCell, Operation

CELLS = [
    Cell(),
    Cell(nodes=3, ops=["none", "skip_connect", "nor_conv_3x3"]),
    ChoiceCell(),
    ChoiceCell(nodes=3, ops=["skip_connect", "sep_conv_3x3", "max_pool_3x3"], inputs=1),
    Chain(max_layers=3, choices={"width": [16, 32, 64], "kernel": [3, 5]}),
]


@pytest.mark.parametrize("cell", CELLS, ids=repr)
@settings(max_examples=40, deadline=None)
@given(u=st.floats(0.0, 1.0, exclude_max=True))
def test_values_round_trip_through_json_and_both_encodings(cell, u):
    value = cell.from_uniform(u)
    assert cell.contains(value)
    stored = json.loads(json.dumps(value))
    assert stored == value and cell.contains(stored)
    assert cell.decode(cell.encode(stored)) == value
    x = np.asarray(cell.encode(value))
    assert cell.round_model(x[None, :])[0].tolist() == x.tolist()
    assert len(x) == cell.model_dims
    assert cell.uniform_to_model(np.array([u]))[0].tolist() == x.tolist()


@pytest.mark.parametrize("cell", CELLS, ids=repr)
def test_mutation_and_neighbours_stay_in_the_space_and_move(cell):
    rng = np.random.default_rng(0)
    for _ in range(50):
        value = cell.sample(rng)
        child = cell.mutate(value, rng)
        assert cell.contains(child) and child != value
        nbs = cell.neighbours(value)
        assert child in nbs
        assert all(cell.contains(n) and n != value for n in nbs)
        model_nbs = cell.model_neighbours(np.asarray(cell.encode(value))[None, :])
        assert sorted(map(json.dumps, (cell.decode(x) for x in model_nbs))) == sorted(
            map(json.dumps, nbs)
        )


def test_isomorphic_nb201_cells_share_one_canonical_form_and_path_encoding():
    cell = Cell()  # edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3)
    a = ["nor_conv_3x3", "avg_pool_3x3", "none", "none", "nor_conv_1x1", "skip_connect"]
    b = ["avg_pool_3x3", "nor_conv_3x3", "none", "none", "skip_connect", "nor_conv_1x1"]
    assert cell.canonical(a) == cell.canonical(b)  # nodes 1 and 2 swapped
    assert cell.path_encoding(a).tolist() == cell.path_encoding(b).tolist()
    # An edge out of a node that computes zero is dead: its operation does not matter.
    c = ["none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "none"]
    d = ["none", "nor_conv_3x3", "avg_pool_3x3", "avg_pool_3x3", "skip_connect", "none"]
    assert cell.canonical(c) == cell.canonical(d)
    # Identity passes terms through: skip then conv is conv of the input.
    e = ["skip_connect", "none", "none", "none", "nor_conv_3x3", "none"]
    f = ["none", "none", "none", "nor_conv_3x3", "none", "none"]
    assert cell.canonical(e) == cell.canonical(f)
    # Parallel convolutions have their own weights: two are not one.
    g = ["nor_conv_3x3", "none", "none", "nor_conv_3x3", "skip_connect", "none"]
    assert cell.canonical(g) != cell.canonical(f)
    # A cell with no live path computes zero, whatever its dead edges hold.
    assert cell.canonical(["nor_conv_3x3"] + ["none"] * 5) == "0"


def test_choice_cell_canonical_form_ignores_the_order_of_a_nodes_inputs():
    cell = ChoiceCell(nodes=2)
    a = [["sep_conv_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["dil_conv_3x3", 0]]
    b = [["max_pool_3x3", 1], ["sep_conv_3x3", 0], ["dil_conv_3x3", 0], ["skip_connect", 2]]
    assert a != b and cell.canonical(a) == cell.canonical(b)
    assert cell.canonical(a) != cell.canonical([["sep_conv_3x3", 1], *a[1:]])


def test_distinct_architectures_of_the_nb201_space():
    cell = Cell()
    assert cell.size == 5**6
    distinct = {cell.canonical(v) for v in cell.enumerate()}
    assert 4000 < len(distinct) < 15625  # many of the raw cells compute the same function


def test_cells_live_in_an_ordinary_space_and_survive_its_serialization():
    space = Space({"cell": Cell(), "lr": Float(1e-4, 1.0, log=True)})
    again = Space.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space
    params = space.sample(0)
    space.validate(json.loads(json.dumps(params)))
    assert space.decode(space.encode(params))["cell"] == params["cell"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Cell(ops=[]), "at least one operation"),
        (lambda: Cell(ops=["nor_conv_3x3", "conv_7x7"]), "unknown operation 'conv_7x7'"),
        (lambda: Cell(nodes=1), "nodes >= 2"),
        (lambda: Cell(nodes=2.5), "nodes must be an integer"),
        (lambda: Cell(ops=["none"]), "only the zero operation"),
        (lambda: Cell(ops=["skip_connect", "skip_connect"]), "duplicated: skip_connect"),
        (lambda: ChoiceCell(ops="skip_connect"), "list of operation names"),
        (lambda: ChoiceCell(inputs=0), "inputs >= 1"),
        (lambda: ChoiceCell(output="sum"), "'concat' or 'leaves'"),
    ],
)
def test_a_bad_cell_specification_is_refused_naming_what_is_wrong(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_values_outside_the_cell_are_not_contained():
    cell = Cell()
    assert not cell.contains(["none"] * 5)
    assert not cell.contains(["conv_7x7"] * 6)
    assert not cell.contains("none")
    choice = ChoiceCell(nodes=2)
    assert not choice.contains([["skip_connect", 3]] * 4)  # node 0 cannot read node 3
    assert not choice.contains([["skip_connect", True]] * 4)


def test_user_operations_are_registered_by_name():
    OPERATIONS.register("test_op_for_cells", Operation("op"), overwrite=True)
    try:
        cell = Cell(nodes=3, ops=["none", "test_op_for_cells"])
        assert "test_op_for_cells" in cell.canonical(["test_op_for_cells"] * 3)
    finally:
        OPERATIONS.unregister("test_op_for_cells")
    with pytest.raises(ValueError, match="role"):
        Operation("identity-ish")  # type: ignore[arg-type]


def test_a_chain_encodes_absent_layers_as_zeros_and_round_trips():
    chain = Chain(max_layers=3, choices={"width": [16, 32], "act": ["relu", "tanh"]})
    rng = np.random.default_rng(0)
    depths = set()
    for _ in range(60):
        value = chain.sample(rng)
        depths.add(len(value))
        assert chain.contains(json.loads(json.dumps(value)))
        x = np.asarray(chain.encode(value))
        assert chain.decode(x) == value
        absent = x[3 + 4 * len(value) :]
        assert not absent.any()  # the layers that are not there have no values
        child = chain.mutate(value, rng)
        assert chain.contains(child) and child != value
    assert depths == {1, 2, 3}  # depth is drawn uniformly, not by the count of stacks
    assert Space.from_dict(Space({"net": chain}).to_dict())["net"] == chain
    with pytest.raises(ValueError, match="min_layers <= max_layers"):
        Chain(max_layers=2, min_layers=3)
    with pytest.raises(ValueError, match="'width' needs a non-empty list"):
        Chain(choices={"width": []})
