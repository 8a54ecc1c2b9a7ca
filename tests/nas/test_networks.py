"""The digits CNNs built from cell values: shapes, dead-edge pruning, operations, protocol."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metatune.nas import Cell
from metatune.nas.networks import (
    AvgPool3x3,
    Network,
    SuperNet,
    TrainingProtocol,
    digits_splits,
    live_edges,
    train_and_score,
)

CELL = Cell(nodes=4, ops=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))


def test_every_operation_builds_and_keeps_the_shape():
    x = torch.randn(3, 1, 8, 8)
    for op in CELL.ops:
        net = Network(CELL, [op] * 6)
        assert net(x).shape == (3, 10)


def test_dead_edges_are_pruned_and_do_not_change_the_function():
    # edge (1, 2) and (2, 3) hang off node 1/2, which never receive the input
    cut = ["none", "none", "nor_conv_3x3", "nor_conv_3x3", "none", "nor_conv_3x3"]
    assert live_edges(CELL, cut) == [False, False, False, True, False, False]
    plain = ["none", "none", "none", "nor_conv_3x3", "none", "none"]
    assert CELL.canonical(cut) == CELL.canonical(plain)
    a, b = Network(CELL, cut), Network(CELL, plain)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_a_cell_with_no_live_path_outputs_a_constant():
    net = Network(CELL, ["none"] * 6).eval()
    out = net(torch.randn(5, 1, 8, 8))
    torch.testing.assert_close(out, out[:1].expand_as(out))


def test_avg_pool_matches_torch_without_padding_counted():
    x = torch.randn(2, 4, 8, 8)
    ref = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x)
    torch.testing.assert_close(AvgPool3x3(4)(x), ref)


def test_bad_values_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="unknown operation 'conv_7x7'"):
        Network(CELL, ["conv_7x7"] * 6)
    with pytest.raises(ValueError, match="has 2 operations; the cell has 6 edges"):
        Network(CELL, ["none", "none"])
    with pytest.raises(ValueError, match=r"weights must have shape \(6, 5\)"):
        SuperNet(CELL)(torch.randn(1, 1, 8, 8), torch.ones(5, 5))


def test_digits_splits_are_disjoint_and_stratified():
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = digits_splits(0)
    assert X_tr.shape[1:] == (1, 8, 8)
    assert len(y_tr) + len(y_va) + len(y_te) == 1797
    assert len(y_va) == len(y_te) == 360
    assert set(y_va.tolist()) == set(range(10))
    assert float(X_tr.max()) <= 1.0


def test_train_and_score_records_every_epoch_and_is_seeded():
    tr, va, te = digits_splits(0)
    small = ((tr[0][:128], tr[1][:128]), va, te)
    protocol = TrainingProtocol(epochs=2, batch_size=32)
    value = ["nor_conv_3x3", "none", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3"]
    a = train_and_score(CELL, value, protocol, small)
    b = train_and_score(CELL, value, protocol, small)
    assert len(a["valid_accuracy"]) == len(a["test_accuracy"]) == len(a["train_seconds"]) == 2
    assert a["valid_accuracy"] == b["valid_accuracy"] and a["test_accuracy"] == b["test_accuracy"]
    assert a["train_seconds"][0] <= a["train_seconds"][1]
    net = Network(CELL, value, channels=protocol.channels, cells=protocol.cells)
    assert a["params"] == sum(p.numel() for p in net.parameters())
