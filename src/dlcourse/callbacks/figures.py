"""Draw the test-set figures once the test has run: PNGs in the run directory and TensorBoard images.

Standard figures come from the task (confusion matrix, ROC, decision boundary, predicted-vs-true);
a data module can add its own by defining `figures(model, preds, targets) -> {name: Figure}`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_roc,
)

from dlcourse import plots


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
        figs["confusion_matrix"] = plots.confusion_matrix_figure(cm, names)
        figs["roc_curve"] = plots.roc_figure(curves)
        if tuple(dm.input_shape) == (2,):
            x, y = dm.splits["test"]
            figs["decision_boundary"] = plots.decision_boundary_figure(model, x, y, task, names)
    else:
        figs["predicted_vs_true"] = plots.regression_figure(preds.numpy(), targets.numpy())
    return figs


class FigureCallback(L.Callback):
    def __init__(self, dirpath: str | None = None):
        self.dirpath = Path(dirpath) if dirpath else None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        # A data module may show its inputs before training (e.g. a few images per class).
        dm = trainer.datamodule
        if trainer.is_global_zero and dm is not None and hasattr(dm, "input_figures"):
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
        figs = standard_figures(pl_module.task, pl_module.model, dm, preds, targets)
        if hasattr(dm, "figures"):
            figs.update(dm.figures(pl_module.model, preds, targets))
        self.save(trainer, figs)

    def save(self, trainer: L.Trainer, figs: dict) -> None:
        dirpath = self.dirpath or Path(trainer.default_root_dir) / "figures"
        dirpath.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            fig.savefig(dirpath / f"{name}.png", dpi=100)
            for logger in trainer.loggers:
                if hasattr(logger.experiment, "add_figure"):
                    logger.experiment.add_figure(f"figures/{name}", fig, global_step=trainer.current_epoch, close=False)
            plt.close(fig)


__all__ = ["FigureCallback", "standard_figures", "np"]
