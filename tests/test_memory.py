"""dlcourse.memory (DLCOURSE_MALLOC=keep): memory a step frees is reused by the next one, not faulted
in again from the OS; by default glibc's settings stay."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")

# A training step's pattern: allocate and fill a few large blocks (above glibc's default mmap threshold
# of at most 32 MB), free them, and again; once the first rounds have settled, a round's minor page
# faults tell whether the freed memory stayed in the process.
CODE = """
import resource, sys, torch
from dlcourse.memory import keep_freed_memory
print(keep_freed_memory())
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(n << 18) for n in (160, 80, 40)]  # 160, 80 and 40 MB
    del blocks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def last_round_faults(env: dict) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    kept, faults = out.stdout.split()
    return kept, int(faults)


def test_freed_blocks_are_reused_without_page_faults():
    kept, faults = last_round_faults({"DLCOURSE_MALLOC": "keep"})
    assert kept == "True"
    assert faults < 1000  # 280 MB in 4 KB pages would be 71,680 faults


@pytest.mark.parametrize("setting", ["", "system"])
def test_by_default_glibcs_settings_stay(setting):
    kept, faults = last_round_faults({"DLCOURSE_MALLOC": setting})
    assert kept == "False"
    assert faults > 50_000  # the blocks came back from the OS, page by page


def test_kept_memory_beyond_the_bound_is_handed_back_before_the_next_step():
    code = """
from dlcourse.memory import keep_freed_memory, release_freed_memory
import torch
def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
keep_freed_memory()
blocks = [torch.ones(n << 18) for n in (160, 80, 40)]
del blocks
kept = rss_mb()
release_freed_memory(beyond_mb=1000)  # less than that lies free: kept for the next step
print(kept - rss_mb())
release_freed_memory()  # 280 MB free, more than TRIM_MB (256)
print(kept - rss_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DLCOURSE_MALLOC": "keep"})
    assert out.returncode == 0, out.stderr[-2000:]
    untouched, released = map(float, out.stdout.split())
    assert abs(untouched) < 20
    assert released > 200  # most of the 280 MB freed went back to the OS
