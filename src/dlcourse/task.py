"""The one LightningModule: loss, metrics, logging and optimisation for every model and dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning as L
import torch
from torch import nn
from torchmetrics.aggregation import CatMetric

from dlcourse.checkpoints import restore_rng, rng_state
from dlcourse.config.types import Loss, NonNegative, Positive
from dlcourse.errors import NonFiniteLossError
from dlcourse.internals import optimizer_step
from dlcourse.memory import release_freed_memory
from dlcourse.metrics import (
    SplitSums,
    compute_loss,
    correct_count,
    make_metrics,
    metric_targets,
    predictions,
    publish,
    resolve_loss,
)
from dlcourse.optim import l1_penalty, schedule_defaults, schedule_interval, step_per_epoch


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
        config: dict | None = None,
        io: dict | None = None,
    ):
        super().__init__()
        self.model, self.task, self.num_classes = model, task, num_classes
        self.loss_name = resolve_loss(task, loss)
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.scheduler_factory, self.scheduler_interval = scheduler, schedule_interval(scheduler, scheduler_interval)
        self.scheduler_monitor, self.l1, self.gradient_clip_val = scheduler_monitor, l1, gradient_clip_val
        # Optimisation runs in training_step (several steps per call; see there), so Lightning's
        # automatic loop, which would step the optimizer and schedule once per call, is off.
        self.automatic_optimization = False
        self._trainable = any(p.requires_grad for p in model.parameters())
        self.finding_lr = False  # while dlcourse.lr_finder runs Lightning's finder: one batch per call, the loss returned
        self.config = config or {}  # the resolved run config: stored in checkpoints for dlcourse-eval
        self.io = io or {}  # input_shape / num_outputs / task / class names: rebuild the model without data
        self.target_scale = self.io.get("target_scale")  # regression targets standardised by the data: (mean, std)
        facts = {"last_outputs": self.io.get("last_outputs"), "series_scale": self.io.get("series_scale")}
        self.val_metrics, self.test_metrics = (make_metrics(task, num_classes, **facts).clone(prefix=f"{s}/")
                                               for s in ("val", "test"))
        # Test outputs, gathered across ranks, for the figures (confusion matrix, ROC, forecasts).
        self.test_preds, self.test_targets = CatMetric(), CatMetric()
        # Per-epoch metrics, in checkpoints (a resumed run keeps them): history.csv, `dlcourse.run(...).history`.
        self.val_history, self.train_history = [], []  # [{"epoch": 0, "val/loss": ...}, ...]
        self.test_results: dict[str, float] = {}
        self._reset_train_sums()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- training -----------------------------------------------------------------
    def _reset_train_sums(self):
        # Plain tensors, summed on the device: no host sync per step, one reduction per epoch.
        self._sum_loss = torch.zeros((), device=self.device)
        self._sum_correct = torch.zeros((), device=self.device)
        self._seen = 0
        self._nonfinite = torch.zeros((), dtype=torch.long, device=self.device)

    def on_train_epoch_start(self):
        self._reset_train_sums()

    def training_step(self, group, group_idx):
        """One call runs the optimizer steps for a group of batches (see TensorLoader.group): Lightning's
        per-call machinery costs more than a small model's step, so on one device the loader hands
        over several batches at once. `trainer.global_step` still counts every optimizer step."""
        release_freed_memory()  # only once the freed holes add up to more than glibc keeps (dlcourse.memory)
        optimizer = self.optimizers() if self._trainable else None
        per_step = self.scheduler_interval == "step" or self.finding_lr
        scheduler = self.lr_schedulers() if self._trainable and per_step else None
        # Direct path: plain backward() and the torch optimizer, where Lightning's wrappers add only
        # hooks (about 2 ms a step here, 10-30% of a small model's epoch). Lightning's path stays for
        # 16-bit mixed precision (gradient scaler) and DDP (its backward bookkeeping).
        direct = optimizer is not None and self.trainer.world_size == 1 and self.trainer.precision != "16-mixed"
        # Per-batch values are only collected here and summed once per call: each tiny tensor op costs
        # ~20 us on a CPU, which added up to ~4% of an MNIST-MLP epoch when summed batch by batch.
        losses, sizes, outs, ys = [], [], [], []
        for batch in group if isinstance(group, list) else [group]:
            x, y = batch[0], batch[1]
            out = self.model(x)
            loss = compute_loss(self.loss_name, out, y)
            losses.append(loss.detach())
            sizes.append(len(y))
            if self.task != "regression":
                outs.append(out.detach())
                ys.append(y)
            if optimizer is None:
                continue  # nothing to train (e.g. the naive forecast): the run only evaluates it
            if self.l1 > 0:
                loss = loss + self.l1 * l1_penalty(self.model)
            optimizer.zero_grad(set_to_none=True)
            if direct:
                loss.backward()
                if self.gradient_clip_val:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip_val)
                optimizer_step(optimizer)
            else:
                self.manual_backward(loss)
                if self.gradient_clip_val:
                    self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val,
                                        gradient_clip_algorithm="norm")
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
        losses = torch.stack(losses).float()
        self._sum_loss += losses @ torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
        self._nonfinite += (~torch.isfinite(losses)).sum()
        if outs:
            self._sum_correct += correct_count(self.task, torch.cat(outs), torch.cat(ys))
        self._seen += sum(sizes)
        return losses[-1] if self.finding_lr else None

    def _step_epoch_scheduler(self):
        if self._trainable and self.scheduler_factory is not None and self.scheduler_interval == "epoch":
            step_per_epoch(self.lr_schedulers(), self.trainer.callback_metrics.get(self.scheduler_monitor))

    def _check_finite(self):
        if self._seen and int(self._nonfinite) > 0:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
            raise NonFiniteLossError.in_epoch(self.current_epoch + 1, lr)

    def on_validation_start(self):
        # Before validation, so that no checkpoint of diverged weights is ever written; the epoch's
        # training values are closed here too, so that a checkpoint saved by this validation holds them.
        if self.trainer.training and not self.trainer.sanity_checking:
            self._check_finite()
            if self.trainer.is_last_batch:
                self._close_train_epoch()

    def on_train_epoch_end(self):
        if self.finding_lr:
            return  # the finder's steps are thrown away: no history, no divergence check, no schedule step
        self._check_finite()
        self._close_train_epoch()  # an epoch without validation
        self._step_epoch_scheduler()

    def _close_train_epoch(self):
        """The epoch's train loss/accuracy to the loggers and to train_history, once per epoch."""
        if not self._seen or (self.train_history and self.train_history[-1]["epoch"] == self.current_epoch):
            return
        reduce = self.trainer.strategy.reduce
        seen = reduce(torch.tensor(float(self._seen), device=self.device), reduce_op="sum")
        values = {"train/loss": reduce(self._sum_loss, reduce_op="sum") / seen}
        if self.task != "regression":
            values["train/acc"] = reduce(self._sum_correct, reduce_op="sum") / seen
        self.publish(values)
        groups = self.trainer.optimizers[0].param_groups if self._trainable and self.trainer.optimizers else []
        lr = {"lr": groups[0]["lr"]} if groups else {}  # none for a model with nothing to train (naive)
        self.train_history.append({"epoch": self.current_epoch, **{k: float(v) for k, v in values.items()}, **lr})

    # -- evaluation ---------------------------------------------------------------
    def _eval_step(self, batch):
        release_freed_memory()
        x, y = batch[0], batch[1]
        out = self.model(x)
        preds, targets = predictions(self.task, out, y), metric_targets(self.task, y)
        if self.target_scale is not None:  # trained on standardised targets: metrics in the target's own units
            mean, std = self.target_scale
            preds, targets = preds * std + mean, targets * std + mean
        self._eval.add(preds, targets, compute_loss(self.loss_name, out, y) * len(y), len(y))
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
                self._nonfinite += 1  # the weights diverged in the epoch's last step: fail, not early-stop
                self._check_finite()
            self.val_history.append({"epoch": self.current_epoch, **row})

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

    def publish(self, values: dict[str, torch.Tensor]) -> None:
        publish(self.trainer, values, epoch=self.current_epoch, step=self.global_step)

    # -- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        if not any(p.requires_grad for p in self.model.parameters()):
            return None  # a model without parameters (the naive forecast): the run only evaluates it
        params = self.model.param_groups() if hasattr(self.model, "param_groups") else self.model.parameters()
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        defaults = schedule_defaults(self.scheduler_factory, optimizer, self.trainer, self.scheduler_interval)
        scheduler = self.scheduler_factory(optimizer, **defaults)
        # Stepped by the task itself (training_step / on_train_epoch_end), plateau on scheduler_monitor.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    # -- checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dlcourse_config"] = self.config
        checkpoint["dlcourse_io"] = self.io
        checkpoint["val_history"] = self.val_history
        checkpoint["train_history"] = self.train_history
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.val_history = list(checkpoint.get("val_history", []))
        self.train_history = list(checkpoint.get("train_history", []))
        restore_rng(checkpoint.get("rng"))
