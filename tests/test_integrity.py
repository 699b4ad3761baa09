"""Runs that cannot be damaged: files from others are data (a crafted checkpoint or run directory
cannot run code or write a file), a failed command touches nothing, a busy run directory is refused,
a stale lock is taken over, and a catalogue of bad inputs each ends in a short message."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import run_here, write_table

TINY = ["experiment=iris_mlp", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "~callbacks.model_summary",
        "~callbacks.figures", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    assert run_here(TINY, root, None).returncode == 0
    (run,) = (root / "outputs" / "iris_mlp").iterdir()
    return run


def fingerprint(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def copy_run(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(to)], check=True)
    return to


def test_a_crafted_checkpoint_cannot_write_a_file(finished_run, tmp_path, capfd):
    victim = tmp_path / "pwned.txt"
    ckpt = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["dlcourse_config"]["data"]["standardize"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(ckpt, crafted)
    result = run_here([f"ckpt_path={crafted}"], tmp_path, capfd, module="dlcourse.evaluate")  # eval builds its stored config
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "builtins.open" in line and "not a class dlcourse may build" in line
    result = run_here([*TINY, f"ckpt_path={crafted}", "trainer.max_epochs=4"], tmp_path, capfd)  # train-resume
    assert result.returncode == 2 and "builtins.open" in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "outputs").exists()
    assert not victim.exists()


@pytest.mark.parametrize("override", ["+callbacks.evil={_target_:builtins.open,file:VICTIM,mode:w}",
                                      "+hydra.job_logging.handlers.x={_target_:builtins.open,file:VICTIM,mode:w}",
                                      "callbacks.model_checkpoint.dirpath=VICTIM"])
def test_a_crafted_run_directory_cannot_write_a_file(finished_run, tmp_path, override, capfd):
    run = copy_run(finished_run, tmp_path / "run")
    victim = tmp_path / "pwned"
    saved = OmegaConf.load(run / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create([*saved, override.replace("VICTIM", str(victim))]), run / ".hydra" / "overrides.yaml")
    before = fingerprint(run)
    result = run_here([f"ckpt_path={run}", "trainer.max_epochs=5"], tmp_path, capfd)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1
    assert not victim.exists() and fingerprint(run) == before


def test_a_failed_command_leaves_the_run_untouched_and_resumable(finished_run, tmp_path, capfd):
    run = copy_run(finished_run, tmp_path / "run")
    before = fingerprint(run)
    for bad in (["model.hidden=[32]", "trainer.max_epochs=5"], ["model.dropout=2", "trainer.max_epochs=5"],
                ["trainer.max_epochs=2"], ["data=csv"]):
        result = run_here([f"ckpt_path={run}", *bad], tmp_path, capfd)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
        assert fingerprint(run) == before, bad
    result = run_here([f"hydra.run.dir={run}", *TINY], tmp_path, capfd)  # a new run into it
    assert result.returncode == 2 and "holds another run" in result.stderr and fingerprint(run) == before
    resumed = run_here([f"ckpt_path={run}", "trainer.max_epochs=5"], tmp_path, capfd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 5
    assert oct((run / "metrics.json").stat().st_mode & 0o777) == oct((run / "train.log").stat().st_mode & 0o777)


def test_a_busy_run_directory_is_refused_and_a_stale_lock_taken_over(tmp_path, capfd):
    """Synchronised on events only: the first run's lock file, then its end by SIGTERM (a run of 100,000
    epochs: no machine is fast enough for it to end on its own first)."""
    import signal
    import socket
    import time

    run = tmp_path / "busy"
    args = ["experiment=gaussian_mlp", "data.n_train=500", "data.n_val=100", "data.n_test=100", "trainer.max_epochs=100000",
            "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "~callbacks.figures", "logger=none",
            f"hydra.run.dir={run}"]
    env = {**os.environ, "DLCOURSE_ROOT": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-m", "dlcourse", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300  # only against a run that hangs
        while not (run / "checkpoints" / "last.ckpt").exists():
            assert first.poll() is None and time.time() < deadline, "the first run should be running"
            time.sleep(0.05)
        assert (run / ".dlcourse.lock").read_text().split()[0] == str(first.pid)
        second = run_here(args, tmp_path, capfd)
        assert second.returncode != 0 and "is in use by process" in second.stderr, second.stderr[-2000:]
        assert len(second.stderr.strip().splitlines()) == 1 and str(first.pid) in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 143, first.stderr.read()[-2000:]
    finally:
        first.kill()
    assert not (run / ".dlcourse.lock").exists() and not (run / "metrics.json").exists()
    (run / ".dlcourse.lock").write_text(f"999999 {socket.gethostname()} 2026-01-01 00:00:00\n")  # a dead process
    epochs = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1
    resumed = run_here([f"ckpt_path={run}", f"trainer.max_epochs={epochs + 1}"], tmp_path, capfd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == epochs + 1
    assert not (run / ".dlcourse.lock").exists()


def test_a_checkpoint_outside_a_run_resumes_where_the_command_says(finished_run, tmp_path, capfd):
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes((finished_run / "checkpoints" / "last.ckpt").read_bytes())
    target = tmp_path / "here"
    result = run_here([*TINY, f"ckpt_path={loose}", "trainer.max_epochs=4", f"hydra.run.dir={target}"], tmp_path, capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (target / "metrics.json").is_file() and not (tmp_path / "outputs").exists()


# -- the catalogue: every bad input ends in a few lines, no traceback, no run directory ----------------
CSV = "{table}"
TRAIN = [
    ["model=transformer"], ["optimizer=lbfgs"], ["scheduler=warmup"], ["data=imagenet"], ["trainer=tpu_pod"],
    ["callbacks=most"], ["logger=wandb"], ["experiment=nope"], ["hparams_search=nope"], ["optimiser=adam"],
    ["lr=0.1"], ["model.hiden=[10]"], ["+model.hiden=3"], ["model=lstm"], ["model.hidden=[10"],
    ["optimizer.lr=0.1,0.2"], ["optimizer.lr=-1"], ["optimizer.lr=abc"], ["optimizer.lr=0"],
    ["optimizer.weight_decay=-0.1"], ["optimizer=sgd", "optimizer.momentum=1.5"], ["optimizer=sgd", "optimizer.nesterov=true"],
    ["data.batch_size=0"], ["data.batch_size=half"], ["data.batch_size=-3"], ["data.eval_batch_size=0"],
    ["task.steps_per_call=0"], ["model.dropout=1.5"], ["model.dropout=-0.1"], ["model.hidden=[]"], ["model.hidden=[0]"],
    ["model.hidden=10"], ["model.activation=swish"], ["model.init=he"], ["model.batchnorm=maybe"],
    ["task.loss=hinge"], ["task.loss=mse"], ["task.l1=-1"], ["task.gradient_clip_val=0"], ["task.scheduler_interval=batch"],
    ["trainer.max_epochs=0"], ["trainer.max_epochs=ten"], ["trainer.accelerator=tpu2"], ["trainer.precision=8"],
    ["trainer.devices=0"], ["trainer.limit_train_batches=0"], ["trainer=gpu"], ["trainer.check_val_every_n_epoch=0"],
    ["callbacks.early_stopping.patience=0"], ["callbacks.early_stopping.monitor=val/nosuch"],
    ["callbacks.early_stopping.mode=up"], ["callbacks.model_checkpoint.monitor=val/nosuch"], ["optimized_metric=val/nosuch"],
    ["optimized_mode=up"], ["seed=-1"], ["seed=abc"], ["test=maybe"], ["cv.folds=1"], ["cv.folds=1000"],
    ["cv.refit=true"], ["cv.folds=5", "cv.refit=maybe"], ["cv.folds=5", "cv.refit=true", "scheduler=plateau"],
    ["cv.folds=3", "ckpt_path=last"], ["ckpt_path=last"], ["ckpt_path=/no/such.ckpt"], ["ckpt_path={garbage}"],
    ["trainer.batch_size=32"], ["loss=mae"], ["optimizer.l1=0.1"], ["trainer.gradient_clip_val=1.0"],
    ["scheduler.interval=step"], ["model=cnn"], ["model=rnn"], ["data=csv"], ["data=csv", "data.path=nope.csv", "data.target=y"],
    ["data=csv", f"data.path={CSV}", "data.target=nope"], ["data=csv", f"data.path={CSV}", "data.target=label", "data.task=bogus"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "data.features=[nope]"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "task.loss=bce"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "data.val_fraction=0.6", "data.test_fraction=0.5"],
    ["data=csv", "data.path={header_only}", "data.target=label"], ["data=csv", "data.path={three_rows}", "data.target=label"],
    ["data=mnist", "data.root={tmp}/nowhere"], ["data=image_folder", "data.root={tmp}/nowhere"],
    ["data=sine", "data.horizon=0"], ["data=sine", "data.n_series=3"], ["data=sine", "model=rnn", "model.head=sideways"],
    ["data=sine", "model=rnn", "model.cell=transformer"], ["experiment=sine_linear", "model.head=seq2seq"],
    ["--config-dir", "{tmp}/no_such_dir"], ["hydra.run.dir={file}/run"], ["+callbacks.evil={{_target_:os.system}}"],
    ["model._target_=os.system"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "data.features=[weight,label]"],
    ["data=csv", "data.path={only_target}", "data.target=label"], ["data=csv", "data.path={huge}", "data.target=label"],
    ["data=csv", "data.path={mixed_decimals}", "data.target=label"],
    ["data=csv", "data.path={three_rows}", "data.target=label", "data.missing=drop"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "data.decimal=comma"],
    ["task.class_weight=heavy"], ["data=csv", f"data.path={CSV}", "data.target=label", "task.class_weight=[1,2]"],
    # issue 25: faults of range, devices, Hydra's own flags and sweep sizes
    ["trainer.accelerator=tpu"], ["seed=4294967296"], ["seed=2**32"], ["optimizer.lr=inf"], ["optimizer.lr=nan"],
    ["optimizer.lr=1e400"], ["callbacks.early_stopping.min_delta=nan"], ["--config-name", "nope"], ["--config-name=nope"],
    ["-cn", "nope"], ["--config-path", "{tmp}/no_such_dir"], ["-m", "optimizer.lr=range(0,1e9)"],
    ["-m", "seed=1,2", "sweep.max_jobs=1"], ["sweep.max_jobs=0"], ["sweep.continue=maybe"],
    # folded in from the feature files (lr finder, threads, sequences, class weights)
    ["lr_find.min_lr=2", "lr_find.max_lr=1"], ["lr_find.mode=cubic"], ["+lr_find.typo=1"], ["+lr_find.min_lrr=1e-5"],
    ["lr_find.num_training=5"], ["lr_find.enabled=true", "trainer=ddp_cpu"],
    ["lr_find.enabled=true", "lr_find.train=false", "cv.folds=3"], ["lr_find.typo=1"],
    ["threads=0"], ["threads=many"], ["threads=1.5"],
    ["experiment=sine_rnn", "model.head=seq2seq", "data.targets=last"], ["experiment=sine_rnn", "data.n_steps=-1"],
    ["data=csv", f"data.path={CSV}", "data.target=label", "task.class_weight=[1,2,3,4]"],
    ["data=csv", f"data.path={CSV}", "data.target=height", "data.task=regression", "optimized_metric=val/loss",
     "task.class_weight=balanced"],
]
EVAL = [[], ["ckpt_path=/no/such"], ["ckpt_path={garbage}"], ["ckpt_path={run}", "split=train"],
        ["ckpt_path={run}", "data.bogus=1"], ["ckpt_path={run}", "trainer.precision=bogus"], ["ckpt_path={run}", "model.x=1"],
        ["ckpt_path={run}", "predict=/no/such.csv"], ["ckpt_path={run}", "predict={table}"], ["nonsense"],
        ["ckpt_path={run}", "trainer.accelerator=tpu"], ["ckpt_path={run}", "output={run}"],
        ["ckpt_path={run}", "output={run}/metrics.json", "overwrite=true"], ["ckpt_path={run}", "output={file}"],
        ["ckpt_path={run}", "overwrite=maybe"],
        *([] if torch.cuda.is_available() else [["ckpt_path={run}", "trainer.accelerator=gpu"]])]
SUMMARY = [[], ["/no/such/dir"], ["{tmp}"]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, finished_run) -> dict:
    tmp = tmp_path_factory.mktemp("catalogue")
    (tmp / "garbage.ckpt").write_bytes(b"not a checkpoint")
    (tmp / "header_only.csv").write_text("a,b,label\n")
    (tmp / "three_rows.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    (tmp / "file").write_text("a regular file")
    (tmp / "only_target.csv").write_text("label\n" + "x\ny\n" * 20)
    (tmp / "huge.csv").write_text("a,b,label\n" + "1,2,x\n3,4,y\n" * 10 + "1e39,2,x\n")
    (tmp / "mixed_decimals.csv").write_text("a;b;label\n" + "1,5;2.5;x\n3,5;4.5;y\n" * 10)
    return {"tmp": tmp, "table": write_table(tmp / "t.csv"), "garbage": tmp / "garbage.ckpt", "run": finished_run,
            "header_only": tmp / "header_only.csv", "three_rows": tmp / "three_rows.csv", "file": tmp / "file",
            **{name: tmp / f"{name}.csv" for name in ("only_target", "huge", "mixed_decimals")}}


# What each message must name when the last argument's key (or, for a path, the file) is not it; from
# tests/test_cli.py's former list, also what is allowed. Every other entry's line names that key or file.
NAMES = {
    ("model=transformer",): ["model=transformer", "available: "],
    ("optimizer=lbfgs",): ["optimizer=lbfgs", "available: adam, adam_lr1e-2, adam_lr3e-3, adamw, adamw_lr2e-3_wd1e-4, "],
    ("optimizer.lr=-1",): ["optimizer.lr=-1", "> 0"], ("optimizer.lr=abc",): ["optimizer.lr='abc'", "must be a"],
    ("data.batch_size=0",): ["data.batch_size=0", '"full"'], ("data.batch_size=half",): ["data.batch_size='half'", '"full"'],
    ("model.dropout=1.5",): ["model.dropout=1.5", "< 1"], ("model.hidden=[]",): ["model.hidden=[]", "non-empty list"],
    ("model.activation=swish",): ["model.activation='swish'", "relu, leaky_relu, tanh, sigmoid, gelu"],
    ("task.loss=hinge",): ["task.loss='hinge'", "auto, bce, cross_entropy, mse, mae, huber"],
    ("task.loss=mse",): ["task.loss='mse'", "does not fit a classification task"],
    ("trainer.max_epochs=0",): ["trainer.max_epochs=0", ">= 1"], ("+model.hiden=3",): ["model.hiden=3", "did you mean model.hidden?"],
    ("optimizer.weight_decay=-0.1",): ["optimizer.weight_decay=-0.1", ">= 0"], ("data=csv",): ["data.path='???'", "is required"],
    ("model=cnn",): ["model=cnn takes images", "models for rows of numeric features: linear, mlp"],
    ("lr=0.1",): ["lr=0.1", "did you mean optimizer.lr?"], ("model.hiden=[10]",): ["model.hiden=[10]", "did you mean model.hidden?"],
    ("optimiser=adam",): ["optimiser=adam", "did you mean optimizer=adam?"],
    ("model=lstm",): ["model=lstm", "did you mean model=rnn model.cell=lstm?"],
    ("model.hidden=[10",): ["'model.hidden=[10'", "not a valid override"], ("optimizer.lr=0.1,0.2",): ["optimizer.lr=0.1,0.2", "-m (--multirun)"],
    ("trainer.batch_size=32",): ["trainer.batch_size=32", "use data.batch_size=32"], ("loss=mae",): ["loss=mae", "use task.loss=mae"],
    ("optimizer.l1=0.1",): ["optimizer.l1=0.1", "use task.l1=0.1"],
    ("trainer.gradient_clip_val=1.0",): ["trainer.gradient_clip_val=1.0", "task.gradient_clip_val"],
    ("--config-dir", "{tmp}/no_such_dir"): ["--config-dir={tmp}/no_such_dir", "no such folder"],
    ("trainer=gpu",): ["trainer.accelerator='gpu'", "no GPU"],
    ("data=csv", "data.path=nope.csv", "data.target=y"): ["data.path='nope.csv'", "no such file"],
    ("data=csv", f"data.path={CSV}", "data.target=label", "data.val_fraction=0.6", "data.test_fraction=0.5"): ["data.val_fraction=0.6"],
    ("data=csv", "data.path={header_only}", "data.target=label"): ["data.path='{header_only}'", "no rows"],
    ("data=csv", "data.path={three_rows}", "data.target=label"): ["cannot be split", "data.val_fraction=", "data.test_fraction="],
    ("data=csv", "data.path={only_target}", "data.target=label"): ["data.path='{only_target}'"],
    ("data=csv", "data.path={huge}", "data.target=label"): ["{huge}", "1e+39"],
    ("data=csv", "data.path={mixed_decimals}", "data.target=label"): ["{mixed_decimals}", "data.decimal"],
    ("data=sine", "data.n_series=3"): ["optimized_metric='val/acc'", "regression"],
    ("trainer.accelerator=tpu",): ["trainer.accelerator='tpu'", "no TPU"], ("seed=4294967296",): ["seed=4294967296", "<= 4294967295"],
    ("seed=2**32",): ["seed='2**32'", "integer"], ("optimizer.lr=inf",): ["optimizer.lr=inf", "finite"],
    ("optimizer.lr=nan",): ["optimizer.lr=nan", "finite"], ("optimizer.lr=1e400",): ["optimizer.lr=inf", "finite"],
    ("callbacks.early_stopping.min_delta=nan",): ["callbacks.early_stopping.min_delta=nan", "finite"],
    ("--config-name", "nope"): ["--config-name=nope", "nope.yaml"], ("-cn", "nope"): ["--config-name=nope"],
    ("--config-path", "{tmp}/no_such_dir"): ["--config-path={tmp}/no_such_dir", "no such folder"],
    ("-m", "optimizer.lr=range(0,1e9)"): ["sweep.max_jobs=1000", "1,000,000,000 jobs"],
    ("-m", "seed=1,2", "sweep.max_jobs=1"): ["sweep.max_jobs=1", "2 jobs", "sweep.max_jobs=2"],
    ("sweep.max_jobs=0",): ["sweep.max_jobs=0", ">= 1"], ("sweep.continue=maybe",): ["sweep.continue='maybe'", "true or false"],
    ("nonsense",): ["'nonsense'", "key=value"], (): ["ckpt_path", "required"],
    ("ckpt_path={run}", "output={run}"): ["output='{run}'", "is a folder"],
    ("ckpt_path={run}", "output={run}/metrics.json", "overwrite=true"): ["{run}/metrics.json", "run's own metrics.json"],
    ("ckpt_path={run}", "output={file}"): ["output='{file}'", "overwrite=true"],
    ("ckpt_path={run}", "trainer.accelerator=gpu"): ["trainer.accelerator='gpu'", "no GPU"],
}
NAMES.update({  # and what tests/test_compose.py's former list of data errors asked of their lines
    ("data=csv", f"data.path={CSV}", "data.target=label", "task.loss=bce"): ["task.loss", "does not fit this multiclass data"],
    ("data=csv", f"data.path={CSV}", "data.target=nope"): ["data.target", "is not a column"],
    ("data=mnist", "data.root={tmp}/nowhere"): ["{tmp}/nowhere", "MNIST not found"],
    ("data=image_folder", "data.root={tmp}/nowhere"): ["{tmp}/nowhere", "not found"],
    ("lr_find.min_lr=2", "lr_find.max_lr=1"): ["lr_find.min_lr=2"],
    ("+lr_find.min_lrr=1e-5",): ["lr_find.min_lrr=1e-05", "did you mean lr_find.min_lr?"],
    ("lr_find.enabled=true", "trainer=ddp_cpu"): ["lr_find.enabled=True"],
    ("lr_find.enabled=true", "lr_find.train=false", "cv.folds=3"): ["lr_find.train=False"],
    ("lr_find.typo=1",): ["lr_find.typo=1", "min_lr"],
    ("threads=0",): ['threads=0 is invalid: must be "auto" or an integer >= 1'],
    ("threads=many",): ["threads='many' is invalid: must be \"auto\" or an integer >= 1"],
    ("threads=1.5",): ['threads=1.5 is invalid: must be "auto" or an integer >= 1'],
    ("experiment=sine_rnn", "model.head=seq2seq", "data.targets=last"): ["data.targets"],
    ("data=csv", f"data.path={CSV}", "data.target=label", "task.class_weight=[1,2,3,4]"):
        ["task.class_weight", "needs one weight per class, 3 (cat, dog, fox)"],
    ("data=csv", f"data.path={CSV}", "data.target=height", "data.task=regression", "optimized_metric=val/loss",
     "task.class_weight=balanced"):
        ["task.class_weight", "only for classification"],
})
SUMMARY_NAMES = {(): ["sweep_dir"]}


def assert_short_error(main, argv: list[str], root: Path, capsys, monkeypatch, names: list[str] | None = None) -> None:
    """Exit status 2, one `error:` line (a warning about the data may come before it), no traceback, no
    run directory; the line names every one of `names`, or else the last argument's key or file."""
    monkeypatch.setenv("DLCOURSE_ROOT", str(root))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, (argv, err)
    assert "Traceback" not in err and 1 <= len(err.splitlines()) <= 3, err
    line = err.splitlines()[-1]  # argparse's usage line comes before its own `prog: error: ...`
    assert line.startswith("error:") or ": error: " in line, err
    assert [x.startswith("error:") for x in err.splitlines()].count(True) <= 1, err
    if names is None:
        key, _, value = (argv[-1] if argv else "").partition("=")
        names = [value] if "/" in value else [key.lstrip("+~")]
    assert all(n in line for n in names), (names, line)
    assert not (root / "outputs").exists(), argv


