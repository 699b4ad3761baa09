"""CSV files in the run directory (conf/logger/csv.yaml), for pandas or a spreadsheet:

    <run dir>/csv/metrics.csv   one row per epoch: epoch (counted from 1, as history.csv), step (the same),
                                train/*, val/*, the learning rate; then one last row with the test values
                                of the tested checkpoint, its epoch in `epoch`
    <run dir>/csv/hparams.yaml  the hyperparameters (the HParams entry's flat keys)

What the run sends and when: dlcourse.loggers.
"""

from __future__ import annotations

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from dlcourse.loggers import EpochRows, number


class CSVLogger(EpochRows, LightningCSVLogger):
    """Lightning's CSVLogger with one row per epoch, each written (and on disk) once the epoch has its
    train and validation values. Values without an `epoch` are rows of their own, as in Lightning."""

    def __init__(self, save_dir, name: str = "csv", version: str = "", prefix: str = "",
                 flush_logs_every_n_steps: int = 100):
        super().__init__(save_dir, name=name, version=version, prefix=prefix,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)

    @rank_zero_only
    def log_metrics(self, metrics, step: int | None = None) -> None:
        rest = self._gather(metrics, step)
        if rest is not None:
            self._write_pending()
            super().log_metrics(*rest)

    def _write_row(self, row: dict, step: int) -> None:
        LightningCSVLogger.log_metrics(self, {"epoch": step, **row}, step)
        self.experiment.save()  # the epoch's row on disk now, for a reader following the run

    @rank_zero_only
    def log_final(self, best: dict, test: dict, step: int) -> None:
        """The test values as the last row, at the tested epoch (its validation values are its row's)."""
        self._write_pending()
        if test:
            self._write_row({k: number(v) for k, v in test.items()}, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self._write_pending()  # rows held back for their validation values, if any
        super().finalize(status)
