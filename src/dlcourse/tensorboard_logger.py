"""TensorBoard as Keras lays it out: the run directory is the TensorBoard run, with one sub-run per
split, so that every metric has one chart with its train and validation curves, on an epoch axis.

    <run dir>/events.*             HParams entry, figures, the summary text card
    <run dir>/train/events.*       loss, acc, learning rate: one point per epoch (1 = after epoch 1)
    <run dir>/validation/events.*  loss, acc, auroc, ...: one point per epoch
    <run dir>/best/events.*        the validation values of the best (tested) epoch, one point there
    <run dir>/test/events.*        the test values of the tested checkpoint, at its epoch

`tensorboard --logdir <run dir>` opens one run; a sweep directory shows its jobs as runs 0, 1, ...
The test values are points on the same charts (no single-point cards) and columns in HParams.
"""

from __future__ import annotations

import os

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from dlcourse.internals import event_file_writer

# metrics.json prefix -> sub-run. Test and best values are written once, by `log_results`.
SUBRUNS = {"train": "train", "val": "validation"}
RESULT_SUBRUNS = {"val": "best", "test": "test"}


class TensorBoardLogger(LightningTensorBoardLogger):
    def __init__(self, save_dir, name: str = "", version: str = "", **kwargs):
        kwargs.setdefault("default_hp_metric", False)
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self._subwriters: dict = {}

    def writer(self, subrun: str = ""):
        """The event writer of `<log_dir>/<subrun>` ("" = the run itself)."""
        if not subrun:
            return self.experiment
        if subrun not in self._subwriters:
            self._subwriters[subrun] = type(self.experiment)(log_dir=os.path.join(self.log_dir, subrun))
        return self._subwriters[subrun]

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """`train/loss` -> tag `loss` of sub-run `train`; `epoch` (0-based) sets the step to the number
        of epochs done. Test values wait for `log_results` (they belong to the best epoch)."""
        metrics = dict(metrics)
        if "epoch" in metrics:
            step = int(metrics.pop("epoch")) + 1
        for key, value in metrics.items():
            prefix, _, tag = key.partition("/")
            if prefix == "test" or key.startswith("hp/"):
                continue
            if prefix in SUBRUNS and tag:
                self.writer(SUBRUNS[prefix]).add_scalar(tag, _number(value), step)
            else:  # the learning rate and anything else per epoch: with the training curves, as Keras
                self.writer("train").add_scalar(key, _number(value), step)

    @rank_zero_only
    def log_results(self, hparams: dict, differs: set[str], results: dict[str, float], step: int,
                    metric_order: list[str], text: str = "") -> None:
        """The run's HParams entry and final values: `results` keyed as metrics.json (`val/acc` of the
        best epoch, `test/acc`), written as points at `step` in the best/test sub-runs; the HParams
        columns are `hparams` with `differs` first and the metrics in `metric_order`."""
        from dlcourse import tensorboard_hparams

        for key, value in results.items():
            prefix, _, tag = key.partition("/")
            if prefix in RESULT_SUBRUNS and tag:
                self.writer(RESULT_SUBRUNS[prefix]).add_scalar(tag, _number(value), step)
        names = [(RESULT_SUBRUNS[k.split("/")[0]], k.split("/", 1)[1], k) for k in metric_order
                 if k.split("/")[0] in RESULT_SUBRUNS and k in results]
        names += [(SUBRUNS[k.split("/")[0]], k.split("/", 1)[1], f"{k} (last epoch)") for k in metric_order
                  if k.split("/")[0] in SUBRUNS and k not in results]
        file_writer = event_file_writer(self.experiment)
        for summary in tensorboard_hparams.summaries(hparams, differs, names):
            file_writer.add_summary(summary)
        if text:
            self.experiment.add_text("summary", text, global_step=step)
        self.hparams.update(hparams)

    @rank_zero_only
    def save(self) -> None:  # no hparams.yaml: .hydra/config.yaml is the run's record
        for w in [self.experiment, *self._subwriters.values()]:
            w.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        for w in self._subwriters.values():
            w.close()
        self._subwriters = {}


def _number(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)
