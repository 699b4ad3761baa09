"""The user's own time series: one CSV column, or one series per column, rows in time order.

Each series is split in time: its first part is for training, the next for validation, the last
for test (`val_fraction`, `test_fraction`), so no forecast is scored on values the model trained on.
Each part is cut into windows of n_steps + horizon consecutive values, `stride` steps apart; the
windows of all columns are pooled. With `standardize`, values are scaled by the training parts'
mean and standard deviation (the metrics are then in those units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcourse.config.types import Fraction, Head, PositiveInt
from dlcourse.data.csv import read_csv
from dlcourse.data.series import SeriesDataModule
from dlcourse.errors import DataError


class CSVSeriesDataModule(SeriesDataModule):
    def __init__(
        self,
        path: str,
        columns: str | list[str] | None = None,
        n_steps: PositiveInt = 50,
        horizon: PositiveInt = 1,
        targets: Head = "last",
        stride: PositiveInt = 1,
        val_fraction: Fraction = 0.2,
        test_fraction: Fraction = 0.1,
        standardize: bool = True,
        **kwargs,
    ):
        super().__init__(n_steps=n_steps, horizon=horizon, targets=targets, **kwargs)
        self.path = Path(path).expanduser()
        self.columns = [columns] if isinstance(columns, str) else (list(columns) if columns else None)
        self.stride, self.standardize = int(stride), standardize
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.mean, self.std = 0.0, 1.0

    def load_series(self) -> dict[str, np.ndarray]:
        import pandas as pd

        df = read_csv(self.path)
        columns = self.columns or [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        if not columns:
            raise DataError(f"{self.path} has no numeric column; name the series with data.columns")
        out = {}
        for col in columns:
            if col not in df.columns:
                raise DataError(f"data.columns: {col!r} is not a column of {self.path}; columns: {', '.join(map(str, df.columns))}")
            if not pd.api.types.is_numeric_dtype(df[col]):
                raise DataError(f"column {col!r} of {self.path} is not numeric; a series must be numbers")
            if df[col].isna().any():
                row = int(df[col].isna().to_numpy().nonzero()[0][0]) + 2  # +2: header line, 1-based
                raise DataError(f"column {col!r} of {self.path} has missing values (first at line {row}); fill or drop them")
            out[str(col)] = df[col].to_numpy(dtype=np.float64)
        self.feature_names = list(out)
        return out

    def _windows(self, values: np.ndarray) -> np.ndarray:
        width = self.n_steps + self.horizon
        if len(values) < width:
            return np.empty((0, width), dtype=np.float32)
        return np.lib.stride_tricks.sliding_window_view(values, width)[:: self.stride]

    def split_windows(self):
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        width = self.n_steps + self.horizon
        for col, values in self.load_series().items():
            n = len(values)
            n_test, n_val = round(n * self.test_fraction), round(n * self.val_fraction)
            n_train = n - n_val - n_test
            sizes = {"train": n_train, "val": n_val, "test": n_test}
            short = [s for s, k in sizes.items() if k < width]
            if short:
                raise DataError(
                    f"column {col!r} of {self.path} has {n} values: its {short[0]} part ({sizes[short[0]]} values) is "
                    f"shorter than one window of n_steps + horizon = {width}; use a longer series or smaller n_steps"
                )
            bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
            for split, (lo, hi) in bounds.items():
                parts[split].append(values[lo:hi])
        if self.standardize:
            train = np.concatenate(parts["train"])
            self.mean, self.std = float(train.mean()), float(train.std()) or 1.0
            self.value_label = "value (standardized)"
        return {
            split: np.concatenate([self._windows((v - self.mean) / self.std) for v in series]).astype(np.float32)
            for split, series in parts.items()
        }

    def preprocess(self, x):
        return (x - self.mean) / self.std

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mean, self.std = state.get("mean", 0.0), state.get("std", 1.0)
