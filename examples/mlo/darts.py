"""DARTS architecture search on digits with metatune.nas.darts (built on metatune.mlo).

The cell space is a NAS-Bench-201-shaped cell (4 nodes, an operation on each of its 6 edges);
``darts_search`` trains the supernet's weights on the training split and the architecture
parameters on the validation split (second order: DARTS's finite-difference hypergradient),
then derives the discrete cell, a value of the same ``Cell``. That cell is retrained from
scratch and scored on the test split.

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


def main(seed: int = 0, search_iters: int = 800, retrain_iters: int = 170, verbose: bool = True):
    train, valid, test = digits_splits(seed)
    result = darts_search(CELL, train, valid, order=2, steps=search_iters, seed=seed)
    # retrain the derived cell by the digits table's protocol, for whole epochs
    epochs = max(1, math.ceil(retrain_iters / math.ceil(len(train[1]) / 64)))
    protocol = TrainingProtocol(epochs=epochs, seed=seed)
    torch.manual_seed(seed)
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
    return {"ops": list(result.value), "test_accuracy": acc, "alpha": result.alpha}


if __name__ == "__main__":
    main()
