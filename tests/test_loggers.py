"""Loggers beside TensorBoard: MLflow and CSV, alone, together, and Lightning's own named by a user."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import mlflow  # the test extra installs it (pip install -e ".[test]"), as the `mlflow` extra does for users
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import local_server, make_cfg
from dlcourse.compose import compose, job_config, start, stop
from dlcourse.config.validate import validate
from dlcourse.errors import ConfigError
from dlcourse.train import train

IRIS = ["experiment=iris_mlp", "trainer.accelerator=cpu", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
        "~callbacks.model_summary"]


@pytest.fixture(scope="module", autouse=True)
def keep_mlflow_uri():
    """Lightning's MLFlowLogger sets MLflow's process-wide tracking URI (and MLFLOW_TRACKING_URI): put it back."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(before)


def run_iris(root: Path, *overrides: str) -> tuple[dict, Path]:
    cfg = make_cfg([*IRIS, f"paths.output_root={root / 'outputs'}", *overrides], root / "run")
    return train(cfg), Path(cfg.paths.output_dir)


def store(root: Path) -> str:
    return f"sqlite:///{root / 'outputs' / 'mlflow.db'}"


def only_run(root: Path, experiment: str = "iris_mlp"):
    client = MlflowClient(store(root))
    exp = client.get_experiment_by_name(experiment)
    (found,) = client.search_runs([exp.experiment_id])
    return client, found


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    record, run_dir = run_iris(root, "logger=mlflow")
    return root, record, run_dir


def test_an_mlflow_run_reads_back_with_its_params_curves_results_figures_and_model(mlflow_run):
    root, record, run_dir = mlflow_run
    client, found = only_run(root)
    rid = found.info.run_id
    assert found.info.status == "FINISHED" and found.info.run_name == run_dir.name
    assert found.data.tags["dlcourse.run_dir"] == str(run_dir)
    assert found.data.params["optimizer.lr"] == "0.01" and found.data.params["data"] == "iris"
    # One point per epoch on the epoch axis (1, 2, 3) for every curve, the learning rate's too.
    for key in ("val/loss", "train/loss", "lr-Adam"):
        assert [m.step for m in client.get_metric_history(rid, key)] == [1, 2, 3], key
    losses = [m.value for m in client.get_metric_history(rid, "val/loss")]
    assert losses == pytest.approx([float(r["val/loss"]) for r in csv.DictReader(open(run_dir / "history.csv"))])
    # The final values once, at the tested epoch: the test metrics and the tested epoch's validation values.
    tested = int(record["val"]["epoch"])  # counted from 1
    for key, value in record["test"].items():
        assert [(m.step, m.value) for m in client.get_metric_history(rid, key)] == [(tested, pytest.approx(value))]
    assert found.data.metrics["best/val/loss"] == pytest.approx(record["val"]["val/loss"])
    assert "epoch" not in found.data.metrics
    # Artifacts: the same PNG bytes as the run directory's figures, metrics.json, the summary, the best checkpoint.
    names = {a.path for a in client.list_artifacts(rid)} | {a.path for a in client.list_artifacts(rid, "figures")}
    assert {"figures/confusion_matrix.png", "figures/roc_curve.png", "metrics.json", "summary.md", "history.csv"} <= names
    png = client.download_artifacts(rid, "figures/confusion_matrix.png", str(root))
    assert Path(png).read_bytes() == (run_dir / "figures" / "confusion_matrix.png").read_bytes()
    (ckpt,) = client.list_artifacts(rid, "checkpoints")
    assert ckpt.path == f"checkpoints/{Path(record['best_checkpoint']).name}" and ckpt.file_size > 1000
    assert "test accuracy" in found.data.tags["mlflow.note.content"]
    assert not (run_dir / "events.out.tfevents").exists() and not list(run_dir.glob("events.*"))  # no TensorBoard