def named(table: dict, args: list[str], inputs: dict) -> list[str] | None:
    found = table.get(tuple(args))
    return None if found is None else [n.format(**inputs) for n in found]


@pytest.mark.parametrize("args", TRAIN, ids=lambda a: " ".join(a))
def test_bad_training_input(inputs, tmp_path, capsys, monkeypatch, args):
    from dlcourse.app import main

    assert_short_error(main, ["experiment=iris_mlp", *[a.format(**inputs) for a in args]], tmp_path, capsys, monkeypatch,
                       named(NAMES, args, inputs))


@pytest.mark.parametrize("args", EVAL, ids=lambda a: " ".join(a) or "nothing")
def test_bad_eval_input(inputs, tmp_path, capsys, monkeypatch, args):
    from dlcourse.evaluate import main

    before = {p: p.stat().st_mtime_ns for p in inputs["run"].rglob("*") if p.is_file()}
    assert_short_error(main, [a.format(**inputs) for a in args], tmp_path, capsys, monkeypatch, named(NAMES, args, inputs))
    assert {p: p.stat().st_mtime_ns for p in inputs["run"].rglob("*") if p.is_file()} == before  # nothing written


@pytest.mark.parametrize("args", SUMMARY, ids=lambda a: " ".join(a) or "nothing")
def test_bad_summary_input(inputs, tmp_path, capsys, monkeypatch, args):
    from dlcourse.sweeps.summary import main

    assert_short_error(main, [a.format(**inputs) for a in args], tmp_path, capsys, monkeypatch,
                       named(SUMMARY_NAMES, args, inputs))


