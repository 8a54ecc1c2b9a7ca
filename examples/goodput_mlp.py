"""Goodput-optimized training of a small MLP on scikit-learn's digits (bundled, offline).

The loop is a plain torch loop; the lines marked "# goodput" are what the controller adds.
Run: .venv/bin/python examples/goodput_mlp.py        (about ten seconds on one CPU core)
Under torchrun (CPU, gloo):  torchrun --nproc-per-node 2 examples/goodput_mlp.py --ddp
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

from metatune.goodput import GoodputController


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--ddp", action="store_true", help="started by torchrun (gloo)")
    args = parser.parse_args()
    if args.ddp:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x = torch.tensor(x / 16.0, dtype=torch.float32)[perm]
    y = torch.tensor(y)[perm]
    train = torch.utils.data.TensorDataset(x[:1500], y[:1500])
    x_val, y_val = x[1500:], y[1500:]

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = GoodputController(  # goodput
        model, optimizer, batch_size=16, max_batch_size=512, max_micro_batch=256
    )
    loader = ctl.loader(train, seed=0)  # goodput
    for epoch in ctl.epochs(args.epochs):  # goodput: resumes at the saved epoch
        for (xb, yb), _accumulate in loader:
            loss = nn.functional.cross_entropy(ctl.model(xb), yb)
            ctl.step(loss)  # goodput: replaces backward(), step() and zero_grad()
        with torch.no_grad():
            val = nn.functional.cross_entropy(model(x_val), y_val).item()
        if ctl.rank == 0:
            p = ctl.plan
            print(
                f"epoch {epoch:2d}  val loss {val:.3f}  batch {p.total:4d} "
                f"(micro {p.micro_batch} x {p.accum_steps + 1} x {p.replicas} replicas)  "
                f"noise scale {ctl.noise.noise_scale:7.1f}  progress {ctl.progress:7.1f} "
                f"M0-steps in {ctl.steps} steps  lr {optimizer.param_groups[0]['lr']:.3f}"
            )
    # A checkpoint: the controller's state next to the model's and the optimizer's.
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "goodput": ctl.state_dict(),
    }
    del checkpoint  # torch.save(checkpoint, path); later ctl.load_state_dict(ck["goodput"])


if __name__ == "__main__":
    main()
