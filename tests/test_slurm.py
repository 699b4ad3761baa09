"""Sweeps on a real SLURM scheduler: the single-node cluster of scripts/slurm_local.sh (no accounting
daemon, so no sacct: the sweep must do without it). `.ci/run` starts it; without one these tests
skip, saying how to start it.

    bash scripts/slurm_local.sh start && python -m pytest -m slurm tests/test_slurm.py

The time-limit test does not wait for a real limit: it sends the job the signal SLURM sends
`signal_delay_s` before the limit (submitit's own way to test this, `scancel --signal=USR2`),
once the job has written a checkpoint; the sbatch file is checked to ask SLURM for that signal.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli, run_here, slurm_cluster_reason
from test_readme import readme_command

pytestmark = pytest.mark.slurm

TINY = ["experiment=gaussian_mlp", "data.n_train=200", "data.n_val=200", "data.n_test=200", "trainer.max_epochs=2",
        "data.batch_size=50", "trainer.enable_progress_bar=false", "~callbacks.model_summary", "~callbacks.figures"]
CPU = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.poll_s=0.5"]
# A job that runs until it is cancelled (a few ms per epoch).
ENDLESS = "trainer.max_epochs=100000"


@pytest.fixture(scope="module", autouse=True)
def cluster():
    reason = slurm_cluster_reason()
    if reason:
        pytest.skip(reason)


def sweep_of(root: Path) -> Path:
    (sweep,) = (root / "outputs" / "gaussian_mlp" / "multirun").glob("*")
    return sweep


def rows_of(sweep: Path) -> dict[str, dict]:
    with open(sweep / "summary.csv") as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def slurm_id(sweep: Path, job: int) -> str:
    """The SLURM id of a sweep's job (array task `<array>_<job>`), from submitit's folders."""
    folders = [p.name for p in (sweep / ".submitit").iterdir() if list(p.glob("*_submitted.pkl"))]
    (found,) = [f for f in folders if re.fullmatch(rf"\d+_{job}", f) or (f.isdigit() and len(folders) == 1)]
    return found


def scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def wait_for(predicate, what: str, limit: float = 120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "DLCOURSE_ROOT": str(cwd), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlcourse", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def running_job(root: Path, job: int) -> str:
    """Wait until the sweep's job has trained an epoch; its SLURM id."""
    run = wait_for(lambda: next((root / "outputs" / "gaussian_mlp" / "multirun").glob(f"*/{job}/checkpoints/last.ckpt"),
                                None), f"job {job} to write last.ckpt")
    return slurm_id(run.parents[2], job)


def test_grid_sweep_and_a_failing_job(tmp_path, capfd):
    """Two jobs, one diverges: the other completes with the metrics of the same run made locally, the
    failed one is `failed` with its error line and exit code 1 in SLURM (not COMPLETED 0:0)."""
    r = run_here(["-m", *CPU, *TINY, "optimizer.lr=0.1,1e6"], tmp_path, capfd)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    assert "1 of 2 jobs failed" in r.stderr
    sweep = sweep_of(tmp_path)
    rows = rows_of(sweep)
    assert rows["0"]["status"] == "completed" and rows["1"]["status"] == "failed"
    assert "non-finite" in rows["1"]["error"]
    assert "failed: the loss became non-finite" in (sweep / "summary.md").read_text()
    assert "Sorted by `val/acc` (maximize)" in (sweep / "summary.md").read_text()
    failed = scontrol(slurm_id(sweep, 1))
    assert failed["JobState"] == "FAILED" and failed["ExitCode"] != "0:0", failed
    assert scontrol(slurm_id(sweep, 0))["JobState"] == "COMPLETED"
    log = (sweep / "0" / "train.log").read_text()
    assert "[dlcourse][INFO] - summary:" in log and "Trainer.fit" in log  # the run's own lines

    local = tmp_path / "local"
    local.mkdir()
    r = run_here([*TINY, "optimizer.lr=0.1", "trainer.accelerator=cpu"], local, capfd)
    assert r.returncode == 0, r.stderr[-3000:]
    (metrics,) = local.glob("outputs/gaussian_mlp/*/metrics.json")
    assert json.loads((sweep / "0" / "metrics.json").read_text())["val"] == json.loads(metrics.read_text())["val"]


