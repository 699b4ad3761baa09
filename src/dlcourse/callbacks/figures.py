"""Draw the test-set figures once the test has run: PNGs in the run directory, TensorBoard images and
MLflow artifacts. Each figure is rendered once; the same PNG bytes are the file, the TensorBoard image
and the MLflow artifact figures/<name>.png (dlcourse.loggers.log_figures). CSV has no figures.

Standard figures come from the task (confusion matrix, ROC, decision boundary, predicted-vs-true);
a data module can add its own by defining `figures(model, preds, targets) -> {name: Figure}`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_roc,
)

from dlcourse import metric_figures
from dlcourse.atomic_files import write_bytes
from dlcourse.internals import event_file_writer
from dlcourse.loggers import log_figures


def standard_figures(task: str, model, dm, preds: torch.Tensor, targets: torch.Tensor) -> dict:
    figs = {}
    if task in ("binary", "multiclass"):
        names = dm.class_names or [str(i) for i in range(int(targets.max()) + 1)]
        k = len(names)
        if task == "binary":
            hard = (preds > 0.5).long()
            fpr, tpr, _ = binary_roc(preds, targets)
            curves = {names[1]: (fpr.numpy(), tpr.numpy(), float(binary_auroc(preds, targets)))}
        else:
            hard = preds.argmax(-1)
            fprs, tprs, _ = multiclass_roc(preds, targets, num_classes=k)
            aucs = multiclass_auroc(preds, targets, num_classes=k, average=None)
            curves = {f"{names[c]} vs rest": (fprs[c].numpy(), tprs[c].numpy(), float(aucs[c])) for c in range(k)}
        cm = multiclass_confusion_matrix(hard, targets, num_classes=k).numpy()
        figs["confusion_matrix"] = metric_figures.confusion_matrix_figure(cm, names)
        figs["roc_curve"] = metric_figures.roc_figure(curves)
        if tuple(dm.input_shape) == (2,):
            x, y = dm.splits["test"]
            figs["decision_boundary"] = metric_figures.decision_boundary_figure(model, x, y, task, names)
    else:
        figs["predicted_vs_true"] = metric_figures.regression_figure(preds.numpy(), targets.numpy())
    return figs


class FigureCallback(L.Callback):
    def __init__(self, dirpath: str | None = None):
        self.dirpath = Path(dirpath) if dirpath else None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        # A data module may show its inputs before training (e.g. a few images per class).
        dm = trainer.datamodule
        if trainer.is_global_zero and dm is not None and hasattr(dm, "input_figures"):
            with metric_figures.style():
                self.save(trainer, dm.input_figures())

    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        # compute() gathers across ranks, so every rank calls it; only rank zero draws and writes.
        preds = pl_module.test_preds.compute().float().cpu()
        targets = pl_module.test_targets.compute().cpu()
        if not trainer.is_global_zero or preds.numel() == 0:
            return
        if pl_module.task != "regression":
            targets = targets.long()
        dm = trainer.datamodule
        with metric_figures.style():
            figs = standard_figures(pl_module.task, pl_module.model, dm, preds, targets)
            if hasattr(dm, "figures"):
                figs.update(dm.figures(pl_module.model, preds, targets))
            self.save(trainer, figs)

    def save(self, trainer: L.Trainer, figs: dict) -> None:
        save_figures(figs, self.dirpath or Path(trainer.default_root_dir) / "figures", trainer.loggers,
                     trainer.current_epoch)


def save_figures(figs: dict, dirpath: Path, loggers, step: int) -> list[Path]:
    """Render each figure once: `<dirpath>/<name>.png`, the image `figures/<name>` of every TensorBoard
    logger among `loggers`, at `step`, and the artifact `figures/<name>.png` of every MLflow logger.
    Returns the PNG files written."""
    dirpath.mkdir(parents=True, exist_ok=True)
    writers = [w for w in (event_file_writer(lg.experiment) for lg in loggers) if w is not None]
    written = []
    for name, fig in figs.items():
        png, height, width = metric_figures.render_png(fig)
        write_bytes(dirpath / f"{name}.png", png)  # whole or not at all
        written.append(dirpath / f"{name}.png")
        for writer in writers:
            add_png(writer, f"figures/{name}", png, height, width, step)
        if "matplotlib.pyplot" in sys.modules:  # a data module's own figure may come from pyplot
            sys.modules["matplotlib.pyplot"].close(fig)
    log_figures(loggers, written)
    return written


def add_png(file_writer, tag: str, png: bytes, height: int, width: int, step: int) -> None:
    """An encoded PNG as a TensorBoard image (what SummaryWriter.add_image writes, without encoding
    the pixels a second time)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
    file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


__all__ = ["FigureCallback", "add_png", "save_figures", "standard_figures"]
