"""Sweeps (issue 5): grid multirun + summary, failure isolation, Optuna with sqlite storage, joblib
and submitit_local launchers, K-fold cross-validation, DDP on CPUs. Tiny configs: CPU, seconds each."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_cli, run_here, run_in_process
from dlcourse.app import main as train_main
from dlcourse.evaluate import main as eval_main
from dlcourse.sweeps.summary import main as summary_main
from dlcourse.sweeps.summary import summarize

TINY = [
    "experiment=gaussian_mlp",
    "data.n_train=200",
    "data.n_val=200",
    "data.n_test=200",
    "trainer.max_epochs=2",
    "data.batch_size=50",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "~callbacks.model_summary",
    "~callbacks.figures",
]


def sweep_dirs(root: Path, name: str = "gaussian_mlp") -> list[Path]:
    return sorted((root / "outputs" / name / "multirun").glob("*"))


def read_summary(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_grid_sweep_summary_failure_and_hparams(tmp_path, capfd):
    """2x2 grid, one learning rate diverges: 4 rows, the diverged jobs failed with their error line,
    the others completed and sorted best first; exit status 1 only after all ran; HParams per job."""
    r = run_here(["-m", *TINY, "optimizer.lr=0.1,1e6", "model.dropout=0,0.25"], tmp_path, capfd)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    assert "2 of 4 jobs failed" in r.stderr
    (sweep,) = sweep_dirs(tmp_path)
    rows = read_summary(sweep)
    assert len(rows) == 4
    assert sorted((row["optimizer.lr"], row["model.dropout"]) for row in rows) == [
        ("0.1", "0"), ("0.1", "0.25"), ("1000000.0", "0"), ("1000000.0", "0.25")]
    done = [row for row in rows if row["status"] == "completed"]
    failed = [row for row in rows if row["status"] == "failed"]
    assert {row["optimizer.lr"] for row in done} == {"0.1"} and len(done) == 2
    assert {row["optimizer.lr"] for row in failed} == {"1000000.0"} and len(failed) == 2
    assert all("non-finite" in row["error"] for row in failed)
    assert rows[:2] == sorted(done, key=lambda row: -float(row["val/acc"]))  # best first (max)
    assert all(row["epochs"] and row["wall_time_s"] for row in done)
    md = (sweep / "summary.md").read_text()
    assert "failed: the loss became non-finite" in md
    assert "dlcourse-train experiment=gaussian_mlp" in md and "optimizer.lr=0.1" in md  # rerun command
    for job in (sweep / d["job"] for d in failed):
        assert json.loads((job / "metrics.json").read_text())["status"] == "failed"

    # HParams: every completed job's TensorBoard run has an hparams session and its final metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for row in done:
        acc = EventAccumulator(str(sweep / row["job"]))
        acc.Reload()
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
        best = EventAccumulator(str(sweep / row["job"] / "best"))
        assert "acc" in best.Reload().Tags()["scalars"]  # the best epoch's val/acc, an HParams column

    # dlcourse-summary rewrites the same files (e.g. for a sweep that was interrupted)
    (sweep / "summary.csv").unlink()
    with pytest.raises(SystemExit) as e:  # exit 1: some jobs failed
        summary_main([str(sweep)])
    assert e.value.code == 1
    assert len(read_summary(sweep)) == 4


def test_summary_of_seed_repeats_and_incomplete_jobs(tmp_path):
    """seed=1,2,3 x two learning rates: mean and std per configuration; a job without metrics.json
    (still running / interrupted) is listed as incomplete."""
    sweep = tmp_path / "sweep"
    values = {("0.1", "1"): 0.90, ("0.1", "2"): 0.92, ("0.1", "3"): 0.94, ("0.01", "1"): 0.80, ("0.01", "2"): 0.82}
    for i, ((lr, seed), acc) in enumerate([*values.items(), (("0.01", "3"), None)]):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(["experiment=iris_mlp", f"optimizer.lr={lr}", f"seed={seed}"]),
                       job / ".hydra" / "overrides.yaml")
        OmegaConf.save(OmegaConf.create({"optimized_mode": "max"}), job / ".hydra" / "config.yaml")
        if acc is not None:
            (job / "metrics.json").write_text(json.dumps({
                "status": "completed", "optimized_metric": "val/acc", "optimized_value": acc,
                "val": {"val/acc": acc, "val/loss": 1 - acc}, "test": {}, "epochs": 3, "wall_time_s": 1.0}))
    result = summarize(sweep)
    assert [r["job"] for r in result["rows"]][:2] == [2, 1] and result["rows"][-1]["status"] == "incomplete"
    groups = {g["config"]["optimizer.lr"]: g for g in result["seeds"]}
    assert groups["0.1"]["n"] == 3 and groups["0.1"]["val/acc mean"] == pytest.approx(0.92)
    assert groups["0.1"]["val/acc std"] == pytest.approx(0.02)
    assert groups["0.01"]["n"] == 2 and groups["0.01"]["val/acc mean"] == pytest.approx(0.81)
    assert (sweep / "summary_seeds.csv").is_file() and "Over seeds" in (sweep / "summary.md").read_text()
    assert result["rerun"] == "dlcourse-train -m experiment=iris_mlp optimizer.lr=0.1 seed=1,2,3"


def test_a_seed_sweep_recommends_the_configuration_with_the_best_mean(tmp_path):
    """The luckiest single seed (lr 0.01, seed 1) belongs to the configuration with the worse mean:
    the best line and the rerun command name lr 0.1 over all its seeds."""
    sweep = tmp_path / "sweep"
    values = {("0.1", "1"): 0.90, ("0.1", "2"): 0.91, ("0.1", "3"): 0.92,
              ("0.01", "1"): 0.97, ("0.01", "2"): 0.70, ("0.01", "3"): 0.71}
    for i, ((lr, seed), acc) in enumerate(values.items()):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(["experiment=iris_mlp", f"optimizer.lr={lr}", f"seed={seed}"]),
                       job / ".hydra" / "overrides.yaml")
        OmegaConf.save(OmegaConf.create({"optimized_mode": "max"}), job / ".hydra" / "config.yaml")
        (job / "metrics.json").write_text(json.dumps({
            "status": "completed", "optimized_metric": "val/acc", "optimized_value": acc,
            "val": {"val/acc": acc}, "test": {}, "epochs": 3, "wall_time_s": 1.0}))
    result = summarize(sweep)
    assert result["rows"][0]["values"]["optimizer.lr"] == "0.01"  # the table: the luckiest job first
    assert result["rerun"] == "dlcourse-train -m experiment=iris_mlp optimizer.lr=0.1 seed=1,2,3"
    assert result["best"]["values"]["optimizer.lr"] == "0.1"
    md = (sweep / "summary.md").read_text()
    assert "Best configuration by its mean over seeds: `optimizer.lr=0.1`, val/acc = 0.91 ± 0.01 (3 seeds)" in md


def test_summary_of_jobs_a_cluster_ended(tmp_path, capsys):
    """Jobs SLURM ended (dlcourse.sweeps.slurm writes their state into metrics.json, with the overrides
    of one that never started): each state and reason in the table, the header names the sweep's own
    metric although no job finished, and dlcourse-summary exits 1."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    OmegaConf.save(OmegaConf.create({"optimized_metric": "val/acc", "optimized_mode": "max"}), sweep / "multirun.yaml")
    for i, (status, error) in enumerate([("cancelled", "CANCELLED by SLURM"), ("timeout", "timed-out too many times"),
                                         ("node_fail", "NODE_FAIL by SLURM")]):
        (sweep / str(i)).mkdir()
        (sweep / str(i) / "metrics.json").write_text(json.dumps({
            "status": status, "error": error, "optimized_value": None, "overrides": [f"optimizer.lr=0.{i + 1}"]}))
    with pytest.raises(SystemExit) as e:
        summary_main([str(sweep)])
    assert e.value.code == 1
    md = (sweep / "summary.md").read_text()
    assert "3 jobs: 0 completed, 0 failed, 0 incomplete, 1 cancelled, 1 timeout, 1 node_fail. " \
           "Sorted by `val/acc` (maximize)." in md
    assert "| 0.1 |" in md and "| cancelled: CANCELLED by SLURM |" in md and "| timeout: timed-out too many times |" in md
    assert [row["optimizer.lr"] for row in read_summary(sweep)] == ["0.1", "0.2", "0.3"]


