"""The training loop, read top to bottom as torchvision's `train_one_epoch`: one training call's optimizer
steps, the epoch's running sums and what is published at the end of an epoch.

Lightning calls `Task.training_step` once per item of the training loader, and every call costs more
(hooks, progress, bookkeeping) than a small model's step on a CPU. So on one device the loader hands over
a *group* of batches per call (`task.steps_per_call`: `batches_per_call` decides how many) and `step`
runs one optimizer step per batch of it. Whatever counts steps counts them here, in batches (at the end):
`steps_per_epoch` for the progress bar, `schedule_length` for a schedule's length; `trainer.global_step`
counts every optimizer step as well.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import torch

from dlcourse.errors import NonFiniteLossError
from dlcourse.internals import optimizer_step
from dlcourse.memory import release_freed_memory
from dlcourse.metrics import compute_loss, correct_count
from dlcourse.optim import l1_penalty, step_per_epoch


class TrainLoop:
    """The training side of a Task: the grouping it asks of the loader, its steps and its epoch sums.
    `finding_lr` (dlcourse.lr_finder): one batch a call, the schedule stepped each step, the loss returned."""

    def __init__(self, steps_per_call: int | Literal["auto"] = "auto"):
        self.steps_per_call, self.finding_lr = steps_per_call, False
        self.start_epoch(torch.device("cpu"))

    def attach(self, trainer) -> None:
        """At the start of a fit: the data module groups its training batches by this loop's policy
        (dlcourse's data modules do; another data module's loader hands over one batch a call)."""
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "group_batches"):
            dm.group_batches = partial(self.group_size, trainer)

    def group_size(self, trainer, batches: int) -> int:
        """Batches per call for an epoch of `batches` (the finder: one)."""
        return 1 if self.finding_lr else batches_per_call(self.steps_per_call, batches, trainer)

    def start_epoch(self, device: torch.device) -> None:
        # Plain tensors, summed on the device: no host sync per step, one reduction per epoch.
        self.sum_loss = torch.zeros((), device=device)
        self.sum_correct = torch.zeros((), device=device)
        self.seen, self.batches = 0, 0  # samples and batches (optimizer steps) of the epoch so far
        self.nonfinite = torch.zeros((), dtype=torch.long, device=device)

    # -- one training call ------------------------------------------------------------------
    def step(self, task, group) -> torch.Tensor | None:
        """One optimizer step per batch of `group` (a list of batches, or one batch)."""
        release_freed_memory()  # only once the freed holes add up to more than glibc keeps (dlcourse.memory)
        trainer, trainable = task.trainer, task.trainable
        optimizer = task.optimizers() if trainable else None
        per_step = task.scheduler_interval == "step" or self.finding_lr
        scheduler = task.lr_schedulers() if trainable and per_step else None
        # Direct path: plain backward() and the torch optimizer, where Lightning's wrappers add only
        # hooks (about 2 ms a step here, 10-30% of a small model's epoch). Lightning's path stays for
        # 16-bit mixed precision (gradient scaler) and DDP (its backward bookkeeping).
        direct = optimizer is not None and trainer.world_size == 1 and trainer.precision != "16-mixed"
        # Per-batch values are only collected here and summed once per call: each tiny tensor op costs
        # ~20 us on a CPU, which added up to ~4% of an MNIST-MLP epoch when summed batch by batch.
        losses, sizes, outs, ys = [], [], [], []
        for batch in group if isinstance(group, list) else [group]:
            x, y = batch[0], batch[1]
            out = task.model(x)
            loss = compute_loss(task.loss_name, out, y, task.loss_weight)
            losses.append(loss.detach())
            sizes.append(len(y))
            if task.task != "regression":
                outs.append(out.detach())
                ys.append(y)
            if optimizer is None:
                continue  # nothing to train (e.g. the naive forecast): the run only evaluates it
            if task.l1 > 0:
                loss = loss + task.l1 * l1_penalty(task.model)
            optimizer.zero_grad(set_to_none=True)
            if direct:
                loss.backward()
                if task.gradient_clip_val:
                    torch.nn.utils.clip_grad_norm_(task.model.parameters(), task.gradient_clip_val)
                optimizer_step(optimizer)
            else:
                task.manual_backward(loss)
                if task.gradient_clip_val:
                    task.clip_gradients(optimizer, gradient_clip_val=task.gradient_clip_val,
                                        gradient_clip_algorithm="norm")
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
        return self._add(task.task, losses, sizes, outs, ys)

    def _add(self, kind: str, losses: list, sizes: list, outs: list, ys: list) -> torch.Tensor | None:
        losses = torch.stack(losses).float()
        self.sum_loss += losses @ torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
        self.nonfinite += (~torch.isfinite(losses)).sum()
        if outs:
            self.sum_correct += correct_count(kind, torch.cat(outs), torch.cat(ys))
        self.seen += sum(sizes)
        self.batches += len(sizes)
        return losses[-1] if self.finding_lr else None

    # -- the end of an epoch -----------------------------------------------------------------
    def check_finite(self, task, diverged: bool = False) -> None:
        """Fail on a non-finite training loss of this epoch (or `diverged`: its validation loss)."""
        if self.seen and (diverged or int(self.nonfinite) > 0):
            optimizers = task.trainer.optimizers
            lr = optimizers[0].param_groups[0]["lr"] if optimizers else float("nan")
            raise NonFiniteLossError.in_epoch(task.current_epoch + 1, lr)

    def before_validation(self, task) -> None:
        # Before validation, so that no checkpoint of diverged weights is ever written; the epoch's
        # training values are closed here too, so that a checkpoint saved by this validation holds them.
        trainer = task.trainer
        if trainer.training and not trainer.sanity_checking:
            self.check_finite(task)
            if trainer.is_last_batch:
                self.close_epoch(task)

    def end_epoch(self, task) -> None:
        if self.finding_lr:
            return  # the finder's steps are thrown away: no history, no divergence check, no schedule step
        self.check_finite(task)
        self.close_epoch(task)  # an epoch without validation
        if task.trainable and task.scheduler_factory is not None and task.scheduler_interval == "epoch":
            step_per_epoch(task.lr_schedulers(), task.trainer.callback_metrics.get(task.scheduler_monitor))

    def close_epoch(self, task) -> None:
        """The epoch's train loss/accuracy to the loggers and to task.train_history, once per epoch."""
        epoch = task.current_epoch + 1
        if not self.seen or (task.train_history and task.train_history[-1]["epoch"] == epoch):
            return
        reduce = task.trainer.strategy.reduce
        seen = reduce(torch.tensor(float(self.seen), device=task.device), reduce_op="sum")
        values = {"train/loss": reduce(self.sum_loss, reduce_op="sum") / seen}
        if task.task != "regression":
            values["train/acc"] = reduce(self.sum_correct, reduce_op="sum") / seen
        task.publish(values)
        optimizers = task.trainer.optimizers if task.trainable else []
        lr = {"lr": optimizers[0].param_groups[0]["lr"]} if optimizers else {}  # none for a model without weights
        task.train_history.append({"epoch": epoch, **{k: float(v) for k, v in values.items()}, **lr})


