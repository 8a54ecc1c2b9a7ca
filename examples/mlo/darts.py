"""DARTS architecture search on digits with metatune.nas.darts (built on metatune.mlo).

The cell space is the digits NAS table's: a NAS-Bench-201-shaped cell (4 nodes, an operation
on each of its 6 edges). ``darts_search`` trains the supernet's weights on the training split
and the architecture parameters on the validation split (second order: DARTS's
finite-difference hypergradient), then derives the discrete cell, a value of the same ``Cell``.
That cell is retrained from scratch by the table's protocol and scored on the test split, and
looked up in the table to see where it stands among all the space's architectures.

Run: python examples/mlo/darts.py
"""

from __future__ import annotations

import math

import torch

from metatune.nas import Cell
from metatune.nas.darts import darts_search
from metatune.nas.networks import Network, TrainingProtocol, digits_splits, evaluate, train_network

CELL = Cell(nodes=4, ops=("none", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
OPS = CELL.ops
EDGES = len(CELL.edges)
PROTOCOL = TrainingProtocol()  # the digits table's


def main(
    seed: int = 0, search_iters: int = 800, retrain_iters: int | None = None, verbose: bool = True
):
    train, valid, test = digits_splits(PROTOCOL.split_seed)
    result = darts_search(CELL, train, valid, order=2, steps=search_iters, seed=seed)
    # retrain for whole epochs: the table's protocol unless retrain_iters asks for fewer steps
    epochs = PROTOCOL.epochs
    if retrain_iters is not None:
        epochs = max(1, math.ceil(retrain_iters / math.ceil(len(train[1]) / PROTOCOL.batch_size)))
    protocol = TrainingProtocol(epochs=epochs)
    torch.manual_seed(protocol.seed)
    net = Network(CELL, result.value, channels=protocol.channels, cells=protocol.cells)
    train_network(net, train, protocol)
    acc = evaluate(net, test)
    if verbose:
        print("softmax(alpha) per edge:")
        for (i, j), row in zip(CELL.edges, result.weights(), strict=True):
            print(
                f"  {i}->{j}: "
                + "  ".join(f"{o}={float(w):.3f}" for o, w in zip(OPS, row, strict=True))
            )
        print("derived cell:", list(result.value))
        print(f"test accuracy of the derived cell retrained for {epochs} epochs: {acc:.4f}")
        try:
            from metatune.nas.tables import load

            table = load("digits")
            rec = table.lookup(result.value)
            rank = table.rank(result.value, "test")
            print(
                f"in the digits table: test {rec.test():.4f}, ahead of it {rank['percentile']:.1f}% "
                f"of the {len(table)} architectures (best {table.optimum('test').test():.4f})"
            )
        except FileNotFoundError:
            pass
    return {"ops": list(result.value), "test_accuracy": acc, "alpha": result.alpha}


if __name__ == "__main__":
    main()
