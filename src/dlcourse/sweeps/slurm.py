"""The SLURM launcher (conf/hydra/launcher/slurm_cpu.yaml, slurm_gpu.yaml): hydra-submitit-launcher's
submission, with what a cluster does to jobs handled.

- Waiting: every job is followed through squeue (sacct where it exists) and its result file, not
  through submitit's sacct-only watcher, which waits forever without accounting and gives up on the
  whole sweep when one job is cancelled. Each job's final state (completed, failed with its error,
  cancelled, timeout, node_fail, ...) goes into its metrics.json, so summary.md lists it.
- A failed job raises on the node (after its failure record is written): SLURM records it FAILED.
- Time limits: SLURM signals the job `signal_delay_s` early; submitit calls `checkpoint`, which
  requeues the same job resuming from its last.ckpt (end of the last finished epoch: training
  resumes exactly), at most `max_num_timeout` times.
- Ctrl-C / SIGTERM while waiting: the jobs still queued or running are listed with the scancel
  command (or cancelled, with cancel_on_interrupt=true); the summary is written at exit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

from dlcourse import faults
from dlcourse.internals import failed_job_error
from dlcourse.sweeps import scheduler

log = logging.getLogger("dlcourse")
# Keys of our launcher configs that are not submitit's.
OWN_KEYS = ("cancel_on_interrupt", "poll_s", "_target_")
INIT_KEYS = ("submitit_folder", "max_num_timeout")


class JobFailed(RuntimeError):
    """Raised on the node when the job failed: submitit exits non-zero and SLURM says FAILED."""


class Interrupted(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.own = {k: self.params.pop(k) for k in OWN_KEYS if k in self.params}
        self.job_dir: Path | None = None

    # --- on the node -------------------------------------------------------------------------
    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state, resume=None) -> JobReturn:
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(sweep_overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = submitit.JobEnvironment().job_id
            cfg.hydra.job.num = job_num
            if resume:  # requeued after a time limit: on from the last finished epoch
                cfg.ckpt_path = resume
        self.job_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        _use_allocated_cpus()
        ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=cfg,
                      job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
        if ret.status == JobStatus.FAILED:
            raise JobFailed(_error_line(failed_job_error(ret)))
        record = _read_record(self.job_dir)
        if os.environ.get("SLURM_PROCID", "0") == "0" and record.get("status") == "failed":
            raise JobFailed(record.get("error") or "failed")
        return ret

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on the time-limit signal: the same job again, from its last.ckpt."""
        import submitit

        last = self.job_dir / "checkpoints" / "last.ckpt" if self.job_dir else None
        resume = str(last) if last is not None and _loads(last) else None
        log.warning("time limit near: requeued, %s", f"resuming from {resume}" if resume else "from the start "
                    "(no last.ckpt yet)")
        faults.requeued.set()
        return submitit.helpers.DelayedSubmission(self, *args[:5], resume=resume)

    # --- where dlcourse-train runs -----------------------------------------------------------
    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(cluster="slurm", folder=params["submitit_folder"],
                                         slurm_max_num_timeout=params.get("max_num_timeout", 0))
        executor.update_parameters(**_executor_params(params))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM sweep output dir: %s", sweep_dir)
        args = []
        for n, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + n, " ".join(filter_overrides(overrides)))
            args.append((list(overrides), "hydra.sweep.dir", initial_job_idx + n, f"job_id_for_{initial_job_idx + n}",
                         Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*args, strict=True))
        print(f"submitted {len(jobs)} SLURM jobs: {', '.join(j.job_id for j in jobs)}", flush=True)
        outcomes = self._wait(jobs)
        return [self._outcome(job, a, outcomes[job.job_id]) for job, a in zip(jobs, args, strict=True)]

    def _wait(self, jobs) -> dict[str, tuple[str, str]]:
        """Every job's final (SLURM state, detail). Ctrl-C / SIGTERM: say what still runs, then exit."""
        done: dict[str, tuple[str, str]] = {}
        last: dict[str, tuple[str, str]] = {}
        seen_ended: dict[str, int] = {}  # polls in a row that SLURM said the job ended (or forgot it)
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            while len(done) < len(jobs):
                last = scheduler.job_states([j.job_id for j in jobs if j.job_id not in done])
                for job in (j for j in jobs if j.job_id not in done):
                    state = last.get(job.job_id, ("FORGOTTEN", "no longer known to SLURM"))
                    ended = state[0] in scheduler.ENDED or state[0] == "FORGOTTEN"
                    seen_ended[job.job_id] = seen_ended.get(job.job_id, 0) + 1 if ended else 0
                    # Twice in a row (a preempted job may be requeued); the result file may lag a little.
                    has_result = job.paths.result_pickle.exists()
                    if seen_ended[job.job_id] >= 2 and (has_result or seen_ended[job.job_id] > 5
                                                         or state[0] not in ("COMPLETED", "FAILED", "FORGOTTEN")):
                        done[job.job_id] = state
                if len(done) < len(jobs):
                    time.sleep(float(self.own.get("poll_s") or 5))
        except (KeyboardInterrupt, Interrupted) as e:
            code = e.code if isinstance(e, Interrupted) else 130
            self._interrupted([j.job_id for j in jobs if j.job_id not in done], last)
            raise SystemExit(code) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        return done

    def _interrupted(self, job_ids: list[str], states: dict) -> None:
        running = [j for j in job_ids if states.get(j, ("PENDING",))[0] not in scheduler.ENDED]
        if not running:
            return
        listed = ", ".join(f"{j} ({states.get(j, ('PENDING',))[0].lower()})" for j in running)
        if self.own.get("cancel_on_interrupt"):
            ok = scheduler.cancel(running)
            print(f"interrupted: {'cancelled' if ok else 'could not cancel'} {len(running)} SLURM jobs: {listed}",
                  file=sys.stderr)
        else:
            print(f"interrupted: {len(running)} SLURM jobs are still queued or running: {listed}\n"
                  f"cancel them with: scancel {' '.join(running)}   (or set hydra.launcher.cancel_on_interrupt=true)"
                  f"\nsummary of the sweep so far (again later: dlcourse-summary {self.config.hydra.sweep.dir})",
                  file=sys.stderr, flush=True)

    def _outcome(self, job, args, state: tuple[str, str]) -> JobReturn:
        """The job's JobReturn; a job that did not complete gets its state written in its metrics.json."""
        from dlcourse.sweeps.jobs import record_failure

        overrides, _, num = args[0], args[1], args[2]
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.num = num
        job_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        kind, result = _read_result(job)
        status, error = scheduler.ENDED.get(state[0], "failed"), ""
        if status in ("completed", "failed"):
            if kind == "success":
                return result
            status = "timeout" if "timed-out" in str(result) else "failed"
            error = _last_line(result) if kind == "error" else f"ended without a result (SLURM: {state[0]}, {state[1]})"
        else:
            error = f"{state[0]} by SLURM ({state[1]})" if state[1] not in ("", "None") else f"{state[0]} by SLURM"
        if _read_record(job_dir).get("status") != "completed":
            record_failure(cfg, error, job_dir, status=status, overrides=filter_overrides(overrides))
        # As sweep_job does for a local failure: recorded, no value, and the sweep goes on to its summary.
        return JobReturn(overrides=list(overrides), cfg=cfg, status=JobStatus.COMPLETED)  # its value: None


def _executor_params(params: dict) -> dict:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    base = set(OmegaConf.structured(BaseQueueConf).keys())
    return {(k if k in base else f"slurm_{k}"): v for k, v in params.items() if k not in INIT_KEYS}


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(128 + signum)


def _use_allocated_cpus() -> None:
    """Torch threads = the CPUs SLURM gave each task (without cgroups it would see the whole node)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        import torch

        torch.set_num_threads(int(cpus))
        os.environ["OMP_NUM_THREADS"] = cpus


def _read_record(job_dir: Path) -> dict:
    import json

    try:
        return json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _read_result(job) -> tuple[str, Any]:
    from submitit.core import utils

    try:
        return utils.pickle_load(job.paths.result_pickle)
    except Exception as e:  # no result: killed, cancelled before it started
        return "missing", e


def _last_line(text: Any) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else str(text)
    return line.removeprefix("dlcourse.sweeps.slurm.JobFailed: ")


def _error_line(e: Any) -> str:
    from dlcourse.sweeps.jobs import error_line

    return error_line(e) if isinstance(e, BaseException) else str(e)


def _loads(path: Path) -> bool:
    """A checkpoint that the time-limit signal did not catch half-written (torch's files are zip archives)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False