def test_cancelled_jobs_do_not_stop_the_others(tmp_path):
    """scancel on a running job and on one still queued: the sweep waits for the third, marks both
    `cancelled` (the queued one with its overrides, though it never started) and exits 1;
    dlcourse-summary later says the same and exits 1."""
    proc = start(["-m", *CPU, "hydra.launcher.array_parallelism=2", *TINY, "trainer.max_epochs=300,100000,3"], tmp_path)
    try:
        running = running_job(tmp_path, 1)
        queued = f"{running.split('_')[0]}_2"
        assert scontrol(queued)["JobState"] == "PENDING"  # 2 at a time: it waits for job 0
        subprocess.run(["scancel", queued, running], check=True)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-3000:]
    assert "2 of 3 jobs did not complete (1 completed, 0 failed, 0 incomplete, 2 cancelled)" in err
    sweep = sweep_of(tmp_path)
    rows = rows_of(sweep)
    assert [rows[j]["status"] for j in "012"] == ["completed", "cancelled", "cancelled"]
    assert rows["1"]["error"].startswith("CANCELLED by SLURM") and rows["2"]["trainer.max_epochs"] == "3"
    r = run_cli([str(sweep)], cwd=tmp_path, module="dlcourse.sweeps.summary")
    assert r.returncode == 1 and "| cancelled: CANCELLED by SLURM" in r.stdout, r.stdout + r.stderr


def test_time_limit_requeues_and_resumes_exactly(tmp_path):
    """Job 0 gets the time-limit signal after its first epochs: it requeues itself, resumes from
    last.ckpt and ends with the same metrics as job 1, the same run unbroken."""
    limits = ["hydra.launcher.timeout_min=3", "hydra.launcher.signal_delay_s=60", "hydra.launcher.max_num_timeout=1"]
    proc = start(["-m", *CPU, *limits, *TINY, "data.n_train=2000", "data.batch_size=10", "trainer.max_epochs=12",
                  "trainer.enable_model_summary=false,true"], tmp_path)
    try:
        job = running_job(tmp_path, 0)
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends 60 s before the limit
        # SLURM holds a requeued job back for cred_expire (the node refuses the job's revoked credential
        # until then: a start forced earlier fails the job): 10 s on the local cluster, 2 min by default.
        wait_for(lambda: scontrol(job)["JobState"] == "PENDING" and scontrol(job)["Restarts"] == "1", "the requeue")
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    sweep = sweep_of(tmp_path)
    script = next((sweep / ".submitit").rglob("*submission.sh")).read_text()
    assert "#SBATCH --signal=USR2@60" in script and "#SBATCH --time=3" in script
    assert scontrol(job)["Restarts"] == "1"
    assert "this job is timed-out" in (sweep / ".submitit" / job / f"{job}_0_log.err").read_text()
    log = (sweep / "0" / "train.log").read_text()
    assert "time limit near: requeued, resuming from" in log and "resuming from" in log
    resumed, unbroken = (json.loads((sweep / j / "metrics.json").read_text()) for j in ("0", "1"))
    assert resumed["status"] == unbroken["status"] == "completed" and resumed["epochs"] == 12
    assert resumed["val"] == unbroken["val"] and resumed["test"] == unbroken["test"]