def test_the_catalogue_is_large():
    assert len({tuple(a) for a in TRAIN}) + len(EVAL) + len(SUMMARY) >= 120


def test_a_corrupt_checkpoint_is_called_corrupt(finished_run, tmp_path, capfd):
    data = bytearray((finished_run / "checkpoints" / "last.ckpt").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 200):  # damage the middle of the archive
        data[i] ^= 0xFF
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(bytes(data))
    result = run_here([f"ckpt_path={broken}"], tmp_path, capfd, module="dlcourse.evaluate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "corrupt" in result.stderr and "objects other than tensors" not in result.stderr


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_malicious_pickle_is_never_unpickled(tmp_path, capfd):
    victim = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "dlcourse_config": {}, "dlcourse_io": {}, "payload": _Evil(victim)}, evil)
    for module, args in (("dlcourse.evaluate", [f"ckpt_path={evil}"]), ("dlcourse", [*TINY, f"ckpt_path={evil}"])):
        result = run_here(args, tmp_path, capfd, module=module)
        assert result.returncode == 2 and "objects other than tensors" in result.stderr, result.stderr[-2000:]
    assert not victim.exists()


@pytest.mark.parametrize("rank_env", ["LOCAL_RANK", "SLURM_PROCID"])
def test_only_rank_zero_locks_a_run_directory(tmp_path, monkeypatch, rank_env):
    """The other DDP ranks (Lightning's, or srun's tasks under SLURM) write into rank zero's locked
    directory: they must not be refused as a second run."""
    from dlcourse.errors import DlcourseError
    from dlcourse.rundir import LOCK, run_lock

    for key in ("LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    with run_lock(tmp_path, resuming=False):
        assert (tmp_path / LOCK).is_file()
        monkeypatch.setenv(rank_env, "1")
        with run_lock(tmp_path, resuming=True):  # rank 1 while rank 0 holds the lock
            assert (tmp_path / LOCK).is_file()
        monkeypatch.setenv(rank_env, "0")
        with pytest.raises(DlcourseError, match="in use by process"):
            with run_lock(tmp_path, resuming=True):
                pass
    assert not (tmp_path / LOCK).exists()
