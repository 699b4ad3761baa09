"""Settings that fit the machine: `trainer.precision=auto` and `threads=auto`.

- precision auto: bf16-mixed where the device computes bfloat16 natively (a CUDA GPU that supports it,
  a CPU with AVX512-BF16 or AMX), else 32-true. Emulated bf16 is slower than float32: on an AVX2-only
  AMD EPYC, bf16 autocast made training steps 3.5x and evaluation ~10x slower (RESULTS.md).
- threads auto: one intra-op thread where each step's work is tiny (tables and sequences whose weights
  x batch size is under TINY_STEP), torch's default otherwise. Splitting a 500-weight matrix product
  over threads costs more in hand-offs than it gains, most of all on a busy machine (RESULTS.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("dlcourse")

TINY_STEP = 10_000_000  # weights x examples per step below which one thread is faster (scripts/machine_fit.py)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; empty elsewhere: then no native bf16 is assumed)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def uses_gpu(accelerator: str | None) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator in (None, "auto") and torch.cuda.is_available())


def native_bf16(gpu: bool) -> bool:
    import torch

    if gpu:
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def resolve_precision(precision, accelerator: str | None):
    """`auto` -> bf16-mixed or 32-true for this device; any other value as it is."""
    if str(precision) != "auto":
        return precision
    return "bf16-mixed" if native_bf16(uses_gpu(accelerator)) else "32-true"


def apply_thread_policy(threads, accelerator: str | None, inputs: str, n_weights: int, batch_size: int) -> None:
    """`threads`: a number (set as it is) or auto (one thread for a tiny step on the CPU, else unchanged,
    e.g. torch's default or what a parallel sweep gave this job)."""
    import torch

    if threads not in (None, "auto"):
        torch.set_num_threads(int(threads))
        return
    tiny = inputs in ("table", "sequence") and n_weights * batch_size < TINY_STEP
    if threads == "auto" and tiny and not uses_gpu(accelerator) and torch.get_num_threads() > 1:
        log.info("one CPU thread: %d weights x %d examples per step is too little work to share", n_weights, batch_size)
        torch.set_num_threads(1)
