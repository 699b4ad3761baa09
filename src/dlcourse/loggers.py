"""What each kind of logger gets from a run, beside dlcourse's TensorBoard (dlcourse.tensorboard_logger):

    logger=mlflow                  dlcourse.mlflow_logger: an MLflow run in <output root>/mlflow.db
    logger=csv                     dlcourse.csv_logger: <run dir>/csv/metrics.csv (one row per epoch), csv/hparams.yaml
    logger=[tensorboard,mlflow]    several at once (a list picks several options of the `logger` group)

The per-epoch values come from dlcourse.metrics.publish (and the lr monitor) with their `epoch` (0-based).
dlcourse's MLflow and CSV loggers put them, as TensorBoard does, at the number of epochs done (1 = after
the first epoch: the epoch axis of history.csv) and write one row per epoch (`EpochRows`). Test values are
no epoch's: like dlcourse.tensorboard_logger, they leave them out there and write them once, at the tested epoch.

At the end of a run (dlcourse.train.log_results -> `log_final`) each logger gets what it can take:
- dlcourse's TensorBoardLogger: the HParams entry, best/ and test/ sub-runs, the summary card (train.py);
- dlcourse's MLFlowLogger: params (the HParams entry's flat hyperparameters), metrics `best/val/<m>` (the
  tested epoch's validation values) and `test/<m>` at the tested epoch, the summary as the run's
  description, and artifacts: metrics.json, history.csv, summary.md, hydra/config.yaml, the best
  checkpoint (checkpoints/<file>.ckpt) and, when drawn, the figures (figures/<name>.png: `log_figures`);
- dlcourse's CSVLogger: hparams.yaml, and the test values as the last row of metrics.csv;
- any other Lightning logger, through the public Logger API only: log_hyperparams(params) and
  log_metrics(best/val/<m>) (its test values came per epoch, from publish). Lightning's own MLFlowLogger
  also gets the artifacts and figures (the checkpoint as its `log_model` says), Lightning's
  TensorBoardLogger its HParams entry (log_hyperparams with hp/ metrics).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

log = logging.getLogger("dlcourse")


def epoch_values(metrics: dict, step: int | None) -> tuple[dict, int | None, bool]:
    """(values, step, per_epoch): values that carry their `epoch` (0-based) go at the number of epochs
    done, without `epoch` itself and without test values (they belong to the tested epoch)."""
    if "epoch" not in metrics:
        return dict(metrics), step, False
    values = {k: number(v) for k, v in metrics.items() if k != "epoch" and not k.startswith("test/")}
    return values, int(metrics["epoch"]) + 1, True


class EpochRows:
    """One write per epoch: an epoch's values (learning rate, train, validation) are gathered and written
    together once the epoch has both its train and validation values, when the next epoch's first value
    comes, or at the end (an MLflow write to SQLite costs ~30 ms: once per epoch, not once per call)."""

    def _gather(self, metrics: dict, step: int | None) -> tuple[dict, int | None] | None:
        """An epoch's values join its row (None comes back); other values come back to be logged as they are."""
        values, step, per_epoch = epoch_values(metrics, step)
        if not per_epoch:
            return values, step
        if values:
            self._add_to_row(values, step)
        return None

    def _add_to_row(self, values: dict, step: int) -> None:
        if step != getattr(self, "_row_step", None):
            self._write_pending()
            self._row_step, self._row = step, {}
        self._row.update(values)
        if any(k.startswith("train/") for k in self._row) and any(k.startswith("val/") for k in self._row):
            self._write_pending()

    def _write_pending(self) -> None:
        row, step = getattr(self, "_row", None), getattr(self, "_row_step", None)
        self._row, self._row_step = {}, None
        if row and step is not None:
            self._write_row(row, step)

    def _write_row(self, row: dict, step: int) -> None:
        raise NotImplementedError


def tested_step(record: dict) -> int:
    """The step of the run's final values: the tested (best) epoch (metrics.json counts from 1); else the epochs done."""
    best = record["val"].get("epoch")
    return int(best) if best is not None else int(record["epochs"] or 0)


def safe_params(params: dict) -> dict:
    """Keys MLflow accepts (letters, digits, _ - . / and spaces): an override such as `+a[0]=1` too."""
    return {re.sub(r"[^\w\-./ ]", "_", str(k)): v for k, v in params.items()}


def log_final(lg, hparams: dict, record: dict, summary: str = "") -> None:
    """The run's final values and hyperparameters to a logger other than dlcourse's TensorBoardLogger
    (whose HParams entry and summary card train.log_results writes), each the way it takes them."""
    best = {f"best/{k}": v for k, v in record["val"].items() if k.startswith("val/")}
    test = {k: v for k, v in record["test"].items() if k.startswith("test/")}
    if isinstance(lg, LightningTensorBoardLogger):  # Lightning's own: its HParams entry
        results = {k: v for k, v in {**record["val"], **record["test"]}.items() if "/" in k}
        lg.log_hyperparams(hparams, {f"hp/{k.replace('/', '_')}": v for k, v in results.items()})
        return
    lg.log_hyperparams(safe_params(hparams))
    if hasattr(lg, "log_final"):  # dlcourse's MLflow and CSV loggers: the values they held back
        lg.log_final(best, test, tested_step(record))
    elif best:
        lg.log_metrics(best)  # its test values came per epoch, from publish
    if isinstance(lg, LightningMLFlowLogger):
        upload_run_files(lg, record, summary, checkpoint=getattr(lg, "log_best_checkpoint", False))
        log.info("MLflow: mlflow ui --backend-store-uri %s (experiment %s, run %s)", getattr(lg, "store_uri", "?"),
                 getattr(lg, "experiment_name", lg.name), getattr(lg, "run_name", None) or lg.run_id)


def log_figures(loggers, paths: list[Path]) -> None:
    """Figures already written as PNG files, to the loggers that keep files: MLflow's artifacts
    figures/<name>.png (the same bytes). TensorBoard gets them as images (callbacks/figures.py)."""
    for lg in loggers:
        if isinstance(lg, LightningMLFlowLogger):
            for path in paths:
                lg.experiment.log_artifact(lg.run_id, str(path), "figures")


def upload_run_files(lg, record: dict, summary: str, checkpoint: bool) -> None:
    """metrics.json, history.csv, summary.md, the run's config and (`checkpoint`) the best checkpoint as
    the MLflow run's artifacts; the summary is the run's description too."""
    client, run_id = lg.experiment, lg.run_id
    run_dir = Path(record["run_dir"])
    for name, folder in (("metrics.json", None), ("history.csv", None), (".hydra/config.yaml", "hydra"),
                         (".hydra/overrides.yaml", "hydra")):
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name), folder)
    if summary:
        with tempfile.TemporaryDirectory(prefix="dlcourse-mlflow-") as tmp:
            (Path(tmp) / "summary.md").write_text(summary + "\n")
            client.log_artifact(run_id, str(Path(tmp) / "summary.md"))
        client.set_tag(run_id, "mlflow.note.content", summary)  # the run's description in the UI
    best = record.get("best_checkpoint")
    if checkpoint and best and Path(best).is_file():
        client.log_artifact(run_id, str(Path(best).resolve()), "checkpoints")


def number(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)


__all__ = ["EpochRows", "epoch_values", "log_figures", "log_final", "tested_step"]
