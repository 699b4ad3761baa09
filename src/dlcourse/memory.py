"""Keep the memory a training loop frees inside the process, instead of handing it back to the OS
at every step and faulting it in again at the next.

glibc's malloc serves a block above its mmap threshold (at most 32 MB) with a fresh mmap and gives
it back on free, and trims the top of its heap once more than twice that threshold is free there. A
CNN step allocates and frees tens to hundreds of MB of activations and gradients, so every step
paid page faults and zeroing for all of it in the kernel (RESULTS.md has the system time of an
MNIST CNN run with and without this). With the thresholds raised, the same blocks are reused from
one step to the next. The price is up to TRIM_MB of freed memory kept in the process; it is handed
back where a loop of another shape begins (release_freed_memory: training, validation, test),
which keeps the peak memory where glibc's defaults have it.

`DLCOURSE_MALLOC=system` keeps glibc's defaults; on other C libraries (macOS, Windows, musl) this
does nothing.
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
    """Raise glibc's thresholds (once training is certain: data built before stays as it was). True
    if they were set."""
    global _libc
    setting = os.environ.get(ENV, "")
    if setting not in ("", "system"):
        warnings.warn(f"{ENV}={setting!r} is not a setting (allowed: system, or unset); ignored", stacklevel=2)
    if setting == "system" or not sys.platform.startswith("linux"):
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


def release_freed_memory(beyond_mb: int = 0) -> None:
    """Give the kept free memory back to the OS: always (beyond_mb=0) where a loop of another shape
    starts (training, validation, test), since what one kind of step freed does not fit the next
    kind's blocks; between the steps of one loop only once more than `beyond_mb` lies free in the
    heap's holes (small blocks that outlive a step, such as an evaluation's predictions, split the
    space a step freed, so that the next step's large blocks may not fit it: kept, that would only
    add to the peak)."""
    if _libc is None:
        return
    if beyond_mb and _libc.mallinfo2().fordblks <= beyond_mb << 20:
        return
    _libc.malloc_trim(0)
