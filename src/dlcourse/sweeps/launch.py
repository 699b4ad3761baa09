"""Starting a sweep: its size is counted (over sweep.max_jobs: refused), the jobs of a grid are checked
first (all of a small one; of a big one each value of each key: one line for the first bad one, nothing
written), its directory is pinned and locked (dlcourse.sweeps.sweepdir), then Hydra's sweeper and
launcher run the jobs (dlcourse.runs.sweep_job each)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from dlcourse.compose import compose
from dlcourse.config.validate import validate
from dlcourse.errors import ConfigError, DlcourseError
from dlcourse.isolation import restored_logging
from dlcourse.runs import sweep_job

LAUNCHER = "hydra_plugins.dlcourse_slurm.SlurmLauncher"  # see conf/hydra/launcher/slurm_cpu.yaml
SWEEPER = "hydra_plugins.dlcourse_optuna.OptunaSweeper"  # see conf/hydra/sweeper/optuna.yaml

MAX_CHECKED_JOBS = 1000
FULL_CHECK = 50  # a grid of up to this many jobs is checked whole before any job runs
CHECKED_JOBS = 50  # of a bigger grid: the first job and each value of each key once, up to this many
BATCH = 32  # Hydra's basic sweeper composes a batch's jobs before it starts them: the first starts soon


@dataclass
class SweepOutcome:
    """A finished sweep: its directory, its summary (dlcourse.sweeps.summary.summarize) and, when some
    jobs did not complete, the line that says so (None when all did)."""

    sweep_dir: Path | None
    summary: dict | None
    failed_line: str | None


def sweep(overrides: list[str]) -> SweepOutcome:
    """Check the sweep's size and every job of a grid first (one line for the first bad one), pin and
    lock the sweep directory, then let Hydra's sweeper and launcher run the jobs; each job validates
    its own config again (an Optuna trial's values are new). A job's config is composed once: the
    launcher gets the one composed for the check."""
    from dlcourse.compose import with_search_path
    from dlcourse.internals import compositions_remembered
    from dlcourse.sweeps import sweepdir
    from dlcourse.sweeps.jobs import SweepCallback

    overrides = with_search_path(overrides)
    SweepCallback.current = None
    with compositions_remembered(), restored_logging():
        master = compose_master(overrides)
        sweepdir.check_size(overrides, master)
        for _ in range(100):  # a name by time taken between the check and the claim: the next one
            pinned, folder, chosen = sweepdir.pin(overrides, master)
            pinned += batched(overrides, master)
            on_slurm = check_sweep(pinned)
            try:
                lock = sweepdir.claim(folder, chosen)
                break
            except sweepdir.NameTaken:
                continue
        else:
            raise DlcourseError(f"could not create a new sweep directory next to {folder}")
        with lock:
            callback = _run(pinned, on_slurm)
    if callback is None:  # a sweep without dlcourse's callback (hydra.callbacks replaced): no summary
        return SweepOutcome(None, None, None)
    return SweepOutcome(callback.sweep_dir, callback.summary, callback.failed_line)


def batched(overrides: list[str], master) -> list[str]:
    """Hydra's basic sweeper composes every job of a batch before it starts one, and a batch is the whole
    grid unless hydra.sweeper.max_batch_size says otherwise: batches of BATCH jobs start the first soon."""
    target = str(OmegaConf.select(master, "hydra.sweeper._target_", default=""))
    if target.endswith("BasicSweeper") and not any(o.startswith("hydra.sweeper.max_batch_size=") for o in overrides):
        return [f"hydra.sweeper.max_batch_size={BATCH}"]
    return []


def compose_master(overrides: list[str]):
    """The sweep's own config, as Hydra composes it for a multirun (its directory, sweeper, limits)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dlcourse.internals import hydra_app

    cfg = hydra_app().compose_config("train", overrides, run_mode=RunMode.MULTIRUN)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} in the directory's name resolves
    return cfg


