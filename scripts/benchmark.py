"""Framework overhead per epoch: dlcourse vs a hand-written PyTorch loop doing the same work.

Both sides use the same data (the data module's tensors), model, batch size, optimizer and one
validation pass per epoch; the framework runs exactly as `dlcourse-train` does (checkpoints,
TensorBoard, early stopping, metrics), with only the Rich progress bar off unless --progress-bar.
Each case runs in a process of its own (as a user runs one experiment per process), timed loop ->
framework -> loop there, and the loop's two medians are averaged, so drift of a shared machine
hits both sides. The budget is the brief's: overhead per epoch <= max(10% of the loop's time, 30 ms).

    python scripts/benchmark.py                     # every case
    python scripts/benchmark.py --only gaussian_mlp,iris_mlp --epochs 20
    python scripts/benchmark.py --accelerator gpu --precision bf16-mixed   # a GPU row
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
from dlcourse.build import build_datamodule, build_optimizer  # noqa: E402
from dlcourse.callbacks.timer import EpochTimer  # noqa: E402
from dlcourse.compose import compose, job_config  # noqa: E402
from dlcourse.metrics import compute_loss, resolve_loss  # noqa: E402
from dlcourse.train import train  # noqa: E402


@dataclass
class Case:
    name: str
    overrides: list[str]
    epochs: int = 20
    data_root_needed: bool = False  # cases on real data (MNIST) need --data-root
    notes: str = ""
    extra: list[str] = field(default_factory=list)


# Add a row per built-in experiment. Overrides may change the batch size the case is timed at.
CASES: list[Case] = [
    Case("gaussian_mlp", ["experiment=gaussian_mlp"], epochs=40, notes="full batch (10k points)"),
    Case("iris_mlp", ["experiment=iris_mlp"], epochs=40, notes="batch 16"),
    Case("sine_rnn", ["experiment=sine_rnn"], epochs=8, notes="batch 32, 2x20 simple RNN over 50 steps"),
    # MNIST (real data, --data-root): no schedule and no augmentation, so both sides do the same work.
    # 12 epochs: at under a second each, 5 left a median of 3 epochs that swung by +-40 ms.
    Case("mnist_mlp", ["experiment=mnist_mlp", "data.batch_size=256", "scheduler=none"], epochs=12,
         data_root_needed=True, notes="batch 256, 784-300-100-10, 44k images"),
    Case("mnist_lenet5", ["experiment=mnist_lenet5", "data.batch_size=64", "scheduler=none", "data.augment=false"],
         epochs=5, data_root_needed=True, notes="batch 64, LeNet-5 classic, 44k images"),
]


def hand_written_loop(cfg, epochs: int, device: torch.device, precision: str) -> list[float]:
    """The plain PyTorch a student would write: shuffle, step, one validation pass per epoch."""
    dm = build_datamodule(cfg)
    dm.setup("fit")
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.model, input_shape=dm.input_shape, num_outputs=dm.num_outputs, _convert_="all").to(device)
    optimizer = build_optimizer(cfg)(model.parameters())
    loss_name = resolve_loss(dm.task, cfg.task.loss)
    (xt, yt), (xv, yv) = [tuple(t.to(device) for t in dm.splits[s]) for s in ("train", "val")]
    bs, ebs = dm.train_batch_size, dm._eval_batch_size()
    train_transform = dm.train_transform if dm.has_train_transform else None
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision.startswith("bf16")
                else contextlib.nullcontext())
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(xt), device=device)
        for i in range(0, len(xt), bs):
            idx = order[i : i + bs]
            x, y = xt[idx], yt[idx]
            if train_transform is not None:
                x, y = train_transform((x, y))
            with autocast:
                loss = compute_loss(loss_name, model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        total, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for i in range(0, len(xv), ebs):
                out = model(xv[i : i + ebs])
                total += compute_loss(loss_name, out, yv[i : i + ebs]) * len(out)
                if dm.task == "multiclass":
                    correct += (out.argmax(-1) == yv[i : i + ebs]).sum()
                elif dm.task == "binary":
                    correct += ((out.squeeze(-1) > 0).long() == yv[i : i + ebs]).sum()
        _ = float(total / len(xv)), float(correct / len(xv))  # a real loop reads them: one sync
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def framework(cfg, epochs: int) -> list[float]:
    timer = EpochTimer()
    import dlcourse.train as T

    original = T.build_trainer
    T.build_trainer = lambda c, **kw: _with_callback(original(c, **kw), timer)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            train(cfg)
    finally:
        T.build_trainer = original
    return timer.epoch_seconds


def _with_callback(trainer, callback):
    trainer.callbacks.append(callback)
    return trainer


def steady(times: list[float], skip: int = 2) -> float:
    """Median epoch time after the first epochs (allocation, caches and the like)."""
    return statistics.median(times[skip:] if len(times) > skip + 2 else times)


def measure(case: Case, args, device: torch.device) -> tuple:
    """Loop, framework, loop again, in this process; the row of the table."""
    epochs = args.epochs or case.epochs
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            *case.overrides, *case.extra,
            f"trainer.max_epochs={epochs}", f"trainer.accelerator={args.accelerator}",
            f"trainer.precision={args.precision}", f"trainer.enable_progress_bar={args.progress_bar}",
            "callbacks=all_epochs", "~callbacks.model_summary",  # every epoch runs, as in the loop
        ]
        if case.data_root_needed:
            overrides.append(f"data.root={args.data_root}")
        cfg = job_config(compose(overrides, output_dir=Path(tmp) / "run"))
        loop_a = steady(hand_written_loop(cfg, epochs, device, args.precision))
        fw = steady(framework(cfg, epochs))
        loop_b = steady(hand_written_loop(cfg, epochs, device, args.precision))
    loop = (loop_a + loop_b) / 2
    allowed = max(0.10 * loop, 0.030)
    return (case.name, case.notes, loop, fw, fw / loop, fw - loop, allowed, fw - loop <= allowed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per measurement (default: per case)")
    ap.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--precision", default="32-true", help="e.g. bf16-mixed on a GPU")
    ap.add_argument("--data-root", default=os.environ.get("DLCOURSE_DATASETS", str(REPO.parent / "shared" / "datasets")),
                    help="for real-data cases (default: $DLCOURSE_DATASETS, else ../shared/datasets)")
    ap.add_argument("--progress-bar", action="store_true", help="time the framework with its progress bar on")
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmark.md"))
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a case is over budget (a timing verdict: meaningful on a quiet machine only)")
    ap.add_argument("--row-json", default=None, help=argparse.SUPPRESS)  # internal: one case's child process
    args = ap.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    cases = [c for c in CASES if not wanted or c.name in wanted]
    rows = []
    for case in cases:
        if case.data_root_needed and not Path(args.data_root).exists():
            print(f"skip {case.name}: no data at {args.data_root}", file=sys.stderr)
            continue
        if args.row_json:  # the child process of one case (below): measure, hand the row back
            Path(args.row_json).write_text(json.dumps(measure(case, args, device)))
            return 0
        # One process per case, as a user runs one experiment per process: in one shared process the
        # cases before it (trainers, figures, allocator state) slowed the framework side of a later
        # case by up to 40 ms per epoch. The loop and the framework still share that one process.
        with tempfile.TemporaryDirectory() as tmp:
            row_file = Path(tmp) / "row.json"
            child = [sys.executable, __file__, "--only", case.name, "--row-json", str(row_file),
                     "--accelerator", args.accelerator, "--precision", args.precision, "--data-root", args.data_root,
                     *(["--epochs", str(args.epochs)] if args.epochs else []),
                     *(["--progress-bar"] if args.progress_bar else [])]
            subprocess.run(child, check=True)
            rows.append(tuple(json.loads(row_file.read_text())))
        name, loop, fw = rows[-1][0], rows[-1][2], rows[-1][3]
        print(f"{name}: loop {loop * 1e3:.1f} ms/epoch, framework {fw * 1e3:.1f} ms/epoch", file=sys.stderr)

    device_name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"Device: {device_name}; precision {args.precision}; progress bar {'on' if args.progress_bar else 'off'}",
        "",
        "| case | notes | loop s/epoch | dlcourse s/epoch | ratio | overhead ms | allowed ms | within budget |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, notes, loop, fw, ratio, over, allowed, ok in rows:
        lines.append(f"| {name} | {notes} | {loop:.4f} | {fw:.4f} | {ratio:.2f} | {over * 1e3:.1f} | "
                     f"{allowed * 1e3:.1f} | {'yes' if ok else 'NO'} |")
    table = "\n".join(lines)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")
    return 1 if args.strict and not all(r[-1] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
