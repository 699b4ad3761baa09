"""Does `threads=auto` fit the machine? Seconds per epoch of small experiments with one CPU thread
(what auto picks for them) against torch's default thread count, alternating in one process
(default, 1, default, 1, ...) so that drift of a shared machine hits both; the median epoch of each
run after the first two, then the median over the repeats.

    python scripts/machine_fit.py                         # gaussian_mlp, iris_mlp, sine_rnn, sine_lstm
    python scripts/machine_fit.py --only iris_mlp --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from dlcourse.callbacks.timer import EpochTimer
from dlcourse.compose import compose, job_config
from dlcourse.machine import TINY_STEP

CASES = {"gaussian_mlp": 30, "iris_mlp": 40, "sine_rnn": 4, "sine_lstm": 4}  # name -> epochs


def epoch_seconds(name: str, epochs: int, threads: int, tmp: Path) -> float:
    import dlcourse.train as T

    cfg = job_config(compose([f"experiment={name}", f"trainer.max_epochs={epochs}", f"threads={threads}",
                              "trainer=cpu", "logger=none", "callbacks=all_epochs", "~callbacks.model_summary",
                              "trainer.enable_progress_bar=false", "test=false"], output_dir=tmp / f"{name}-{threads}"))
    timer, original = EpochTimer(), T.build_trainer

    def with_timer(c, **kw):
        trainer = original(c, **kw)
        trainer.callbacks.append(timer)
        return trainer

    T.build_trainer = with_timer
    try:
        with contextlib.redirect_stdout(sys.stderr):
            T.train(cfg)
    finally:
        T.build_trainer = original
    times = timer.epoch_seconds
    return statistics.median(times[2:] if len(times) > 4 else times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated experiment names")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    default = torch.get_num_threads()
    names = [n for n in CASES if not args.only or n in args.only.split(",")]
    print(f"torch's default: {default} threads; one thread below {TINY_STEP:,} weights x examples per step\n")
    print(f"| experiment | {default} threads s/epoch | 1 thread s/epoch | speed-up of 1 thread |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs = {default: [], 1: []}
            for _ in range(args.repeat):
                for threads in (default, 1):
                    runs[threads].append(epoch_seconds(name, CASES[name], threads, Path(tmp)))
                    torch.set_num_threads(default)
            many, one = statistics.median(runs[default]), statistics.median(runs[1])
            print(f"| {name} | {many:.4f} | {one:.4f} | {many / one:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
