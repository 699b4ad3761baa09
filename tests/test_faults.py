"""No ordinary command overwrites a result, and faults end clean (issue 25): a run dir spelled with `..`,
sweep dirs (unique, locked, an earlier sweep refused unless continued on purpose, a size limit),
dlcourse-eval's output=, signals, a full disk. Runs in this process where the process is not the point;
tests of concurrency wait on events (a lock file, a checkpoint), never on how fast a run is."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_in_process
from dlcourse.app import main as train_main
from dlcourse.evaluate import main as eval_main

TINY = ["experiment=iris_mlp", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "~callbacks.model_summary",
        "~callbacks.figures", "trainer.accelerator=cpu", "logger=none"]
# A run that goes on until the test stops it (events, not time, say when): no early stopping, no end in sight.
LONG = ["experiment=gaussian_mlp", "data.n_train=1000", "data.n_val=200", "data.n_test=200", "trainer.max_epochs=100000",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "~callbacks.figures"]


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A finished tiny run, trained in this process."""
    from dlcourse.app import execute

    return execute([*TINY, f"hydra.run.dir={tmp_path_factory.mktemp('done') / 'run'}"])


def one_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """The command failed with one `error:` line that names each of `names`."""
    assert result.returncode not in (0, None), result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert all(n in lines[0] for n in names), (names, lines[0])
    return lines[0]


def test_a_run_dir_spelled_with_dotdot_is_the_run_it_names(done, tmp_path, capfd):
    before = fingerprint(done)
    (tmp_path / "here").mkdir()
    sneaky = f"new/../../{os.path.relpath(done, tmp_path)}"  # from tmp_path/here: up two, into the run
    result = run_in_process(train_main, [*TINY, f"hydra.run.dir={sneaky}"], tmp_path / "here", capfd)
    one_error(result, "hydra.run.dir", str(done), "holds another run")
    assert fingerprint(done) == before and not (tmp_path / "here" / "new").exists()


def _sweep(args, root, capfd):
    return run_in_process(train_main, ["-m", *TINY, "optimizer.lr=0.01,0.02", *args], root, capfd)


def test_sweeps_started_in_the_same_moment_get_their_own_directories(tmp_path, capfd, monkeypatch):
    from hydra.core.utils import setup_globals

    from dlcourse.sweeps import launch

    real = launch.compose_master

    def frozen(overrides):  # both sweeps read the same clock: the same name by time
        OmegaConf.register_new_resolver("now", lambda pattern: "2026-01-01_00-00-00_000000", use_cache=True, replace=True)
        return real(overrides)

    monkeypatch.setattr(launch, "compose_master", frozen)
    try:
        for _ in range(2):
            assert _sweep([], tmp_path, capfd).returncode == 0
    finally:
        setup_globals()  # Hydra's own `now` again
    first, second = sorted((tmp_path / "outputs" / "iris_mlp" / "multirun").iterdir())
    assert (first.name, second.name) == ("2026-01-01_00-00-00_000000", "2026-01-01_00-00-00_000000_1")
    for folder in (first, second):
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["0", "1"]
        assert all(json.loads((folder / j / "metrics.json").read_text())["status"] == "completed" for j in "01")
        assert not list(folder.rglob(".dlcourse.lock"))


def test_a_sweep_into_a_busy_or_finished_sweep_dir_is_refused_unless_continued(tmp_path, capfd, monkeypatch):
    from dlcourse import runs

    target = tmp_path / "sweep"
    target.mkdir()
    (target / ".dlcourse.lock").write_text(f"{os.getpid()} {os.uname().nodename} now\n")  # a sweep running there
    one_error(_sweep([f"hydra.sweep.dir={target}"], tmp_path, capfd), "hydra.sweep.dir", "in use by process")
    (target / ".dlcourse.lock").unlink()
    seen = []
    real_finish = runs.finish

    def finish(prepared, cfg):  # each job runs holding its directory's lock
        seen.append((runs.job_dir(cfg) / ".dlcourse.lock").is_file())
        return real_finish(prepared, cfg)

    monkeypatch.setattr(runs, "finish", finish)
    assert _sweep([f"hydra.sweep.dir={target}"], tmp_path, capfd).returncode == 0
    assert seen == [True, True]
    before = fingerprint(target)
    again = _sweep([f"hydra.sweep.dir={target}/x/.."], tmp_path, capfd)  # `..` resolved: the same directory
    one_error(again, "hydra.sweep.dir", str(target), "sweep.continue=true")
    assert fingerprint(target) == before
    more = run_in_process(train_main, ["-m", *TINY, "optimizer.lr=0.03", f"hydra.sweep.dir={target}", "sweep.continue=true"],
                          tmp_path, capfd)
    assert more.returncode == 0, more.stderr[-2000:]
    after = fingerprint(target)
    assert all(after[k] == v for k, v in before.items() if k.startswith(("0/", "1/")))  # the earlier jobs untouched
    rows = (target / "summary.csv").read_text().splitlines()
    assert len(rows) == 4 and sorted(p.name for p in target.iterdir() if p.is_dir()) == ["0", "1", "2"]
    assert "sweep.continue" not in (target / "summary.md").read_text().split("Rerun it with")[-1]


