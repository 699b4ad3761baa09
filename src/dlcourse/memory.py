"""Opt-in (`DLCOURSE_MALLOC=keep`): keep the memory a training loop frees inside the process, instead
of handing it back to the OS at every step and faulting it in again at the next.

glibc's malloc serves a block above its mmap threshold (at most 32 MB) with a fresh mmap and gives
it back on free, and trims the top of its heap once more than twice that threshold is free there. A
CNN step allocates and frees tens to hundreds of MB of activations and gradients, so every step
paid page faults and zeroing for all of it in the kernel (RESULTS.md has the system time of an
MNIST CNN run with and without this). With the thresholds raised, the same blocks are reused from
one step to the next. The price is up to TRIM_MB of freed memory kept in the process; beyond
that it is handed back before the next step (release_freed_memory), which keeps the peak memory near
where glibc's defaults have it.

It is off by default because it is not free (RESULTS.md): on an MNIST CNN it halved page faults and
system time, but raised peak memory by about a tenth, and it made an MLP's epochs
slower (blocks served from a fragmented heap instead of fresh mappings). Unset or `system` keeps
glibc's defaults; on other C libraries (macOS, Windows, musl) `keep` does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings

ENV = "DLCOURSE_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Chosen by measurement (RESULTS.md): every block of the course's models comes from the heap (an
# evaluation batch of mnist_cnn holds several hundred MB); keeping more free at the top made the
# peak memory of some runs jump, through fragmentation.
MMAP_MB = 1024  # blocks up to this size come from the heap and are reused
TRIM_MB = 256  # free memory kept at the top of the heap


_libc = None  # glibc, once keep_freed_memory() has set it up


def keep_freed_memory() -> bool:
    """With DLCOURSE_MALLOC=keep, raise glibc's thresholds (once training is certain: data built
    before stays as it was). True if they were set."""
    global _libc
    setting = os.environ.get(ENV, "")
    if setting not in ("", "system", "keep"):
        warnings.warn(f"{ENV}={setting!r} is not a setting (allowed: keep, system, or unset); ignored", stacklevel=2)
    if setting != "keep" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        mallopt, trim, _ = libc.mallopt, libc.malloc_trim, libc.mallinfo2  # mallinfo2: glibc 2.33 and later
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.mallinfo2.restype = _Mallinfo2
    if mallopt(M_MMAP_THRESHOLD, MMAP_MB << 20) and mallopt(M_TRIM_THRESHOLD, TRIM_MB << 20):
        _libc = libc
    return _libc is not None


class _Mallinfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h)
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def release_freed_memory(beyond_mb: int = TRIM_MB) -> None:
    """Give the kept free memory back to the OS once more than `beyond_mb` lies free in the heap's
    holes. Called before each step: small blocks that outlive a step (an evaluation's predictions)
    split the space a step freed, and blocks of another loop (validation after training) do not fit
    what the last one freed, so the holes could grow with every step and only add to the peak. Below
    the bound it costs a look at glibc's statistics, no system call."""
    if _libc is not None and _libc.mallinfo2().fordblks > beyond_mb << 20:
        _libc.malloc_trim(0)
