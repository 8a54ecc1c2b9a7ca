"""Joint architecture + hyperparameter search on digits: a cell, a width and a learning rate in
one Space, searched by nas-bo, stored in SQLite (run it again: the study resumes).

Run: python examples/nas_joint_search.py [n_trials]
"""

from __future__ import annotations

import sys

import torch

import metatune as mt
from metatune.nas import Cell
from metatune.nas.networks import Network, TrainingProtocol, digits_splits, evaluate, train_network

torch.set_num_threads(1)
train, valid, test = digits_splits(seed=0)

space = mt.Space(
    {
        "cell": Cell(
            nodes=4, ops=["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
        ),
        "channels": mt.Int(4, 16),
        "lr": mt.Float(0.01, 0.5, log=True),
    }
)


def objective(params: dict) -> float:
    """Validation accuracy of the network after a short training run."""
    protocol = TrainingProtocol(epochs=4, lr=params["lr"], channels=params["channels"])
    torch.manual_seed(0)
    net = Network(space["cell"], params["cell"], channels=params["channels"], cells=protocol.cells)
    train_network(net, train, protocol)
    return evaluate(net, valid)


if __name__ == "__main__":
    n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    study = mt.Study(
        space,
        direction="maximize",
        optimizer="nas-bo",
        storage="sqlite:///metatune-runs/metatune.db",
        name="nas-digits",
        seed=0,
    )
    study.optimize(objective, n_trials=n_trials)
    print("best validation accuracy", round(study.best_value, 4))
    print("best cell", study.best_params["cell"], "channels", study.best_params["channels"])