def test_optuna_sqlite_study_continues_and_records_failures(tmp_path, capfd):
    import optuna

    args = [*TINY, "hparams_search=gaussian_mlp", "logger=none"]
    r = run_here([*args, "hydra.sweeper.n_trials=3"], tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    db = tmp_path / "outputs" / "gaussian_mlp" / "optuna.db"
    study = optuna.load_study(study_name="gaussian_mlp", storage=f"sqlite:///{db}")
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert study.direction.name == "MAXIMIZE"
    (sweep,) = sweep_dirs(tmp_path)
    assert len(read_summary(sweep)) == 3

    # A second invocation continues the same study; a diverging trial is recorded as failed.
    r = run_here([*args, "hydra.sweeper.n_trials=1", "optimizer.lr=1e6"], tmp_path, capfd)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    study = optuna.load_study(study_name="gaussian_mlp", storage=f"sqlite:///{db}")
    assert len(study.trials) == 4
    assert [t.state.name for t in study.trials].count("FAIL") == 1


def test_joblib_runs_two_jobs_in_parallel(tmp_path):
    # Jobs of a few seconds each, so worker start-up lag on a busy machine cannot hide the overlap.
    r = run_cli(["-m", *TINY, "logger=none", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "trainer.max_epochs=100", "data.batch_size=8", "model.dropout=0,0.1"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    (sweep,) = sweep_dirs(tmp_path)
    rows = read_summary(sweep)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    logs = [(sweep / str(i) / "train.log").read_text() for i in (0, 1)]
    assert all("CPU threads" in log for log in logs)  # each job got its share of the CPUs
    # Both jobs ran at the same time: each started before the other finished.
    spans = [((sweep / str(i) / ".hydra" / "config.yaml").stat().st_mtime, (sweep / str(i) / "metrics.json").stat().st_mtime)
             for i in (0, 1)]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]


def test_submitit_local_runs_a_job(tmp_path, capfd):
    r = run_here(["-m", *TINY, "logger=none", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
                 tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    (sweep,) = sweep_dirs(tmp_path)
    assert [row["status"] for row in read_summary(sweep)] == ["completed"]
    assert (sweep / ".submitit").is_dir()


def test_cross_validation_iris_five_folds(tmp_path, capfd):
    r = run_in_process(train_main, ["experiment=iris_mlp", "cv.folds=5", "trainer.max_epochs=3", "trainer.accelerator=cpu",
                       "trainer.enable_progress_bar=false", "~callbacks.model_summary", "~callbacks.figures"], tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "5-fold cross-validation" in r.stdout
    (run_dir,) = (tmp_path / "outputs" / "iris_mlp").glob("*")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["cv"]["folds"] == 5 and len(m["cv"]["per_fold"]) == 5
    for name in ("val/acc", "val/loss"):
        folds = [f[name] for f in m["cv"]["per_fold"]]
        assert m["val"][name] == pytest.approx(sum(folds) / 5)
        assert m["val_std"][name] >= 0
    assert m["optimized_value"] == pytest.approx(m["val"]["val/acc"])
    assert m["test"] == {}  # the test split is not used
    for k in range(1, 6):
        fold = json.loads((run_dir / f"fold_{k}" / "metrics.json").read_text())
        assert fold["status"] == "completed" and (run_dir / f"fold_{k}" / "validation").is_dir()


def test_cross_validation_folds_partition_train_and_val(cfg_factory):
    from dlcourse.build import build_datamodule

    def raw(dm, x):  # undo the standardisation, which differs per fold (each fold's own train stats)
        return [tuple(round(v, 3) for v in row) for row in (x * dm.std + dm.mean).tolist()]

    plain = build_datamodule(cfg_factory("experiment=iris_mlp"))
    plain.setup("fit")
    pool = sorted(row for split in ("train", "val") for row in raw(plain, plain.splits[split][0]))
    seen = []
    for k in range(5):
        cfg = cfg_factory("experiment=iris_mlp", "cv.folds=5", f"+cv.fold={k}")
        dm = build_datamodule(cfg)
        dm.setup("fit")
        x_val, y_val = dm.splits["val"]
        assert len(dm.splits["test"][0]) == 30 and len(x_val) == 24 and len(dm.splits["train"][0]) == 96
        assert sorted(y_val.bincount().tolist()) == [8, 8, 8]  # stratified
        x_train = dm.splits["train"][0]
        assert x_train.mean(0).abs().max() < 1e-5  # scaled with this fold's training rows only
        seen += raw(dm, x_val)
    assert sorted(seen) == pool  # every train+val example validates exactly once


def test_cross_validation_refit_trains_on_train_and_val_and_tests_once(tmp_path, capfd):
    r = run_in_process(train_main, ["experiment=iris_mlp", "cv.folds=3", "cv.refit=true", "trainer.max_epochs=25",
                       "callbacks.early_stopping.patience=5", "trainer.accelerator=cpu",
                       "trainer.enable_progress_bar=false", "~callbacks.model_summary", "~callbacks.figures"],
                       tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "refit on train+val" in r.stdout
    (run_dir,) = (tmp_path / "outputs" / "iris_mlp").glob("*")
    m = json.loads((run_dir / "metrics.json").read_text())
    best = [f["epoch"] for f in m["cv"]["per_fold"]]  # val `epoch` counts from 1
    assert min(best) >= 1
    assert m["refit"]["epochs"] == max(1, round(sum(best) / 3))
    refit = json.loads((run_dir / "refit" / "metrics.json").read_text())
    assert refit["epochs"] == m["refit"]["epochs"] and not refit["stopped_early"]
    assert refit["val"] == {}  # nothing left to validate on
    assert m["test"] == refit["test"] and m["test"]["test/acc"] > 0.6  # chance is 1/3
    assert m["n_test"] == 30 and m["test_acc_ci95"] == refit["test_acc_ci95"]
    assert "95% CI" in r.stdout
    assert Path(m["best_checkpoint"]).parent == run_dir / "refit" / "checkpoints"
    # dlcourse-eval on the CV run directory evaluates its final (refit) model
    ev = run_in_process(eval_main, [f"ckpt_path={run_dir}"], tmp_path, capfd)
    assert ev.returncode == 0, ev.stderr[-3000:]
    evaluated = json.loads((run_dir / "refit" / "eval_test.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(m["test"]["test/acc"])
    ev = run_in_process(eval_main, [f"ckpt_path={run_dir}", "split=val"], tmp_path, capfd)
    assert ev.returncode == 2 and "split is empty" in ev.stderr and len(ev.stderr.strip().splitlines()) == 1


def test_refit_pools_train_and_val_standardised_with_all_their_rows(cfg_factory):
    from dlcourse.build import build_datamodule

    plain = build_datamodule(cfg_factory("experiment=iris_mlp"))
    plain.setup("fit")
    refit = build_datamodule(cfg_factory("experiment=iris_mlp", "cv.folds=5", "+cv.fold=refit"))
    refit.setup("fit")
    x, _ = refit.splits["train"]
    assert len(x) == 120 and len(refit.splits["val"][0]) == 0 and len(refit.splits["test"][0]) == 30
    assert x.mean(0).abs().max() < 1e-5 and (x.std(0, correction=0) - 1).abs().max() < 1e-5  # ddof=0, as StandardScaler

    def raw(dm, x):
        return sorted(tuple(round(v, 3) for v in row) for row in (x * dm.std + dm.mean).tolist())

    assert raw(refit, x) == sorted(raw(plain, plain.splits["train"][0]) + raw(plain, plain.splits["val"][0]))
    assert raw(refit, refit.splits["test"][0]) == raw(plain, plain.splits["test"][0])


@pytest.mark.parametrize("overrides, says", [
    (["cv.refit=true"], "needs cv.folds"),
    (["cv.folds=5", "cv.refit=true", "scheduler=plateau"], "scheduler=plateau"),
    (["cv.folds=5", "cv.refit=maybe"], "must be true or false"),
])
def test_cv_refit_is_validated(cfg_factory, overrides, says):
    from dlcourse.config.validate import validate
    from dlcourse.errors import ConfigError

    with pytest.raises(ConfigError, match="cv.refit") as e:
        validate(cfg_factory("experiment=iris_mlp", *overrides))
    assert says in str(e.value)


def test_cv_folds_is_validated(tmp_path, capfd):
    r = run_in_process(train_main, ["experiment=iris_mlp", "cv.folds=1"], tmp_path, capfd)
    assert r.returncode == 2 and "cv.folds" in r.stderr


@pytest.mark.skipif(os.cpu_count() is None, reason="needs CPUs")
def test_ddp_cpu_matches_single_process_and_writes_one_run_dir(tmp_path, capfd):
    """The README's `dlcourse-train experiment=gaussian_mlp trainer=ddp_cpu` (smaller data, 3 epochs)
    against the same run in one process."""
    from test_readme import readme_command

    argv = readme_command("dlcourse-train experiment=gaussian_mlp trainer=ddp_cpu")
    assert argv == ["experiment=gaussian_mlp", "trainer=ddp_cpu"]
    args = [*TINY, "logger=none", "data.batch_size=full", "trainer.max_epochs=3"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    r1 = run_here(args, single, capfd)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = run_cli([*argv, *args[1:]], cwd=ddp)
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-3000:]
    dirs = list((ddp / "outputs" / "gaussian_mlp").iterdir())
    assert len(dirs) == 1, dirs  # one run directory, not one per rank
    (one,) = (single / "outputs" / "gaussian_mlp").iterdir()
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, dirs[0]))
    for split in ("val", "test"):
        for k, v in m1[split].items():
            assert m2[split][k] == pytest.approx(v, abs=2e-3), k


def test_a_bad_value_in_a_sweep_stops_it_before_any_job_runs(tmp_path, capfd):
    r = run_here(["-m", *TINY, "model.dropout=0.1,1.5"], tmp_path, capfd)
    assert r.returncode == 2, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert "model.dropout=1.5 is invalid" in line and "in job 1" in line
    assert not (tmp_path / "outputs").exists()


def test_each_job_of_a_sweep_is_composed_once_and_as_hydra_would(tmp_path, monkeypatch):
    """dlcourse's check composes every job; Hydra's sweeper (its check of each batch) and launcher then
    take copies of that config instead of composing the job twice more (dlcourse.internals.
    compositions_remembered), and it is the config Hydra composes."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from dlcourse.app import main
    from dlcourse.compose import compose, job_config

    modes = []
    real = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        modes.append(str(kwargs.get("run_mode")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    monkeypatch.chdir(tmp_path)
    main(["-m", *TINY, "trainer.max_epochs=1", "optimizer.lr=0.1,0.2", "seed=1,2"])
    # the sweep's config (twice: dlcourse reads its directory and size, then Hydra composes it with that
    # directory pinned), each job's once
    assert sorted(modes) == ["RunMode.MULTIRUN", "RunMode.MULTIRUN", *["RunMode.RUN"] * 4]
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", real)
    (sweep,) = sweep_dirs(tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(jobs) == 4
    for job in jobs:
        saved = OmegaConf.load(job / ".hydra" / "config.yaml")
        fresh = job_config(compose(list(OmegaConf.load(job / ".hydra" / "overrides.yaml"))))
        assert OmegaConf.to_container(saved) == OmegaConf.to_container(fresh), job.name
