"""Which losses and metrics fit which task, in one place (validation and the task both read it)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics as tm
from torchmetrics import classification as C
from torchmetrics import regression as R
from torchmetrics.utilities import dim_zero_cat

from dlcourse.config.types import DEFAULT_LOSS, LOSSES  # noqa: F401  (torch-free: validation reads them too)
from dlcourse.internals import publish_callback_metrics


def resolve_loss(task: str, loss: str) -> str:
    return DEFAULT_LOSS[task] if loss == "auto" else loss


def compute_loss(name: str, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """`out` is the model's raw output: logits for classification (sigmoid/softmax live in the loss,
    which is the numerically stable form), values for regression. `weight` (one per class, task.class_weight)
    weights each example's loss by its class, then the mean over the examples: scikit-learn's class_weight
    as sample weights (with "balanced" weights the training split's mean weight is 1)."""
    if name == "bce":
        per = None if weight is None else weight[y.long()]
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y.float(), weight=per)
    if name == "cross_entropy":
        if weight is None:
            return F.cross_entropy(out, y)
        return (F.cross_entropy(out, y, reduction="none") * weight[y]).mean()
    out = out.reshape(y.shape)
    if name == "mse":
        return F.mse_loss(out, y)
    if name == "mae":
        return F.l1_loss(out, y)
    if name == "huber":
        return F.huber_loss(out, y)
    raise ValueError(name)


def predictions(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What metrics consume: probabilities for classification, values (2-D) for regression."""
    if task == "binary":
        return torch.sigmoid(out.squeeze(-1))
    if task == "multiclass":
        return torch.softmax(out, dim=-1)
    return out.reshape(y.shape).reshape(len(y), -1)


def correct_count(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "binary":
        return ((out.squeeze(-1) > 0).long() == y).sum()
    return (out.argmax(-1) == y).sum()


def rank_auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Exact ROC AUC of every column of `scores` [N, K] against the 0/1 `positive` [N, K], as the
    Mann-Whitney statistic with tied scores counted half (the same value as the trapezoidal area
    under the ROC curve). All columns at once, one sort, no per-class loop. nan for a column
    without positives or negatives."""
    scores, positive = scores.T.contiguous(), positive.T  # [K, N]: sort along contiguous rows
    n = scores.shape[1]
    if scores.device.type == "cpu":  # numpy's unstable argsort: 3x faster than torch's sort here
        order = torch.from_numpy(np.argsort(scores.numpy(), axis=1))  # ties are averaged: order within them is moot
        ranked = scores.gather(1, order)
    else:
        ranked, order = scores.sort(dim=1)
    idx = torch.arange(n, device=scores.device).expand_as(ranked)
    starts = torch.ones_like(ranked, dtype=torch.bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    # Each run of equal scores gets the average of its positions: its first position carried
    # forward, its last carried backward.
    first = torch.where(starts, idx, 0).cummax(dim=1).values
    last = torch.where(ends, idx, n).flip(1).cummin(dim=1).values.flip(1)
    avg_rank = (first + last).double() / 2 + 1  # 1-based
    pos = positive.gather(1, order).double()
    n_pos = pos.sum(1)
    u = (avg_rank * pos).sum(1) - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * (n - n_pos))).float()  # 0/0 = nan where a class is missing


class AUROC(tm.Metric):
    """Exact ROC AUC: binary, or one-vs-rest macro over the classes present in the split (a class
    with no examples has no AUC; torchmetrics would count it as 0). One sort for all classes:
    torchmetrics' AUROC loops over classes, ~10 ms per evaluation of 16,000 MNIST images, a
    sixth of the framework's time budget per epoch."""

    full_state_update = False

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self.num_classes = num_classes  # None: binary (probabilities of the positive class)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        self.scores.append(probs.detach().float())
        self.targets.append(target.detach())

    def compute(self) -> torch.Tensor:
        scores, targets = dim_zero_cat(self.scores), dim_zero_cat(self.targets)  # lists, or tensors after a sync
        if self.num_classes is None:
            return rank_auroc(scores.reshape(-1, 1), targets.reshape(-1, 1).long())[0]
        onehot = F.one_hot(targets.long(), self.num_classes)
        return rank_auroc(scores, onehot).nanmean()


