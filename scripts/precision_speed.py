"""How much faster is bf16 mixed precision than float32 for an experiment's model, on this machine?

    python scripts/precision_speed.py                                  # the CNN experiments, on the CPU
    python scripts/precision_speed.py --only mnist_best --steps 50
    python scripts/precision_speed.py --device cuda                    # on a GPU

Times training steps (forward, loss, backward, optimizer step) of each experiment's model at its batch
size, on random inputs of the data's shape (speed does not depend on pixel values, so no dataset is
needed), float32 and bf16 autocast alternating (a, b, a, b) in one process so that drift of a shared
machine hits both. bf16 pays off on CPUs with AMX or AVX512-BF16 (Xeon Sapphire Rapids and later) and
on recent GPUs; elsewhere it can be slower. Prints a markdown table of ms per step and the speed-up.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
from dlcourse.build import build_optimizer  # noqa: E402
from dlcourse.compose import compose, job_config  # noqa: E402
from dlcourse.metrics import compute_loss  # noqa: E402

# experiment -> the shape of one input, as its data module serves it
CASES = {"mnist_best": (1, 28, 28), "mnist_cnn": (1, 28, 28), "mnist_lenet5": (1, 28, 28),
         "mnist_resnet": (1, 28, 28), "mnist_mlp": (1, 28, 28)}


def time_steps(cfg, shape, device: torch.device, bf16: bool, steps: int) -> float:
    """Median seconds per training step (after 3 warm-up steps)."""
    torch.manual_seed(0)
    model = instantiate(cfg.model, input_shape=shape, num_outputs=10, _convert_="all").to(device).train()
    optimizer = build_optimizer(cfg)(model.parameters())
    bs = int(cfg.data.batch_size)
    x, y = torch.randn(bs, *shape, device=device), torch.randint(0, 10, (bs,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        with autocast:
            loss = compute_loss("cross_entropy", model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="mnist_best,mnist_cnn,mnist_lenet5", help="comma-separated experiments")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown case(s) {', '.join(unknown)}; available: {', '.join(CASES)}", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"Device: {where}", "", "| experiment | batch | float32 ms/step | bf16-mixed ms/step | speed-up |",
             "|---|---:|---:|---:|---:|"]
    for name in names:
        cfg = job_config(compose([f"experiment={name}"], output_dir="/nonexistent"))  # composed only: nothing is written
        fp32_a = time_steps(cfg, CASES[name], device, False, args.steps)
        bf16_a = time_steps(cfg, CASES[name], device, True, args.steps)
        fp32_b = time_steps(cfg, CASES[name], device, False, args.steps)
        bf16_b = time_steps(cfg, CASES[name], device, True, args.steps)
        fp32, bf16 = (fp32_a + fp32_b) / 2, (bf16_a + bf16_b) / 2
        lines.append(f"| {name} | {cfg.data.batch_size} | {fp32 * 1e3:.1f} | {bf16 * 1e3:.1f} | {fp32 / bf16:.2f}x |")
        print(f"{name}: float32 {fp32 * 1e3:.1f} ms, bf16 {bf16 * 1e3:.1f} ms", file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
