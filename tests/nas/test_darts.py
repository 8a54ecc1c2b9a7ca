"""DARTS on a cell space through metatune.mlo: supernet, search, derivation."""

from __future__ import annotations

import pytest
import torch

from metatune.nas import Cell
from metatune.nas.darts import darts_search, derive
from metatune.nas.networks import Network, SuperNet, digits_splits

CELL = Cell(nodes=4, ops=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))


@pytest.fixture(scope="module")
def data():
    tr, va, _ = digits_splits(0)
    return (tr[0][:96], tr[1][:96]), (va[0][:64], va[1][:64])


@pytest.mark.parametrize(
    "value",
    [
        ["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none", "nor_conv_3x3"],
        ["none", "nor_conv_1x1", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none"],
    ],
)
def test_supernet_with_one_hot_weights_is_the_discrete_network(value):
    torch.manual_seed(0)
    sup = SuperNet(CELL)
    x = torch.randn(16, 1, 8, 8)
    sup.train()(x, torch.softmax(torch.randn(6, 5), -1))  # move BatchNorm statistics off init
    net = Network(CELL, value)
    net.load_state_dict(sup.discrete_state(value, net))
    one_hot = torch.zeros(6, 5)
    for e, op in enumerate(value):
        one_hot[e, CELL.ops.index(op)] = 1.0
    torch.testing.assert_close(sup.eval()(x, one_hot), net.eval()(x))
    torch.testing.assert_close(sup.train()(x, one_hot), net.train()(x))


def test_derive_takes_the_strongest_operation_other_than_none():
    alpha = torch.zeros(6, 5)
    alpha[:, 0] = 5.0  # "none" strongest everywhere: never chosen
    alpha[:, 3] = 1.0
    alpha[2, 1] = 2.0
    value = derive(CELL, alpha)
    assert value == ("nor_conv_3x3",) * 2 + ("skip_connect",) + ("nor_conv_3x3",) * 3
    assert CELL.contains(list(value))


@pytest.mark.parametrize("order", [1, 2])
def test_search_returns_a_value_of_the_cell_and_is_reproducible(data, order):
    train, valid = data
    a = darts_search(CELL, train, valid, order=order, steps=6, seed=3, batch_size=32, check_every=3)
    b = darts_search(CELL, train, valid, order=order, steps=6, seed=3, batch_size=32, check_every=3)
    assert CELL.contains(list(a.value)) and "none" not in a.value
    assert a.value == derive(CELL, a.alpha)
    assert a.alpha.shape == (6, 5) and a.steps == 6 and not a.stopped_early
    assert [h["step"] for h in a.history] == [3, 6]
    assert all(h["valid_loss"] is not None for h in a.history)
    torch.testing.assert_close(a.alpha, b.alpha)


def test_second_order_changes_the_architecture_gradient(data):
    train, valid = data
    first = darts_search(CELL, train, valid, order=1, steps=4, seed=0, batch_size=32)
    second = darts_search(CELL, train, valid, order=2, steps=4, seed=0, batch_size=32)
    assert not torch.allclose(first.alpha, second.alpha)


def test_warmup_steps_train_the_weights_only(data):
    train, valid = data
    r = darts_search(CELL, train, valid, steps=4, warmup_steps=10, seed=0, batch_size=32)
    assert all(h["valid_loss"] is None for h in r.history)
    assert r.history[-1]["train_loss"] is not None


def test_max_skips_stops_the_search_early(data):
    train, valid = data
    skips_only = Cell(nodes=3, ops=("none", "skip_connect"))
    r = darts_search(
        skips_only, train, valid, steps=20, max_skips=1, check_every=2, seed=0, batch_size=32
    )
    assert r.stopped_early and r.steps == 2


def test_bad_arguments_are_refused_before_any_work(data):
    train, valid = data
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        darts_search(CELL, train, valid, order=3)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        darts_search(CELL, train, valid, steps=0)
    with pytest.raises(ValueError, match="alpha_lr must be a positive number"):
        darts_search(CELL, train, valid, alpha_lr=0.0)
    with pytest.raises(TypeError, match="train must be a non-empty pair"):
        darts_search(CELL, (train[0],), valid)