def test_a_sweep_larger_than_the_limit_is_refused_before_any_job_is_built(tmp_path, capfd):
    started = time.perf_counter()
    result = run_in_process(train_main, ["-m", *TINY, "optimizer.lr=range(0,1e9)", "seed=range(0,1e9)"], tmp_path, capfd)
    one_error(result, "sweep.max_jobs=1000", "1,000,000,000,000,000,000 jobs")
    assert time.perf_counter() - started < 30 and not (tmp_path / "outputs").exists()
    result = run_in_process(train_main, ["-m", *TINY, "seed=1,2,3", "sweep.max_jobs=2"], tmp_path, capfd)
    one_error(result, "sweep.max_jobs=2", "3 jobs", "sweep.max_jobs=3")
    result = run_in_process(train_main, ["-m", *TINY, "seed=1,2,3", "sweep.max_jobs=0"], tmp_path, capfd)
    one_error(result, "sweep.max_jobs=0", ">= 1")
    assert not (tmp_path / "outputs").exists()


def test_the_grid_of_a_big_sweep_is_never_built_whole():
    from dlcourse.sweeps.launch import CHECKED_JOBS, checked_jobs, job_overrides
    from dlcourse.sweeps.sweepdir import grid_size

    overrides = ["optimizer.lr=range(0,1e9)", "seed=1,2", "model=mlp,linear"]
    assert grid_size(overrides) == 4_000_000_000
    jobs = job_overrides(overrides, limit=3)
    assert jobs == [["optimizer.lr=0.0", "seed=1", "model=mlp"], ["optimizer.lr=0.0", "seed=1", "model=linear"],
                    ["optimizer.lr=0.0", "seed=2", "model=mlp"]]  # the last key varies fastest, as in Hydra's grid
    small = ["optimizer.lr=0.1,0.2,0.3", "seed=1,2", "model=mlp,linear"]
    assert [n for n, _ in checked_jobs(small)] == list(range(12))  # a small grid: every job
    big = ["optimizer.lr=0.1,0.2,0.3", "seed=range(1,30)", "model=mlp,linear"]  # 174 jobs
    checked = checked_jobs(big)  # value k of every key in turn, the others at their first values
    assert checked[:4] == [(0, ["optimizer.lr=0.1", "seed=1", "model=mlp"]), (58, ["optimizer.lr=0.2", "seed=1", "model=mlp"]),
                           (2, ["optimizer.lr=0.1", "seed=2", "model=mlp"]), (1, ["optimizer.lr=0.1", "seed=1", "model=linear"])]
    assert len(checked) == 1 + 2 + 28 + 1 <= CHECKED_JOBS and len({n for n, _ in checked}) == len(checked)


def test_a_big_sweep_checks_each_value_and_starts_soon(tmp_path, capfd):
    """A bad value anywhere in a big grid is still one line before any job; Hydra's batches are small."""
    result = run_in_process(train_main, ["-m", *TINY, "seed=range(0,200)", "model.dropout=0.1,0.2,1.5"], tmp_path, capfd)
    one_error(result, "model.dropout=1.5", "in job 2")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("target", "extra", "names"), [
    ("{run}/metrics.json", ["overwrite=true"], ["metrics.json", "run's own"]),
    ("{run}/train.log", ["overwrite=true"], ["train.log", "run's own"]),
    ("{run}/checkpoints/last.ckpt", ["overwrite=true"], ["last.ckpt", "run's own"]),
    ("{run}/checkpoints/new.json", [], ["checkpoints/", "inside the run's own"]),
    ("{run}", [], ["output=", "is a folder"]),
    ("{tmp}/existing.json", [], ["existing.json", "exists", "overwrite=true"]),
    ("{tmp}/existing.json", ["overwrite=maybe"], ["overwrite='maybe'", "true, false"]),
])
def test_eval_never_writes_over_a_file_it_was_not_told_to(done, tmp_path, capfd, target, extra, names):
    (tmp_path / "existing.json").write_text("mine\n")
    before = fingerprint(done)
    output = target.format(run=done, tmp=tmp_path)
    result = run_in_process(eval_main, [f"ckpt_path={done}", f"output={output}", *extra], tmp_path, capfd)
    one_error(result, *names)
    assert fingerprint(done) == before and (tmp_path / "existing.json").read_text() == "mine\n"
    assert not [p for p in [*tmp_path.rglob(".*"), *done.rglob(".*.json.*")] if p.is_file()]  # no temp file left


