"""The jobs of a sweep: per-job set-up that Hydra's launchers need (CPU threads shared among
parallel jobs, DDP ranks started in the job's own directory), a failure record for every job that
fails (so the summary lists it and the other jobs go on), and the summary when the sweep ends."""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlcourse.internals import failed_job_error, set_ddp_rank_command
from dlcourse.sweeps.summary import print_report, status_counts, summarize

log = logging.getLogger("dlcourse")
# Environment variables that Lightning's DDP launcher sets in the process that starts the ranks.
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_ENV_AT_FIRST_JOB: dict[str, str | None] | None = None


def error_line(e: BaseException) -> str:
    from dlcourse.errors import DlcourseError

    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, DlcourseError) and text else f"{type(e).__name__}: {text}".rstrip(": ")


def record_failure(cfg: DictConfig, error: BaseException | str, run_dir: str | Path | None = None,
                   status: str = "failed", overrides: list[str] | None = None) -> Path | None:
    """Write `<run_dir>/metrics.json` with status "failed" (or the state SLURM ended the job in:
    cancelled, timeout, node_fail, ...) and the error line (rank zero only), so the sweep summary lists
    the job; `overrides` for a job that never started. A completed (or pruned) record already there is left alone."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from dlcourse.atomic_files import write_json

    if getattr(rank_zero_only, "rank", 0) != 0:
        return None
    if run_dir is None:
        run_dir = OmegaConf.select(cfg, "paths.output_dir", default=None, throw_on_resolution_failure=False)
    if run_dir is None:
        return None
    path = Path(run_dir) / "metrics.json"
    if path.is_file():
        try:
            if json.loads(path.read_text()).get("status") in ("completed", "pruned"):
                return path
        except (OSError, ValueError):
            pass

    def get(key):
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    write_json(path, {
        "experiment": get("name"),
        "status": status,
        "error": error if isinstance(error, str) else error_line(error),
        "run_dir": str(run_dir),
        "seed": get("seed"),
        "optimized_metric": get("optimized_metric"),
        "optimized_value": None,
        **({"overrides": list(overrides)} if overrides is not None else {}),
    })
    return path


def share_cpu_threads(config: DictConfig) -> None:
    """Parallel jobs on one machine (joblib launcher): each job gets cpu_count // n_jobs threads."""
    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_jobs = int(launcher.get("n_jobs") or -1)
    if n_jobs < 0:  # joblib's convention: -1 = all CPUs, -2 = all but one, ...
        n_jobs = max(1, cpus + 1 + n_jobs)
    threads = max(1, cpus // n_jobs)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    log.info("parallel job (joblib, n_jobs=%d): %d CPU threads of %d", n_jobs, threads, cpus)


def ddp_rank_command(local_rank: int) -> tuple[list[str], str]:
    """The command that starts an extra DDP rank of this job. Lightning's own repeats the command line
    (in a multirun that includes `-m` and every sweep value, so each rank would start a whole sweep)
    and uses `hydra.run.dir` (a fresh timestamp, not the job's directory). Here every rank gets this
    job's own overrides and its directory: one run directory, written by rank zero."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "dlcourse", *[str(o) for o in hc.overrides.task],
               f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
               "hydra.output_subdir=null"]
    return command, get_original_cwd()


def reset_ddp_between_jobs() -> None:
    """Several DDP jobs in one process (a local multirun): the first job's launcher left LOCAL_RANK etc.
    in the environment and a process group behind; without a reset the next job would not start its
    ranks and would wait for them forever. Variables a cluster (SLURM, torchrun) set are kept."""
    global _ENV_AT_FIRST_JOB
    if _ENV_AT_FIRST_JOB is None:
        _ENV_AT_FIRST_JOB = {k: os.environ.get(k) for k in DDP_ENV}
        return
    changed = [k for k in DDP_ENV if os.environ.get(k) != _ENV_AT_FIRST_JOB[k]]
    if not changed:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for k in changed:
        if _ENV_AT_FIRST_JOB[k] is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = _ENV_AT_FIRST_JOB[k]


def _prepare_storage(config: DictConfig) -> None:
    """Optuna's sqlite storage needs its folder to exist before the study is created."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None, throw_on_resolution_failure=False)
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


class SweepCallback(Callback):
    """Hydra callback (conf/hydra/default.yaml): summaries, failure records, threads, DDP. The sweep
    that is running (or ran last) in this process is `SweepCallback.current`: its directory, summary
    and, if some jobs did not complete, the line that says so (the command line exits 1 with it)."""

    current: SweepCallback | None = None

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.done = False
        self.summary: dict | None = None
        self.failed_line: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SweepCallback.current = self
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.done = False
        _prepare_storage(config)
        # A sweeper that raises (e.g. Optuna when every trial failed) skips on_multirun_end;
        # the summary is still written when the process ends.
        atexit.register(self.finish)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        share_cpu_threads(config)
        set_ddp_rank_command(ddp_rank_command)
        reset_ddp_between_jobs()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status == JobStatus.FAILED:  # an exception that is not a DlcourseError
            run_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
            record_failure(config, failed_job_error(job_return), run_dir)

    def finish(self) -> dict | None:
        """Write and print the summary once; the summary (also on later calls)."""
        if self.done or self.sweep_dir is None or not self.sweep_dir.is_dir():
            return self.summary
        self.done = True
        result = summarize(self.sweep_dir)
        if result["rows"]:
            print_report(result, self.sweep_dir)
        bad = [r["status"] for r in result["rows"] if r["status"] not in ("completed", "pruned")]
        if bad:  # failed, or ended by the cluster (cancelled, timeout, node_fail) or never heard of again
            states = "failed" if set(bad) == {"failed"} else f"did not complete ({status_counts(result['rows'])})"
            self.failed_line = (f"{len(bad)} of {len(result['rows'])} jobs {states}; "
                                f"see {self.sweep_dir / 'summary.md'}")
        self.summary = result
        return result

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.finish()