# -- how many batches a call runs, and how many an epoch has ---------------------------------
def batches_per_call(setting: int | Literal["auto"], batches: int, trainer=None) -> int:
    """`auto`: about 8 calls (progress-bar updates) per epoch, one call for epochs of at most 8 batches;
    a number: that many. Always 1 under DDP, whose gradient sync expects one backward per forward call,
    and with trainer.limit_train_batches, which Lightning counts in calls: so it keeps meaning batches."""
    if trainer is not None and (trainer.world_size > 1 or _limited(trainer.limit_train_batches)):
        return 1
    if setting != "auto":
        return int(setting)
    return batches if batches <= 8 else math.ceil(batches / 8)


def _limited(limit) -> bool:
    """Lightning's limit_*_batches: 1.0 (the default, also for null) is every batch; an int is a count."""
    return not (isinstance(limit, float) and limit == 1.0)


def steps_per_epoch(trainer) -> int | float:
    """Optimizer steps (batches) of a training epoch as the trainer runs it: Lightning's count of calls
    (after limit_train_batches) times the batches per call, at most the loader's batches."""
    calls, loader = trainer.num_training_batches, trainer.train_dataloader
    batches = getattr(loader, "num_batches", None)  # a TensorLoader; a plain DataLoader is one batch a call
    if batches is None or calls == float("inf"):
        return calls
    return min(int(batches), int(calls) * int(getattr(loader, "group", 1)))


def schedule_length(trainer, interval: str) -> int:
    """A schedule's length in its own steps: optimizer steps of the run for a per-step schedule, else epochs."""
    if interval != "step":
        return trainer.max_epochs
    calls = trainer.estimated_stepping_batches  # also makes Lightning set up the training loader
    return int(steps_per_epoch(trainer) * trainer.max_epochs or calls)
