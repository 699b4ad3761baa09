"""Value types for constructor signatures, readable without importing torch.

A model or data module annotates its arguments with these (or with plain `int`, `list[int]`,
`Literal[...]`, ...), and `dlcourse.config.validate` checks a config against them before anything
is built, e.g. `dropout: Probability = 0.0` makes `model.dropout=1.5` a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal


@dataclass(frozen=True)
class Interval:
    """Bounds of a number (or, on a list, of its length): Interval(ge=0, lt=1) is [0, 1)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def contains(self, v: float) -> bool:
        return ((self.gt is None or v > self.gt) and (self.ge is None or v >= self.ge)
                and (self.lt is None or v < self.lt) and (self.le is None or v <= self.le))

    def describe(self) -> str:
        parts = [f"{op} {int(bound) if float(bound).is_integer() else f'{bound:g}'}" for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if bound is not None]
        return " and ".join(parts)


@dataclass(frozen=True)
class MinLen:
    """A list with at least `n` items."""

    n: int


Probability = Annotated[float, Interval(ge=0, lt=1)]  # dropout rates
Fraction = Annotated[float, Interval(gt=0, lt=1)]  # shares of a data set
Positive = Annotated[float, Interval(gt=0)]
NonNegative = Annotated[float, Interval(ge=0)]
PositiveInt = Annotated[int, Interval(ge=1)]
NonNegativeInt = Annotated[int, Interval(ge=0)]
Seed = Annotated[int, Interval(ge=0, le=2**32 - 1)]  # what numpy's generators accept
Widths = Annotated[list[PositiveInt], MinLen(1)]  # hidden layer sizes, e.g. [300, 100]

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
Init = Literal["default", "xavier", "kaiming", "normal"]
Head = Literal["last", "seq2seq", "iterative"]  # sequence models: what is forecast (see data/series.py)
BatchSize = PositiveInt | Literal["full"]  # "full": the whole training split, i.e. full-batch gradient descent

# Losses and the kinds of task each fits ("auto" picks DEFAULT_LOSS by the task); dlcourse.metrics computes them.
LOSSES = {"bce": ("binary",), "cross_entropy": ("multiclass",), "mse": ("regression",), "mae": ("regression",),
          "huber": ("regression",)}
DEFAULT_LOSS = {"binary": "bce", "multiclass": "cross_entropy", "regression": "mse"}
Loss = Literal["auto", "bce", "cross_entropy", "mse", "mae", "huber"]
# task.class_weight: "balanced" (scikit-learn's n_samples / (n_classes * count) of the training split) or one
# weight per class, in the order of the class names.
ClassWeight = Literal["balanced"] | Annotated[list[Positive], MinLen(2)] | None
# What a data module's examples are (class attribute `inputs`) and what a model takes (`accepts`).
INPUT_KINDS = {"table": "rows of numeric features", "image": "images", "sequence": "sequences (time series windows)"}