def test_mlflow_ui_shows_the_run(mlflow_run):
    """`mlflow ui --backend-store-uri sqlite:///<output root>/mlflow.db`, asked as its web page asks it."""
    root, _, run_dir = mlflow_run
    ui = [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", store(root), "--workers", "1"]
    with local_server(ui, root / "mlflow_ui.log") as ask:
        experiments = ask("/api/2.0/mlflow/experiments/search", {"max_results": 10})
        (exp,) = [e for e in experiments["experiments"] if e["name"] == "iris_mlp"]
        (found,) = ask("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        assert found["info"]["run_name"] == run_dir.name
        png = ask(f"/get-artifact?path=figures/confusion_matrix.png&run_uuid={found['info']['run_id']}")
        assert png == (run_dir / "figures" / "confusion_matrix.png").read_bytes()


def test_a_csv_run_has_one_row_per_epoch_then_its_test_metrics(tmp_path):
    record, run_dir = run_iris(tmp_path, "logger=csv")
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    epochs, last = [r for r in rows if r["val/loss"]], rows[-1]
    assert [r["epoch"] for r in epochs] == ["1", "2", "3"] and len(rows) == 4
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [float(r["val/loss"]) for r in epochs] == pytest.approx([float(r["val/loss"]) for r in history])
    assert all(r["train/loss"] and r["lr-Adam"] and not r["test/acc"] for r in epochs)
    assert float(last["test/acc"]) == pytest.approx(record["test"]["test/acc"]) and not last["val/loss"]
    assert int(last["epoch"]) == int(record["val"]["epoch"])  # the tested epoch, both counted from 1
    hparams = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text())
    assert hparams["optimizer.lr"] == 0.01 and hparams["data"] == "iris"
    assert not list(run_dir.glob("events.*")) and not (tmp_path / "outputs" / "mlflow.db").exists()


def test_tensorboard_and_mlflow_together_each_get_theirs(tmp_path):
    record, run_dir = run_iris(tmp_path, "logger=[tensorboard,mlflow]")
    root = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert "_hparams_/session_start_info" in root.PluginTagToContent("hparams")
    assert "figures/confusion_matrix" in root.Tags()["images"] and "summary/text_summary" in root.Tags()["tensors"]
    val = EventAccumulator(str(run_dir / "validation"), size_guidance={"scalars": 0}).Reload()
    assert [s.step for s in val.Scalars("loss")] == [1, 2, 3]
    client, found = only_run(tmp_path)
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val/loss")] == [1, 2, 3]
    assert found.data.metrics["test/acc"] == pytest.approx(record["test"]["test/acc"])
    assert "figures/confusion_matrix.png" in {a.path for a in client.list_artifacts(found.info.run_id, "figures")}
    assert not any(k.startswith("hp/") or k.startswith("_hparams_") for k in found.data.metrics)


def test_lightnings_own_csv_logger_named_by_a_user_gets_params_and_final_metrics(tmp_path):
    """Once a TypeError at the end of the run (log_hyperparams called as TensorBoard's)."""
    record, run_dir = run_iris(tmp_path, "+logger.csv._target_=lightning.pytorch.loggers.CSVLogger",
                               f"+logger.csv.save_dir={tmp_path / 'lightning_csv'}")
    (version,) = (tmp_path / "lightning_csv" / "lightning_logs").iterdir()
    rows = list(csv.DictReader(open(version / "metrics.csv")))
    assert sum(bool(r["val/loss"]) for r in rows) == 3
    assert float(rows[-1]["best/val/loss"]) == pytest.approx(record["val"]["val/loss"])
    assert [float(r["test/acc"]) for r in rows if r["test/acc"]] == [pytest.approx(record["test"]["test/acc"])]
    assert yaml.safe_load((version / "hparams.yaml").read_text())["optimizer.lr"] == 0.01
    assert list(run_dir.glob("events.*"))  # the default TensorBoard logger still writes beside it


@pytest.mark.parametrize("target", ["lightning.pytorch.loggers.MLFlowLogger", "lightning.pytorch.loggers.mlflow.MLFlowLogger",
                                    "lightning.pytorch.loggers.CSVLogger"])
def test_lightnings_loggers_pass_validation(target):
    validate(job_config(compose([f"+logger.mine._target_={target}", "+logger.mine.save_dir=logs"])))


def test_other_names_under_lightnings_loggers_are_refused():
    with pytest.raises(ConfigError, match="not a class dlcourse may build"):
        validate(job_config(compose(["+logger.mine._target_=lightning.pytorch.loggers.mlflow.os.system"])))


def test_a_list_of_loggers_composes_over_the_default_and_over_an_experiments_choice(tmp_path):
    def loggers(*overrides):
        cfg = job_config(compose(list(overrides)))
        validate(cfg)
        return [node["_target_"] for node in (cfg.logger or {}).values()]

    tb, ml, cv = ("dlcourse.tensorboard_logger.TensorBoardLogger", "dlcourse.mlflow_logger.MLFlowLogger",
                  "dlcourse.csv_logger.CSVLogger")
    assert loggers() == [tb]
    assert loggers("logger=[tensorboard,mlflow]") == [tb, ml] and loggers("logger=[tensorboard,csv]") == [tb, cv]
    assert loggers("logger=none") == []
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "csv_iris.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: iris\n  - override /logger: [tensorboard, csv]\n\n"
        "name: csv_iris\n")
    start([conf])
    try:
        assert loggers("experiment=csv_iris") == [tb, cv]
        assert loggers("experiment=csv_iris", "logger=[tensorboard,mlflow]") == [tb, ml]
        assert loggers("experiment=csv_iris", "logger=none") == []
    finally:
        stop()


def test_an_older_checkpoints_logger_classes_are_found_under_their_new_modules():
    """Checkpoints made before the logger modules were renamed (tblog, mlflowlog, csvlog) store those names."""
    from omegaconf import OmegaConf

    cfg = job_config(compose(["logger=[tensorboard,mlflow,csv]"]))
    old = {"tensorboard": "dlcourse.tblog.TensorBoardLogger", "mlflow": "dlcourse.mlflowlog.MLFlowLogger",
           "csv": "dlcourse.csvlog.CSVLogger"}
    stored = OmegaConf.create(OmegaConf.to_container(cfg))
    for name, target in old.items():
        stored.logger[name]["_target_"] = target
    validate(stored)  # moves them before the allow-list of targets sees them
    assert [stored.logger[n]["_target_"] for n in old] == [cfg.logger[n]["_target_"] for n in old]