class LastOutputsMSE(tm.Metric):
    """MSE of the last `k` columns of the flattened (N, -1) outputs only. A data module declares k as
    `last_outputs`: for a sequence-to-sequence forecast, the values forecast after the last input step
    (the "last time step MSE" of the textbook), comparable with a sequence-to-vector forecast."""

    full_state_update = False

    def __init__(self, k: int):
        super().__init__()
        self.k = int(k)
        self.add_state("sse", default=torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        diff = preds[:, -self.k :].float() - target[:, -self.k :].float()
        self.sse += (diff * diff).sum()
        self.n += diff.numel()

    def compute(self) -> torch.Tensor:
        return self.sse / self.n.clamp_min(1)


class ClassRecall(tm.Metric):
    """Balanced accuracy as scikit-learn's balanced_accuracy_score (the mean recall of the classes present in
    the targets) and, given the class names, each class's recall as `recall_<class>` (nan without examples)."""

    full_state_update = False

    def __init__(self, num_classes: int, names: list[str] | None = None):
        super().__init__()
        self.num_classes, self.names = num_classes, list(names or [])
        self.add_state("hits", default=torch.zeros(num_classes), dist_reduce_fx="sum")
        self.add_state("support", default=torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        label = (probs > 0.5).long() if probs.ndim == 1 else probs.argmax(-1)  # as the accuracy decides
        target = target.long()
        self.support += torch.bincount(target, minlength=self.num_classes).float()
        self.hits += torch.bincount(target[label == target], minlength=self.num_classes).float()

    def compute(self) -> dict[str, torch.Tensor]:
        recall = self.hits / self.support
        return {"balanced_acc": recall.nanmean(), **{f"recall_{n}": r for n, r in zip(self.names, recall, strict=False)}}


def split_metrics(task: str, num_classes: int | None, io: dict) -> tuple[tm.MetricCollection, tm.MetricCollection]:
    """val/ and test/ metrics; the test's add each class's recall."""
    facts = {"last_outputs": io.get("last_outputs"), "series_scale": io.get("series_scale")}
    return (make_metrics(task, num_classes, **facts).clone(prefix="val/"),
            make_metrics(task, num_classes, **facts, class_names=io.get("class_names")).clone(prefix="test/"))


def make_metrics(task: str, num_classes: int | None, num_outputs: int = 1, last_outputs: int | None = None,
                 series_scale: tuple[float, float] | None = None,
                 class_names: list[str] | None = None) -> tm.MetricCollection:
    """`series_scale`: (mean, std) a series was standardised with; adds mse_raw and mae_raw in its own units."""
    if task == "binary":
        metrics = {
            "acc": C.BinaryAccuracy(),
            "precision": C.BinaryPrecision(),
            "recall": C.BinaryRecall(),
            "f1": C.BinaryF1Score(),
            "specificity": C.BinarySpecificity(),
            "auroc": AUROC(),
        }
    elif task == "multiclass":
        k = dict(num_classes=num_classes, average="macro")
        metrics = {
            "acc": C.MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "precision": C.MulticlassPrecision(**k),
            "recall": C.MulticlassRecall(**k),
            "f1": C.MulticlassF1Score(**k),
            "specificity": C.MulticlassSpecificity(**k),
            "auroc": AUROC(num_classes),
        }
    else:
        metrics = {"mse": R.MeanSquaredError(), "mae": R.MeanAbsoluteError()}
        metrics["r2"] = R.R2Score(multioutput="uniform_average")
        if last_outputs:  # declared by the data module, e.g. a seq2seq forecast's last step
            metrics["mse_last"] = LastOutputsMSE(last_outputs)
        std = float(series_scale[1]) if series_scale else 1.0
        if std != 1.0:  # the same errors in the series' own units
            metrics["mse_raw"], metrics["mae_raw"] = R.MeanSquaredError() * (std * std), R.MeanAbsoluteError() * std
    if task != "regression":  # balanced_acc (and recall_<class> given the names), for imbalanced classes
        metrics["balanced"] = ClassRecall(num_classes or 2, class_names)
    return tm.MetricCollection(metrics)


def metric_targets(task: str, y: torch.Tensor) -> torch.Tensor:
    return y.reshape(len(y), -1) if task == "regression" else y


def publish(trainer, values: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    """Epoch-level values to the loggers and to `trainer.callback_metrics` (read by early stopping,
    checkpointing and the plateau schedule). Lightning's `self.log` does the same but costs about
    2 ms per key and call, which is most of an epoch's time on small data; values here are already
    reduced across ranks, so nothing is lost by going direct."""
    values = {k: v.detach() for k, v in values.items()}
    if trainer.sanity_checking:
        return
    publish_callback_metrics(trainer, values, {k: float(v) for k, v in values.items() if k.endswith(("loss", "acc"))})
    if trainer.is_global_zero:
        scalars = {k: float(v) for k, v in values.items()}
        scalars["epoch"] = float(epoch)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)


class SplitSums:
    """One evaluation pass over a split, as exact epoch values: every batch's predictions are kept and
    the metrics updated once at the end (torchmetrics costs ~0.7 ms per update call and batch, ~10 ms
    an MNIST epoch), the loss summed; the sums are reduced across ranks, then divided."""

    def __init__(self, device):
        self.loss, self.n = torch.zeros((), device=device), torch.zeros((), device=device)
        self.preds, self.targets = [], []

    def add(self, preds: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor, n: int) -> None:
        self.preds.append(preds)
        self.targets.append(targets)
        self.loss += loss_sum
        self.n += n

    def values(self, metrics, reduce, stage: str) -> dict[str, torch.Tensor]:
        if self.preds:
            metrics.update(torch.cat(self.preds), torch.cat(self.targets))
        self.preds, self.targets = [], []
        loss = reduce(self.loss, reduce_op="sum") / reduce(self.n, reduce_op="sum").clamp_min(1)
        values = {f"{stage}/loss": loss, **metrics.compute()}
        metrics.reset()
        return values
