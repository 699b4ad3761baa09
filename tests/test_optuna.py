"""Optuna search (issue 23): dlcourse's own sweeper on Optuna's ask/tell API. A continued study
proposes new points, pruning stops hopeless trials, every shipped search config runs, the study
shows in optuna-dashboard. Tiny configs: CPU, seconds per trial."""

from __future__ import annotations

import json

import pytest

from conftest import local_server, run_here, write_fake_mnist
from test_sweeps import TINY, read_summary, sweep_dirs

# A space of 4 parameter sets (the search config's others fixed on the command line).
SMALL_SPACE = ["-m", *TINY, "hparams_search=gaussian_mlp", "logger=none", "model.hidden=[16]",
               "optimizer.lr=choice(0.1,0.3)", "model.dropout=choice(0,0.2)"]


def load(tmp_path, name="gaussian_mlp"):
    import optuna

    db = tmp_path / "outputs" / name / "optuna.db"
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def test_running_the_search_again_continues_the_study_with_new_points(tmp_path, monkeypatch):
    import dlcourse

    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))  # in this process: the same sweep as the command line's
    for _ in range(2):
        assert dlcourse.sweep(*SMALL_SPACE[1:], "hydra.sweeper.n_trials=2").failed_line is None
    study = load(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    sets = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(sets)) == 4, sets  # the whole space, no parameter set twice
    assert [len(read_summary(s)) for s in sweep_dirs(tmp_path)] == [2, 2]


def test_a_pruner_stops_a_trial_that_cannot_learn(tmp_path, monkeypatch):
    import dlcourse

    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    result = dlcourse.sweep(*TINY, "hparams_search=gaussian_mlp", "logger=none", "model.hidden=[16]", "model.dropout=0",
                            "trainer.max_epochs=4", "optimizer.lr=choice(0.3,1e-9)", "data.batch_size=choice(25,50)",
                            "hydra.sweeper.n_trials=4",
                            "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:1}")
    assert result.failed_line is None  # a pruned trial is not a failure (the command line exits 0)
    study = load(tmp_path)
    states = [t.state.name for t in study.trials]
    assert "PRUNED" in states and len(states) == 4, states
    (sweep,) = sweep_dirs(tmp_path)
    rows = read_summary(sweep)
    pruned = [row for row in rows if row["status"] == "pruned"]
    assert pruned and all(float(row["optimizer.lr"]) == 1e-9 for row in pruned)
    for row in pruned:
        record = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert record["pruned_epoch"] < 4 and int(row["epochs"]) == record["pruned_epoch"]
        assert list((sweep / row["job"] / "checkpoints").glob("*.ckpt"))  # a valid run directory
    md = (sweep / "summary.md").read_text()
    assert f"pruned at epoch {json.loads((sweep / pruned[0]['job'] / 'metrics.json').read_text())['pruned_epoch']}" in md
    assert f"{len(pruned)} pruned" in md


SHIPPED = {"gaussian_mlp": TINY,
           "iris_mlp": ["experiment=iris_mlp", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                        "~callbacks.model_summary", "~callbacks.figures"],
           "mnist_cnn": ["experiment=mnist_cnn", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                         "data.n_val=32", "data.root=data", "~callbacks.model_summary", "~callbacks.figures"]}


@pytest.mark.parametrize("name", list(SHIPPED))
def test_every_shipped_search_runs_a_two_trial_study(tmp_path, name, capfd):
    if name == "mnist_cnn":
        write_fake_mnist(tmp_path / "data", n_train=96, n_test=32)
    r = run_here([*SHIPPED[name], f"hparams_search={name}", "logger=none", "hydra.sweeper.n_trials=2"], tmp_path, capfd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    study = load(tmp_path, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    (sweep,) = sweep_dirs(tmp_path, name)
    assert [row["status"] for row in read_summary(sweep)] == ["completed"] * 2


def test_optuna_dashboard_shows_the_study(tmp_path, monkeypatch):
    """`optuna-dashboard sqlite:///outputs/<name>/optuna.db --host 127.0.0.1` (README), asked through
    its HTTP API for the study's trials, then stopped."""
    import sys
    from pathlib import Path

    import dlcourse

    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    assert dlcourse.sweep(*SMALL_SPACE[1:], "hydra.sweeper.n_trials=2").failed_line is None
    dashboard = [str(Path(sys.executable).with_name("optuna-dashboard")), "sqlite:///outputs/gaussian_mlp/optuna.db"]
    with local_server(dashboard, tmp_path / "dashboard.log", cwd=tmp_path) as ask:
        (study,) = [s for s in ask("/api/studies")["study_summaries"] if s["study_name"] == "gaussian_mlp"]
        trials = ask(f"/api/studies/{study['study_id']}")["trials"]
        assert [t["state"] for t in trials] == ["Complete"] * 2
        assert {p["name"] for p in trials[0]["params"]} == {"optimizer.lr", "model.dropout"}