def test_eval_replaces_a_file_when_told_and_its_own_file_always(done, tmp_path, capfd):
    (tmp_path / "existing.json").write_text("mine\n")
    result = run_in_process(eval_main, [f"ckpt_path={done}", f"output={tmp_path / 'existing.json'}", "overwrite=true"],
                            tmp_path, capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "existing.json").read_text())["split"] == "test"
    for _ in range(2):  # eval_test.json is this command's own file: a second evaluation replaces it
        assert run_in_process(eval_main, [f"ckpt_path={done}"], tmp_path, capfd).returncode == 0
    assert json.loads((done / "eval_test.json").read_text())["split"] == "test"


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    from dlcourse.atomic_files import write_text
    from dlcourse.errors import OutputError

    (tmp_path / "keep.json").write_text("old\n")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'keep.json'}: No space left on device"):
        write_text(tmp_path / "keep.json", "new\n")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"] and (tmp_path / "keep.json").read_text() == "old\n"


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "DLCOURSE_ROOT": str(cwd), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlcourse", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `path` exists (an event of the run), bounded only against a run that hangs."""
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code", "how"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl+C")])
def test_a_signal_ends_the_run_with_one_line_and_it_resumes(tmp_path, sig, code, how, capfd):
    run = tmp_path / "run"
    proc = start([*LONG, f"hydra.run.dir={run}"], tmp_path)
    try:
        wait_for(run / "checkpoints" / "last.ckpt", proc)
        proc.send_signal(sig)
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    assert proc.returncode == code
    one_error(result, how, f"resume with dlcourse-train ckpt_path={run}")
    assert not (run / "metrics.json").exists() and not (run / ".dlcourse.lock").exists()
    assert not list(run.rglob("*.partial"))
    import torch

    epochs = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1
    # The stop needed a process of its own; the resume does not.
    resumed = run_in_process(train_main, [f"ckpt_path={run}", f"trainer.max_epochs={epochs + 1}"], tmp_path, capfd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


def test_a_full_disk_is_one_line_and_the_earlier_checkpoints_stay(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs (mount -t tmpfs) to fill up")
    try:
        run = disk / "run"
        proc = start([*LONG, f"hydra.run.dir={run}"], tmp_path)
        try:
            wait_for(run / "checkpoints" / "last.ckpt", proc)
            fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            finally:
                os.close(fd)
            err = proc.communicate(timeout=120)[1]
        finally:
            proc.kill()
        result = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
        one_error(result, "no space left on the device", str(run), f"ckpt_path={run}")
        assert not list(run.rglob("*.partial")) and not list(run.rglob(".*.json.*"))
        import torch

        assert (run / "checkpoints" / "last.ckpt").exists()
        for ckpt in (run / "checkpoints").iterdir():  # every checkpoint whole: the earlier ones, intact
            assert torch.load(ckpt, weights_only=True)["state_dict"], ckpt
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_make_tensorboard_serves_on_loopback_unless_asked(tmp_path):
    from conftest import REPO

    stamp = tmp_path / "installed"  # newer than pyproject.toml: make takes the install as done
    stamp.touch()                   # (not STAMP=Makefile: make remakes a makefile even under -n)
    for extra, host in (([], "127.0.0.1"), (["HOST=0.0.0.0"], "0.0.0.0")):
        dry = subprocess.run(["make", "-n", "tensorboard", f"STAMP={stamp}", *extra], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert dry.returncode == 0 and f"--host {host}" in dry.stdout and "--bind_all" not in dry.stdout, dry.stdout
