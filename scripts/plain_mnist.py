"""The plain PyTorch a student would write for one MNIST run: torch and numpy only, no dlcourse.

The same work as `dlcourse-train experiment=mnist_mlp` (or mnist_cnn) for the given epochs: the
four IDX files read and normalised with the training split's statistics, the same seeded
44,000/16,000 split, the same network, AdamW at lr 0.002 with weight decay 1e-4 and a one-cycle
schedule, batch 128, one validation pass per epoch and one test pass, the weights saved at the end.
scripts/startup_benchmark.py runs it beside dlcourse to compare wall time, peak memory, CPU time
and page faults.

    python scripts/plain_mnist.py --data-root ../shared/datasets --model mlp --epochs 1
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_idx(path: Path) -> torch.Tensor:
    data = gzip.open(path, "rb").read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy())


def load(root: Path, n_val: int = 16000, seed: int = 42):
    raw = root / "MNIST" / "raw"
    x, y = read_idx(raw / "train-images-idx3-ubyte.gz"), read_idx(raw / "train-labels-idx1-ubyte.gz")
    xt, yt = read_idx(raw / "t10k-images-idx3-ubyte.gz"), read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    x_train = x[train].unsqueeze(1).float() / 255
    mean, std = x_train.mean(), x_train.std()

    def norm(a):
        return (a.unsqueeze(1).float() / 255 - mean) / std

    return ((x_train - mean) / std, y[train].long()), (norm(x[val]), y[val].long()), (norm(xt), yt.long())


def network(kind: str) -> nn.Module:
    if kind == "mlp":  # 784-300-100-10, dropout 0.2 (experiment=mnist_mlp)
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(300, 100), nn.ReLU(), nn.Dropout(0.2), nn.Linear(100, 10))
    # conv 32 -> conv 64 -> max pool -> dense 64 (experiment=mnist_cnn)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 64), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(64, 10))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        out = model(x[i: i + batch_size])
        loss += float(F.cross_entropy(out, y[i: i + batch_size], reduction="sum"))
        correct += float((out.argmax(1) == y[i: i + batch_size]).sum())
    return loss / len(x), correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--limit-train-batches", type=int, default=None, help="as trainer.limit_train_batches")
    args = ap.parse_args()
    torch.manual_seed(42)
    (x, y), (xv, yv), (xt, yt) = load(Path(args.data_root))
    model = network(args.model)
    opt = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=1e-4)
    steps = -(-len(x) // args.batch_size)
    steps = min(steps, args.limit_train_batches or steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.002, total_steps=steps * args.epochs)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(steps):
            idx = order[i * args.batch_size: (i + 1) * args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch}: val loss/acc", evaluate(model, xv, yv))
    print("test loss/acc", evaluate(model, xt, yt))
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model.state_dict(), Path(tmp) / "model.pt")


if __name__ == "__main__":
    main()