def test_ddp_job_with_two_ranks(tmp_path, capfd):
    """The README's DDP job: trainer=ddp_cpu with tasks_per_node=2; srun starts both ranks, one run directory."""
    argv = readme_command("slurm_cpu hydra.launcher.tasks_per_node=2 hydra.launcher.cpus_per_task=1 trainer=ddp_cpu "
                          "experiment=gaussian_mlp")
    assert "hydra.launcher.tasks_per_node=2" in argv and "trainer=ddp_cpu" in argv
    r = run_here([*argv, "hydra.launcher.poll_s=0.5", *TINY[1:]], tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = sweep_of(tmp_path)
    assert rows_of(sweep)["0"]["status"] == "completed"
    job = slurm_id(sweep, 0)
    assert scontrol(job)["NumTasks"] == "2"
    logs = (sweep / ".submitit" / job).glob("*_log.err")
    assert sorted(p.name for p in logs) == [f"{job}_0_log.err", f"{job}_1_log.err"]
    assert "MEMBER: 1/2" in (sweep / "0" / "train.log").read_text()  # Lightning's "Initializing distributed"


@pytest.mark.parametrize("sig, code, cancel", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)])
def test_interrupting_the_sweep(tmp_path, sig, code, cancel):
    """SIGTERM / Ctrl-C on dlcourse-train: it says which jobs still run and how to cancel them (or
    cancels them, hydra.launcher.cancel_on_interrupt=true); summary.md is written either way."""
    proc = start(["-m", *CPU, f"hydra.launcher.cancel_on_interrupt={str(cancel).lower()}", *TINY, ENDLESS,
                  "optimizer.lr=0.1"], tmp_path)
    job = running_job(tmp_path, 0)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        subprocess.run(["scancel", job])
    assert proc.returncode == code, out[-2000:] + err[-3000:]
    if cancel:
        assert f"cancelled 1 SLURM jobs: {job} (running)" in err
        wait_for(lambda: scontrol(job)["JobState"] == "CANCELLED", "the job to be cancelled", 60)
    else:
        assert f"still queued or running: {job} (running)" in err and f"scancel {job}" in err
    md = (sweep_of(tmp_path) / "summary.md").read_text()
    assert "1 jobs: 0 completed, 0 failed, 1 incomplete" in md


@pytest.mark.parametrize("args, error", [
    (["hydra.launcher.cpus_per_task=8"], "error: hydra.launcher.cpus_per_task=8 is invalid: at most 2 with "
                                         "tasks_per_node=1: the largest node of partition (default) has 2 CPUs"),
    (["hydra/launcher=slurm_gpu", "hydra.launcher.gpus_per_node=null"],
     "error: hydra.launcher.tasks_per_node=None is invalid: a positive whole number (slurm_gpu: it follows"),
    (["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1"], "error: hydra.launcher.gpus_per_node=1 is "
                                                                 "invalid: null: partition (default) has no GPUs"),
    (["trainer=ddp", "trainer.accelerator=cpu", "hydra.launcher.tasks_per_node=2"],
     "error: hydra.launcher.tasks_per_node=2 is invalid: trainer.devices=1 processes"),
    (["trainer=ddp_cpu"], "error: hydra.launcher.tasks_per_node=1 is invalid: trainer.devices=2 processes"),
    (["hydra.launcher.partition=gpu"], "error: hydra.launcher.partition='gpu' is invalid: a partition of this "
                                       "cluster: debug"),
    (["hydra.launcher.timeout_min=1"], "error: hydra.launcher.signal_delay_s=120 is invalid: between 1 and the"),
])
def test_contradictory_settings_are_one_line_before_submission(tmp_path, args, error):
    launcher = CPU[1:] if args[0].startswith("hydra/launcher=") else CPU
    r = run_cli(["-m", *launcher, *TINY, *args, "optimizer.lr=0.1,0.5"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(error), r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # nothing submitted, nothing written


def test_local_cluster_script_is_idempotent():
    for _ in range(2):
        r = subprocess.run(["bash", str(REPO / "scripts" / "slurm_local.sh"), "start"], capture_output=True, text=True)
        assert r.returncode == 0 and "slurm_local:" in r.stdout, r.stdout + r.stderr
    assert subprocess.run(["bash", str(REPO / "scripts" / "slurm_local.sh"), "status"]).returncode == 0
