"""The one LightningModule: loss, metrics, logging and optimisation for every model and dataset."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics.aggregation import CatMetric

from dlcourse.errors import NonFiniteLossError
from dlcourse.metrics import (
    compute_loss,
    correct_count,
    make_metrics,
    metric_targets,
    predictions,
    resolve_loss,
)


class Task(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        task: str,
        num_classes: int | None = None,
        loss: str = "auto",
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        l1: float = 0.0,
        gradient_clip_val: float | None = None,
        config: dict | None = None,
        io: dict | None = None,
    ):
        super().__init__()
        self.model, self.task, self.num_classes = model, task, num_classes
        self.loss_name = resolve_loss(task, loss)
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.scheduler_factory, self.scheduler_interval = scheduler, scheduler_interval
        self.scheduler_monitor, self.l1 = scheduler_monitor, l1
        self.gradient_clip_val = gradient_clip_val
        # Optimisation runs in training_step (several steps per call; see there), so Lightning's
        # automatic loop, which would step the optimizer and schedule once per call, is off.
        self.automatic_optimization = False
        self._trainable = any(p.requires_grad for p in model.parameters())
        self.config = config or {}  # the resolved run config: stored in checkpoints for dlcourse-eval
        self.io = io or {}  # input_shape / num_outputs / task / class names: rebuild the model without data
        self.val_metrics = make_metrics(task, num_classes, last_outputs=self.io.get("last_outputs")).clone(prefix="val/")
        self.test_metrics = make_metrics(task, num_classes, last_outputs=self.io.get("last_outputs")).clone(prefix="test/")
        # Test outputs, gathered across ranks, for the figures (confusion matrix, ROC, forecasts).
        self.test_preds, self.test_targets = CatMetric(), CatMetric()
        self.val_history: list[dict[str, float]] = []
        self.test_results: dict[str, float] = {}  # per-epoch validation metrics (saved in checkpoints)
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

    def _l1_penalty(self) -> torch.Tensor:
        # Weights only (matrices and kernels), not biases or norm scales, as L1 is usually taught.
        return sum(p.abs().sum() for p in self.model.parameters() if p.ndim > 1)

    def training_step(self, group, group_idx):
        """One call runs the optimizer steps for a group of batches (see TensorLoader.group): Lightning's
        per-call machinery costs more than a small model's step, so on one device the loader hands
        over several batches at once. `trainer.global_step` still counts every optimizer step."""
        optimizer = self.optimizers() if self._trainable else None
        scheduler = self.lr_schedulers() if self._trainable and self.scheduler_interval == "step" else None
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
                loss = loss + self.l1 * self._l1_penalty()
            optimizer.zero_grad(set_to_none=True)
            if direct:
                loss.backward()
                if self.gradient_clip_val:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip_val)
                optimizer._on_before_step()  # Lightning's step counter: trainer.global_step stays exact
                optimizer.optimizer.step()
                optimizer._on_after_step()
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

    def _step_epoch_scheduler(self):
        if not self._trainable or self.scheduler_factory is None or self.scheduler_interval != "epoch":
            return
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            value = self.trainer.callback_metrics.get(self.scheduler_monitor)
            if value is not None:  # validation ran before this hook, so this is this epoch's value
                scheduler.step(value)
        else:
            scheduler.step()

    def _check_finite(self):
        if self._seen and int(self._nonfinite) > 0:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
            raise NonFiniteLossError(
                f"the loss became non-finite (nan or inf) in epoch {self.current_epoch}; "
                f"the run stopped and its last good checkpoint stays. Try a lower learning rate "
                f"(optimizer.lr is {lr:g} now) or gradient clipping (trainer.gradient_clip_val=1.0)"
            )

    def on_validation_start(self):
        # Before validation, so that no checkpoint of diverged weights is ever written.
        if self.trainer.training and not self.trainer.sanity_checking:
            self._check_finite()

    def on_train_epoch_end(self):
        self._check_finite()
        self._step_epoch_scheduler()
        if self._seen:
            reduce = self.trainer.strategy.reduce
            seen = reduce(torch.tensor(float(self._seen), device=self.device), reduce_op="sum")
            values = {"train/loss": reduce(self._sum_loss, reduce_op="sum") / seen}
            if self.task != "regression":
                values["train/acc"] = reduce(self._sum_correct, reduce_op="sum") / seen
            self.publish(values)

    # -- evaluation ---------------------------------------------------------------
    def _eval_step(self, batch):
        x, y = batch[0], batch[1]
        out = self.model(x)
        preds, targets = predictions(self.task, out, y), metric_targets(self.task, y)
        # Metrics are updated once per epoch with every batch's predictions (_end_eval): the same
        # sums, without torchmetrics' ~0.7 ms per update call and batch (~10 ms an MNIST epoch).
        self._eval_preds.append(preds)
        self._eval_targets.append(targets)
        self._eval_loss += compute_loss(self.loss_name, out, y) * len(y)
        self._eval_n += len(y)
        return preds, targets

    def _start_eval(self):
        self._eval_loss = torch.zeros((), device=self.device)
        self._eval_n = torch.zeros((), device=self.device)
        self._eval_preds, self._eval_targets = [], []

    def _end_eval(self, metrics, stage: str) -> dict[str, float]:
        """Exact epoch values over the whole split: sums reduced across ranks, then divided."""
        if self._eval_preds:
            metrics.update(torch.cat(self._eval_preds), torch.cat(self._eval_targets))
        self._eval_preds, self._eval_targets = [], []
        reduce = self.trainer.strategy.reduce
        loss = reduce(self._eval_loss, reduce_op="sum") / reduce(self._eval_n, reduce_op="sum").clamp_min(1)
        values = {f"{stage}/loss": loss, **metrics.compute()}
        metrics.reset()
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
        """Epoch-level values to the loggers and to `trainer.callback_metrics` (read by early stopping,
        checkpointing and the plateau schedule). Lightning's `self.log` does the same but costs about
        2 ms per key and call, which is most of an epoch's time on small data; values here are already
        reduced across ranks, so nothing is lost by going direct."""
        trainer = self.trainer
        values = {k: v.detach() for k, v in values.items()}
        if trainer.sanity_checking:
            return
        trainer.callback_metrics.update(values)
        trainer.progress_bar_metrics.update({k: float(v) for k, v in values.items() if k.endswith(("loss", "acc"))})
        if trainer.is_global_zero:
            scalars = {k: float(v) for k, v in values.items()}
            scalars["epoch"] = float(self.current_epoch)
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=self.global_step)

    # -- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        if not any(p.requires_grad for p in self.model.parameters()):
            return None  # a model without parameters (the naive forecast): the run only evaluates it
        params = self.model.param_groups() if hasattr(self.model, "param_groups") else self.model.parameters()
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, **self._scheduler_defaults(optimizer))
        # Stepped by the task itself (training_step / on_train_epoch_end), plateau on scheduler_monitor.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def _scheduler_defaults(self, optimizer) -> dict:
        """Fill in what a schedule needs from the run itself (so the user never types it twice):
        OneCycle's max_lr is the optimizer's lr and its length the run's steps; cosine spans the run."""
        factory = self.scheduler_factory
        given = getattr(factory, "keywords", {}) or {}
        accepted = inspect.signature(getattr(factory, "func", factory)).parameters
        steps = self.trainer.max_epochs
        if self.scheduler_interval == "step":  # optimizer steps, not loader calls (a call may hold several)
            calls = self.trainer.estimated_stepping_batches  # also makes Lightning set up the loader
            loader = self.trainer.train_dataloader
            steps = getattr(loader, "num_batches", 0) * self.trainer.max_epochs or calls
        defaults = {}
        if "max_lr" in accepted and given.get("max_lr") is None:
            defaults["max_lr"] = [g["lr"] for g in optimizer.param_groups]
        if "total_steps" in accepted and given.get("total_steps") is None:
            defaults["total_steps"] = int(steps)
        if "T_max" in accepted and given.get("T_max") is None:
            defaults["T_max"] = int(steps)
        return defaults

    # -- checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dlcourse_config"] = self.config
        checkpoint["dlcourse_io"] = self.io
        checkpoint["val_history"] = self.val_history
        # The global RNG state (dropout masks, augmentation) so a resumed run continues exactly
        # where the unbroken run would be; batch order is seeded per epoch by the loader.
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.val_history = list(checkpoint.get("val_history", []))
        rng = checkpoint.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
