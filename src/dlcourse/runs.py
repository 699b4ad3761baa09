"""One run, or one job of a sweep, once its config is valid: build the data and the task (every data
error is raised here, before a run directory exists), then train or cross-validate."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcourse.compose import job_config
from dlcourse.config.validate import validate
from dlcourse.errors import DlcourseError
from dlcourse.faults import RunInterrupted
from dlcourse.rundir import run_lock


def prepare_run(cfg: DictConfig):
    """Build the data and the task (fold 1 of a cross-validation): every data error is raised here."""
    from dlcourse.train import prepare

    if OmegaConf.select(cfg, "cv.folds"):
        from dlcourse.cv import fold_config

        return prepare(fold_config(job_config(cfg), 0, Path(".")))
    return prepare(job_config(cfg))


def finish(prepared, cfg: DictConfig) -> float | None:
    """Train (or cross-validate) a prepared run in the job's directory; the optimised value."""
    if OmegaConf.select(cfg, "cv.folds"):
        from dlcourse.cv import cross_validate

        metrics = cross_validate(cfg, first=prepared)
    else:
        from dlcourse.train import fit

        metrics = fit(prepared, cfg)
    value = metrics.get("optimized_value")
    return value if value is None or math.isfinite(value) else None


def sweep_job(cfg: DictConfig) -> float | None:
    """One job of a sweep. A failure is recorded in its directory (the summary lists it) and the
    other jobs go on."""
    from dlcourse.sweeps.jobs import record_failure

    try:
        validate(cfg)
        prepared = prepare_run(cfg)
        with run_lock(job_dir(cfg), resuming=True):  # Hydra has written .hydra/ into it: only the lock
            return finish(prepared, cfg)
    except RunInterrupted as e:  # a signal stops the whole sweep (as before), not just this job
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except DlcourseError as e:
        record_failure(cfg, e)
        print(f"error: {e}", file=sys.stderr)
        return None


def job_dir(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(str(cfg.paths.output_dir))