def _run(overrides: list[str], on_slurm: bool):
    from dlcourse.internals import hydra_app, register_plugin
    from dlcourse.sweeps.jobs import SweepCallback

    if on_slurm:
        register_plugin(LAUNCHER)
    register_plugin(SWEEPER)
    try:
        hydra_app().multirun(config_name="train", task_function=sweep_job, overrides=overrides)
    finally:  # also when the sweeper raised (e.g. Optuna once every trial failed): the summary is written
        callback = SweepCallback.current
        if callback is not None:
            callback.finish()
    return callback


def _axes(overrides: list[str]) -> tuple[list[str], list[tuple]]:
    """The sweep's Hydra overrides, and per key (factory of its `key=value` strings, number of values)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dlcourse.sweeps.sweepdir import axis_length

    parsed = OverridesParser.create().parse_overrides(overrides)
    hydra_part = [o.input_line for o in parsed if o.is_hydra_override()]
    axes: dict[str, tuple] = {}
    for o in parsed:
        if o.is_hydra_override():
            continue
        key = o.get_key_element()
        if not o.is_sweep_override():
            axes[key] = (lambda line=f"{key}={o.get_value_element_as_str()}": iter([line]), 1)
        elif o.is_discrete_sweep():
            axes[key] = (lambda key=key, o=o: (f"{key}={v}" for v in o.sweep_string_iterator()), axis_length(o))
    return hydra_part, list(axes.values())


def job_overrides(overrides: list[str], limit: int = MAX_CHECKED_JOBS) -> list[list[str]]:
    """The grid's first jobs (discrete sweeps only: ranges and choices; intervals belong to Optuna), each
    as Hydra's launcher composes it: the sweep's Hydra overrides, then the job's own, spelled as Hydra's
    basic sweeper spells them (a later value of a key replaces an earlier one in its place)."""
    hydra_part, axes = _axes(overrides)
    jobs = itertools.islice(_product([factory for factory, _ in axes]), limit)
    return [[*hydra_part, *job] for job in jobs]


def checked_jobs(overrides: list[str]) -> list[tuple[int, list[str]]]:
    """(number, overrides) of the jobs checked before any runs: every job of a small grid; of a bigger
    one the first job and each value of each swept key once (the other keys at their first values), at
    most CHECKED_JOBS of them, so that the first job starts within seconds (each job validates itself
    again as it starts: a bad combination beyond these fails that job, and the others go on)."""
    hydra_part, axes = _axes(overrides)
    if math.prod(n for _, n in axes) <= FULL_CHECK:
        return list(enumerate(job_overrides(overrides, FULL_CHECK)))
    values = [list(itertools.islice(factory(), CHECKED_JOBS)) for factory, _ in axes]
    strides = [math.prod(m for _, m in axes[i + 1:]) for i in range(len(axes))]  # job numbers as Hydra counts
    firsts = [v[0] for v in values]
    found = [(0, [*hydra_part, *firsts])]
    for k in range(1, CHECKED_JOBS):  # value k of every key in turn: a long range does not crowd out the rest
        for i, vs in enumerate(values):
            if k < len(vs) and len(found) < CHECKED_JOBS:
                found.append((k * strides[i], [*hydra_part, *firsts[:i], vs[k], *firsts[i + 1:]]))
    return found


def _product(axes: list):
    """itertools.product, lazily: it holds every axis in memory first (`range(0,1e9)`: MemoryError)."""
    if not axes:
        yield ()
        return
    for value in axes[0]():
        for rest in _product(axes[1:]):
            yield (value, *rest)


def check_sweep(overrides: list[str]) -> bool:
    """Validate every job (and the SLURM launcher's settings, before anything is submitted); True if
    the sweep runs on dlcourse's SLURM launcher."""
    on_slurm = False
    for n, job in checked_jobs(overrides):
        try:
            cfg = compose(job)
            validate(cfg)
            if OmegaConf.select(cfg, "hydra.launcher._target_", default="") == LAUNCHER:
                from dlcourse.sweeps.scheduler import check_launcher

                check_launcher(cfg)
                on_slurm = True
        except ConfigError as e:
            own = " ".join(o for o in job if not o.lstrip("+~").startswith("hydra"))
            raise ConfigError(e.key, e.value, f"{e.allowed} (in job {n}: {own})") from None
    return on_slurm
