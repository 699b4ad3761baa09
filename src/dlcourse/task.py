"""The one LightningModule: loss, metrics, logging and optimisation for every model and dataset; its
training steps, their grouping into Lightning calls and the epoch's train values are dlcourse.loop's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning as L
import torch
from torch import nn
from torchmetrics.aggregation import CatMetric

from dlcourse.checkpoints import one_based, restore_rng, rng_state
from dlcourse.config.types import ClassWeight, Loss, NonNegative, Positive, PositiveInt
from dlcourse.loop import TrainLoop, schedule_length
from dlcourse.memory import release_freed_memory
from dlcourse.metrics import (
    SplitSums,
    compute_loss,
    metric_targets,
    predictions,
    publish,
    resolve_loss,
    split_metrics,
)
from dlcourse.optim import schedule_defaults, schedule_interval


class Task(L.LightningModule):
    """`task` is the kind of data (binary, multiclass, regression); the other arguments without a
    default are filled in by dlcourse.build from the data module and the optimizer/scheduler groups."""

    def __init__(
        self,
        model: nn.Module,
        task: str,
        num_classes: int | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        loss: Loss = "auto",
        l1: NonNegative = 0.0,
        gradient_clip_val: Positive | None = None,
        scheduler_interval: Literal["auto", "epoch", "step"] = "auto",
        scheduler_monitor: str = "val/loss",
        class_weight: ClassWeight = None,  # "balanced" or one weight per class; resolved into io by dlcourse.build
        steps_per_call: PositiveInt | Literal["auto"] = "auto",  # batches per Lightning call (dlcourse.loop)
        config: dict | None = None,
        io: dict | None = None,
    ):
        super().__init__()
        self.model, self.task, self.num_classes = model, task, num_classes
        self.loss_name = resolve_loss(task, loss)
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.scheduler_factory, self.scheduler_interval = scheduler, schedule_interval(scheduler, scheduler_interval)
        self.scheduler_monitor, self.l1, self.gradient_clip_val = scheduler_monitor, l1, gradient_clip_val
        # Optimisation runs in the loop (several steps per call; dlcourse.loop), so Lightning's automatic
        # optimisation, which would step the optimizer and schedule once per call, is off.
        self.automatic_optimization = False
        self.loop = TrainLoop(steps_per_call)
        self.trainable = any(p.requires_grad for p in model.parameters())
        self.config = config or {}  # the resolved run config: stored in checkpoints for dlcourse-eval
        self.io = io or {}  # input_shape / num_outputs / task / class names: rebuild the model without data
        self.target_scale = self.io.get("target_scale")  # regression targets standardised by the data: (mean, std)
        weight = self.io.get("class_weight")  # the loss's weight per class, task.class_weight (not in the state_dict)
        self.register_buffer("loss_weight", None if weight is None else torch.tensor(weight), persistent=False)
        self.val_metrics, self.test_metrics = split_metrics(task, num_classes, self.io)
        self.test_preds, self.test_targets = CatMetric(), CatMetric()  # test outputs (all ranks), for the figures
        # Per-epoch metrics, in checkpoints (a resumed run keeps them): history.csv, `dlcourse.run(...).history`.
        self.val_history, self.train_history = [], []  # [{"epoch": 1, "val/loss": ...}, ...]: counted from 1
        self.test_results: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- training: the steps and the epoch's sums are the loop's (dlcourse.loop) ----------------
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.loop.attach(self.trainer)  # the loader groups its batches as the loop asks

    def on_train_epoch_start(self):
        self.loop.start_epoch(self.device)

    def training_step(self, group, group_idx):
        """The optimizer steps of a group of batches (several per call on one device; see dlcourse.loop).
        `trainer.global_step` still counts every optimizer step."""
        return self.loop.step(self, group)

    def on_validation_start(self):
        self.loop.before_validation(self)

    def on_train_epoch_end(self):
        self.loop.end_epoch(self)

    # -- evaluation ---------------------------------------------------------------
    def _eval_step(self, batch):
        release_freed_memory()
        x, y = batch[0], batch[1]
        out = self.model(x)
        preds, targets = predictions(self.task, out, y), metric_targets(self.task, y)
        if self.target_scale is not None:  # trained on standardised targets: metrics in the target's own units
            mean, std = self.target_scale
            preds, targets = preds * std + mean, targets * std + mean
        self._eval.add(preds, targets, compute_loss(self.loss_name, out, y, self.loss_weight) * len(y), len(y))
        return preds, targets

    def _start_eval(self):
        self._eval = SplitSums(self.device)

    def _end_eval(self, metrics, stage: str) -> dict[str, float]:
        values = self._eval.values(metrics, self.trainer.strategy.reduce, stage)
        self.publish(values)
        return {k: float(v) for k, v in values.items()}

    def on_validation_epoch_start(self):
        self._start_eval()

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_end(self):
        row = self._end_eval(self.val_metrics, "val")
        if not self.trainer.sanity_checking:
            if row["val/loss"] != row["val/loss"] or abs(row["val/loss"]) == float("inf"):
                self.loop.check_finite(self, diverged=True)  # diverged in the epoch's last step: fail, not early-stop
            self.val_history.append({"epoch": self.current_epoch + 1, **row})

    def on_test_epoch_start(self):
        self._start_eval()
        self.test_preds.reset()
        self.test_targets.reset()

    def test_step(self, batch, batch_idx):
        preds, targets = self._eval_step(batch)
        self.test_preds.update(preds)
        self.test_targets.update(targets)

    def on_test_epoch_end(self):
        self.test_results = self._end_eval(self.test_metrics, "test")

    def publish(self, values: dict[str, torch.Tensor]) -> None:  # `epoch` 0-based as Lightning: loggers step at epoch + 1
        publish(self.trainer, values, epoch=self.current_epoch, step=self.global_step)

    # -- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        if not any(p.requires_grad for p in self.model.parameters()):
            return None  # a model without parameters (the naive forecast): the run only evaluates it
        params = self.model.param_groups() if hasattr(self.model, "param_groups") else self.model.parameters()
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        length = schedule_length(self.trainer, self.scheduler_interval)  # in optimizer steps or epochs
        defaults = schedule_defaults(self.scheduler_factory, optimizer, length)
        scheduler = self.scheduler_factory(optimizer, **defaults)
        # Stepped by the loop (a step or an epoch's end; dlcourse.loop), plateau on scheduler_monitor.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    # -- checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dlcourse_config"] = self.config
        checkpoint["dlcourse_io"] = self.io
        checkpoint["val_history"] = self.val_history
        checkpoint["train_history"] = self.train_history
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.val_history = one_based(checkpoint.get("val_history", []))
        self.train_history = one_based(checkpoint.get("train_history", []))
        restore_rng(checkpoint.get("rng"))
