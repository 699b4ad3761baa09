"""A sweep directory belongs to one sweep, as a run directory belongs to one run: its name is pinned
once (microseconds, and a suffix if that name is taken, so two sweeps started in the same second
never share one), it holds a lock while the sweep runs, and a directory that holds an earlier sweep
is entered again only on purpose (`sweep.continue=true`: the new jobs are numbered after its own).
The size of a grid is counted, never built: more jobs than `sweep.max_jobs` are refused up front."""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

from dlcourse.errors import ConfigError, DlcourseError
from dlcourse.rundir import LOCK, RunDirectory

DIR_KEY = "hydra.sweep.dir"


def axis_length(override) -> int:
    """How many values a discrete sweep override has, counted without listing them (`range(0,1e9)`)."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    value = override.value()
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        return max(0, math.ceil((stop - start) / step)) if step else 0
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    return sum(1 for _ in override.sweep_string_iterator())  # glob(...): the options it matches


def grid_size(overrides: list[str]) -> int:
    """The number of jobs a grid of these overrides has, counted without building it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    size = 1
    for o in OverridesParser.create().parse_overrides(overrides):
        if not o.is_hydra_override() and o.is_discrete_sweep():
            size *= axis_length(o)
    return size


def check_size(overrides: list[str], cfg) -> None:
    """More jobs than sweep.max_jobs (or Optuna trials): one line before any job is composed."""
    limit = OmegaConf.select(cfg, "sweep.max_jobs", default=1000)
    trials = OmegaConf.select(cfg, "hydra.sweeper.n_trials", default=None)
    size = trials if isinstance(trials, int) else grid_size(overrides)
    if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit < size:  # < 1: validation's line
        raise ConfigError("sweep.max_jobs", limit, f"this sweep has {size:,} jobs; narrow it, or raise the limit "
                                                   f"on purpose with sweep.max_jobs={size}")


def earlier_jobs(folder: Path) -> int:
    """1 + the highest job number in a sweep directory (0 for a new one)."""
    numbers = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
    return max(numbers, default=-1) + 1


def _holds_a_sweep(folder: Path) -> bool:
    return folder.is_dir() and any(p.name != LOCK for p in folder.iterdir())


def pin(overrides: list[str], cfg) -> tuple[list[str], Path, bool]:
    """The overrides with the sweep directory pinned (resolved, `..` and links included); the
    directory; whether it was chosen by the user (hydra.sweep.dir=...) rather than named by time."""
    folder = Path(str(OmegaConf.select(cfg, DIR_KEY))).expanduser().resolve()
    chosen = any(o.startswith(f"{DIR_KEY}=") for o in overrides)
    rest = [o for o in overrides if not o.startswith(f"{DIR_KEY}=")]
    if chosen:
        if _holds_a_sweep(folder) and not OmegaConf.select(cfg, "sweep.continue", default=False):
            raise ConfigError(DIR_KEY, str(folder), "holds an earlier sweep; choose a new directory, or add this "
                                                    "sweep's jobs to it with sweep.continue=true")
        offset = earlier_jobs(folder)
        if offset:  # continued on purpose: the new jobs come after the old ones (and the summary lists all)
            rest = [o for o in rest if not o.startswith("hydra.sweep.subdir=")]
            rest.append(f"hydra.sweep.subdir='${{dlcourse_add:${{hydra.job.num}},{offset}}}'")
    else:
        base, n = folder, 0
        while folder.exists():  # a name taken (by a sweep started the same microsecond): the next suffix
            n += 1
            folder = base.with_name(f"{base.name}_{n}")
    return [*rest, f"{DIR_KEY}='{folder}'"], folder, chosen


def claim(folder: Path, chosen: bool) -> SweepDirectory:
    """Create the sweep directory (a name by time must be new: os.mkdir is the atomic test) and lock it."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if chosen:
            folder.mkdir(exist_ok=True)
        else:
            folder.mkdir()
    except FileExistsError:
        raise NameTaken(folder) from None
    except OSError as e:
        raise DlcourseError(f"cannot create the sweep directory {folder}: {e.strerror or e}") from None
    return SweepDirectory(folder)


class NameTaken(Exception):
    """Another sweep created this name between the check and the claim: the caller pins a new one."""


class SweepDirectory(RunDirectory):
    """The sweep's lock: a second sweep into this directory while this one runs is refused."""

    def __init__(self, path: Path):
        super().__init__(path, resuming=True)

    def __enter__(self) -> SweepDirectory:
        try:
            self._acquire()
        except DlcourseError as e:
            raise DlcourseError(str(e).replace("hydra.run.dir", DIR_KEY)) from None
        return self
