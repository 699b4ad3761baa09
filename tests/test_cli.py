"""The command line as a user meets it: one-line errors, divergence, kill-and-resume, dlcourse-eval.
Commands run in this process (`run_in_process`) unless the process is the point: exit codes of the real
console script, a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, run_in_process
from dlcourse.app import main
from dlcourse.evaluate import main as eval_main

TINY = ["experiment=gaussian_mlp", "data.n_train=300", "data.n_val=100", "data.n_test=300",
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]

# The catalogue of bad inputs (each one line naming the key or file) is tests/test_integrity.py's.


def test_bad_input_through_the_real_cli_writes_nothing(tmp_path):
    result = run_cli(["model=transformer"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Traceback" not in result.stderr and "model=transformer" in result.stderr
    result = run_cli([*TINY, "optimizer.lr=0"], tmp_path)
    assert result.returncode == 2 and "optimizer.lr=0" in result.stderr
    assert not (tmp_path / "outputs").exists()  # nothing created, nothing overwritten


def test_divergence_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path, capfd):
    result = run_in_process(main, [*TINY, "trainer.max_epochs=5", "optimizer.lr=1e6"], tmp_path, capfd)
    assert result.returncode == 1, result.stderr[-2000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert "non-finite" in last_line and "epoch" in last_line and "lower learning rate" in last_line
    assert "ended: diverged in epoch " in result.stdout and "of 5 (the loss became nan or inf)" in result.stdout
    (run,) = (tmp_path / "outputs" / "gaussian_mlp").iterdir()
    assert not (run / "metrics.json").exists()
    import torch

    ckpts = list((run / "checkpoints").glob("*.ckpt"))
    assert ckpts, "the last good checkpoint stays"
    for ckpt in ckpts:
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values())


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_kill_and_resume_gives_the_same_metrics(tmp_path, capfd):
    args = ["experiment=gaussian_mlp", "data.n_train=3000", "data.n_val=500", "data.n_test=1000",
            "data.batch_size=32", "trainer.max_epochs=6", "model.dropout=0.2", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", "seed=7"]
    unbroken_dir, broken_dir = tmp_path / "a", tmp_path / "b"
    unbroken_dir.mkdir()
    broken_dir.mkdir()
    assert run_in_process(main, args, unbroken_dir, capfd).returncode == 0
    (run,) = (unbroken_dir / "outputs" / "gaussian_mlp").iterdir()
    expected = json.loads((run / "metrics.json").read_text())

    env = {**os.environ, "DLCOURSE_ROOT": str(broken_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "dlcourse", *args], cwd=broken_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(broken_dir / "outputs" / "gaussian_mlp", proc)
    (run,) = (broken_dir / "outputs" / "gaussian_mlp").iterdir()
    _wait_for(run / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists(), "the run was killed before it finished"

    resumed = run_in_process(main, [*args, "ckpt_path=last"], broken_dir, capfd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = json.loads((run / "metrics.json").read_text())  # resumed in the same run directory
    assert got["epochs"] == expected["epochs"]
    for split in ("val", "test"):
        for key, value in expected[split].items():
            assert got[split][key] == pytest.approx(value, abs=1e-6), key


def test_resume_errors_are_one_line(tmp_path, capfd):
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"not a checkpoint")
    result = run_in_process(main, [*TINY, f"ckpt_path={bad}"], tmp_path, capfd)
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_in_process(main, ["experiment=gaussian_mlp", "ckpt_path=last"], tmp_path, capfd)  # no earlier runs
    assert result.returncode == 2 and "no last.ckpt" in result.stderr


def test_mismatched_checkpoint_is_refused(tmp_path, capfd):
    assert run_in_process(main, TINY, tmp_path, capfd).returncode == 0
    (run,) = (tmp_path / "outputs" / "gaussian_mlp").iterdir()
    result = run_in_process(main, [f"ckpt_path={run}", "model.hidden=[7]"], tmp_path, capfd)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "does not fit" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_eval_reports_the_same_test_metrics_and_predicts(tmp_path, capfd):
    assert run_in_process(main, ["experiment=iris_mlp", "trainer.max_epochs=30", "trainer.enable_progress_bar=false"],
                          tmp_path, capfd).returncode == 0
    (run,) = (tmp_path / "outputs" / "iris_mlp").iterdir()
    trained = json.loads((run / "metrics.json").read_text())["test"]
    result = run_in_process(eval_main, [f"ckpt_path={run}"], tmp_path, capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((run / "eval_test.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"])
    assert evaluated["n_test"] == 30 and evaluated["test_acc_ci95"] == json.loads((run / "metrics.json").read_text())["test_acc_ci95"]
    inputs = tmp_path / "flowers.csv"
    inputs.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.9,3.1,5.8,2.3\n")
    result = run_in_process(eval_main, [f"ckpt_path={run}", f"predict={inputs}"], tmp_path, capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (tmp_path / "flowers_predictions.csv").read_text().splitlines()
    assert lines[0].endswith("prediction,prob_setosa,prob_versicolor,prob_virginica")
    assert lines[1].split(",")[4] == "setosa" and lines[2].split(",")[4] == "virginica"
    bad = run_in_process(eval_main, [f"ckpt_path={run}", "predict=missing.csv"], tmp_path, capfd)
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_early_stopping_is_reported_and_train_longer_trains_longer(tmp_path, capfd):
    args = ["experiment=iris_mlp", "callbacks.early_stopping.patience=3", "trainer.enable_progress_bar=false",
            "~callbacks.model_summary", "~callbacks.figures"]
    first = run_in_process(main, args, tmp_path, capfd)
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "iris_mlp").iterdir()
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["stopped_early"] and stopped["epochs"] < 200
    best = int(stopped["val"]["epoch"])  # counted from 1, as the console counts
    assert f"ended: early stopping at epoch {stopped['epochs']} of 200 (no improvement for its patience); " \
           f"best epoch {best}, the one tested" in " ".join(first.stdout.split())
    log = (run / "train.log").read_text()
    assert "GPU available" in log and "test accuracy" in log  # Lightning's lines and the summary
    longer = run_in_process(main, [f"ckpt_path={run}", "trainer.max_epochs=400"], tmp_path, capfd)
    assert longer.returncode == 0, longer.stderr[-2000:]
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["epochs"] >= stopped["epochs"] + 3  # patience counts from the resume point
    nothing = run_in_process(main, [f"ckpt_path={run}", f"trainer.max_epochs={resumed['epochs']}"], tmp_path, capfd)
    assert nothing.returncode == 2 and "nothing left to train" in nothing.stderr
