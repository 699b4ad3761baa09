"""Shared logic for tables that fit in memory: split (stratified for classes), then, with the training
rows' statistics only, impute and standardise as scikit-learn's
Pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()) does: a missing (NaN)
feature becomes the training rows' median, and each column with gaps IN THE TRAINING ROWS adds a 0/1
"was missing" input after the features (a column with gaps only in validation, test or predicted rows
is imputed too, without an indicator, as SimpleImputer does); then features (a column that is constant
in the training rows keeps scale 1) and regression targets (trained on in standard units, reported
back in the target's own units by the task) are standardised with ddof=0. The statistics travel with
the model."""

from __future__ import annotations

import torch

from dlcourse.config.types import Fraction
from dlcourse.data.base import InMemoryDataModule


def fit_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation; a (nearly) constant column gets scale 1, not a tiny
    number that would blow up any other value it takes later (a validation row, a prediction)."""
    x64 = x.double()  # float32 sums of large values overflow or drift; the statistics need not
    mean, std = x64.mean(0), x64.std(0, correction=0)
    constant = std <= 1e-6 * mean.abs().clamp_min(1.0)
    return mean.float(), torch.where(constant, torch.ones_like(std), std).float()


def fit_imputer(x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """(fill, indicate): the training rows' median of each column (0 for a column with no value at
    all) and the columns that have gaps in them."""
    import warnings

    import numpy as np

    if not len(x):
        return torch.zeros(x.shape[1:]), []
    with warnings.catch_warnings():  # numpy's "All-NaN slice": such a column is filled with 0
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = torch.from_numpy(np.nanmedian(x.double().numpy(), axis=0)).float()  # the median numpy (and sklearn) take
    return torch.nan_to_num(fill, nan=0.0), torch.isnan(x).any(0).nonzero().flatten().tolist()


class TabularDataModule(InMemoryDataModule):
    inputs = "table"

    def __init__(self, val_fraction: Fraction = 0.2, test_fraction: Fraction = 0.2, standardize: bool = True,
                 standardize_target: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.standardize, self.standardize_target = standardize, standardize_target
        self._raw: dict | None = None  # the splits as read (before imputing and scaling)
        self.fill: torch.Tensor | None = None  # per raw column: what a missing value becomes
        self.indicate: list[int] = []  # raw columns that get a "was missing" input
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.target_mean: float | None = None  # regression: targets are (y - target_mean) / target_std in training
        self.target_std: float | None = None

    def load_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All rows as (float features [N, F], targets); sets feature_names and class_names."""
        raise NotImplementedError

    def split_indices(self, y: torch.Tensor) -> dict[str, list[int]]:
        from sklearn.model_selection import train_test_split

        from dlcourse.errors import DataError

        idx = list(range(len(y)))
        strat = y.numpy() if self.task != "regression" else None
        try:
            rest, test = train_test_split(idx, test_size=self.test_fraction, stratify=strat, random_state=self.seed)
            val_share = self.val_fraction / (1.0 - self.test_fraction)
            strat_rest = strat[rest] if strat is not None else None
            train, val = train_test_split(rest, test_size=val_share, stratify=strat_rest, random_state=self.seed)
        except ValueError as e:  # too few rows (or rows of a class) for the three parts
            many = strat is not None and len(set(strat.tolist())) > 20  # e.g. an age or a price read as classes
            raise DataError(f"{len(idx)} rows cannot be split into train, validation and test "
                            f"(data.val_fraction={self.val_fraction}, data.test_fraction={self.test_fraction}"
                            f"{', stratified by class' if strat is not None else ''}): {str(e).splitlines()[0]}"
                            f"{'; the target has many classes: if it is a quantity, set data.task=regression' if many else ''}"
                            ) from None
        return {"train": train, "val": val, "test": test}

    def build(self):
        x, y = self.load_table()
        parts = self.split_indices(y)
        raw = {split: (x[i], y[i]) for split, i in parts.items()}
        self._raw = raw  # cross-validation refits the imputation and scales on other rows of these
        return self._scaled(raw)

    def _scaled(self, raw: dict) -> dict:
        """Fit the scales on raw["train"] (statistics of the training rows only: no peeking), apply to all."""
        x_train, y_train = raw["train"]
        self.mean = self.std = None  # refitted below on this training split (a fold's, train+val's)
        self.fill, self.indicate = fit_imputer(x_train)
        if self.standardize:
            self.mean, self.std = fit_scale(self.impute(x_train))
        if self.task == "regression" and self.standardize_target:
            mean, std = fit_scale(y_train.reshape(len(y_train), -1).float())
            self.target_mean, self.target_std = float(mean.mean()), float(std.mean())
        return {name: (self.preprocess(x), self.scale_target(y)) for name, (x, y) in raw.items()}

    def fold_splits(self, splits: dict, fold: int, folds: int) -> dict:
        """Cross-validation folds standardised with each fold's own training rows (no peeking at its
        validation fold)."""
        return self._scaled(super().fold_splits(self._unscaled(splits), fold, folds))

    def pool_splits(self, splits: dict) -> dict:
        """train+val as one training split (cv.refit), standardised with all of its rows."""
        return self._scaled(super().pool_splits(self._unscaled(splits)))

    def _unscaled(self, splits: dict) -> dict:
        if self._raw is not None:  # the rows as read, gaps included
            return dict(self._raw)
        return {name: (self.unprocess(x), self.unscale_target(y)) for name, (x, y) in splits.items()}

    def inputs_from(self, df, where: str = "the table") -> torch.Tensor:
        """New rows (a predict CSV with the training features' columns) as model inputs; a gap is imputed
        as in training, or (a model saved without imputation, an infinite value) one line naming it."""
        from dlcourse.errors import DataError

        x = torch.tensor(df[self.feature_names].to_numpy(dtype="float64"))
        bad = torch.isinf(x) | (torch.isnan(x) if self.fill is None else torch.zeros_like(x, dtype=torch.bool))
        if bad.any():
            row, col = bad.nonzero()[0].tolist()
            what = "an infinite" if torch.isinf(x[row, col]) else "a missing"
            raise DataError(f"column {self.feature_names[col]!r} of {where} has {what} value at line {row + 2}, "
                            f"which this model cannot take; fill or drop it")
        return self.preprocess(x.float())

    def impute(self, x: torch.Tensor) -> torch.Tensor:
        """Gaps (NaN) filled with the training medians, then a 0/1 input per column in `indicate`."""
        if self.fill is None:
            return x
        gaps = torch.isnan(x)
        return torch.cat([torch.where(gaps, self.fill, x), gaps[:, self.indicate].float()], dim=1)

    def imputation_text(self) -> list[str]:
        """What `impute` does, in words (dlcourse-export's sidecar JSON)."""
        if self.fill is None:
            return []
        names = self.feature_names or [str(i) for i in range(len(self.fill))]
        text = [f"a missing value (NaN) becomes the training rows' median {[float(f'{v:.6g}') for v in self.fill]}"]
        if self.indicate:
            text.append(f"then one 0/1 input per column with gaps in training ({', '.join(names[i] for i in self.indicate)})"
                        f", 1 where the value was missing")
        return text

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = self.impute(x.float())
        return (x - self.mean) / self.std if self.mean is not None else x

    def unprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to raw values; a value the indicator says was missing becomes NaN again."""
        x = x * self.std + self.mean if self.mean is not None else x
        if self.fill is None or not self.indicate:
            return x
        raw, flags = x[:, : len(self.fill)].clone(), x[:, len(self.fill):] > 0.5
        raw[:, self.indicate] = torch.where(flags, torch.nan, raw[:, self.indicate])
        return raw

    def scale_target(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.target_mean) / self.target_std if self.target_mean is not None else y

    def unscale_target(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.target_std + self.target_mean if self.target_mean is not None else y

    @property
    def target_scale(self) -> list[float] | None:
        """(mean, std) of a standardised regression target: what the task multiplies back in."""
        return None if self.target_mean is None else [self.target_mean, self.target_std]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fill": self.fill, "indicate": self.indicate, "mean": self.mean, "std": self.std,
                "target_mean": self.target_mean, "target_std": self.target_std}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mean, self.std = state.get("mean"), state.get("std")
        self.fill, self.indicate = state.get("fill"), list(state.get("indicate") or [])
        self.target_mean, self.target_std = state.get("target_mean"), state.get("target_std")
