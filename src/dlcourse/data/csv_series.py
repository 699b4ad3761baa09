"""The user's own time series: one CSV column, or one series per column, rows in time order.

Each series is split in time: its first part is for training, the next for validation, the last
for test (`val_fraction`, `test_fraction`), so no forecast is scored on values the model trained on.
Each part is cut into windows of n_steps + horizon consecutive values, `stride` steps apart; the
windows of all columns are pooled. A validation or test window forecasts values of its part from the
n_steps values before them, which may lie in the part before (inputs only, never targets): so every
value of the part is forecast, as it would be in use (seq2seq excepted: its targets follow every input
step, so its windows stay inside their part). With `standardize`, values are scaled by the training
parts' mean and standard deviation (the metrics are then in those units; `*_raw` ones in the series'
own); with `normalize=window` the model also scales each window by its own statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from dlcourse.config.types import Fraction, Head, PositiveInt
from dlcourse.config.validate import did_you_mean
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
        normalize: Literal["window", "global"] = "window",
        **kwargs,
    ):
        super().__init__(n_steps=n_steps, horizon=horizon, targets=targets, normalize=normalize, **kwargs)
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
                hint = did_you_mean(str(col), map(str, df.columns), show=repr)
                raise DataError(f"data.columns: {col!r} is not a column of {self.path}{hint}; "
                                f"columns: {', '.join(map(str, df.columns))}")
            if not pd.api.types.is_numeric_dtype(df[col]):
                raise DataError(f"column {col!r} of {self.path} is not numeric; a series must be numbers")
            values = df[col].to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                row = int((~np.isfinite(values)).nonzero()[0][0])
                what = "missing values" if np.isnan(values[row]) else f"an infinite value ({values[row]:g})"
                raise DataError(f"column {col!r} of {self.path} has {what} (first at line {row + 2} of the file, "
                                "the header being line 1); a series has no gaps: fill them, e.g. with pandas' interpolate()")
            out[str(col)] = values
        self.feature_names = list(out)
        return out

    def _windows(self, values: np.ndarray) -> np.ndarray:
        width = self.n_steps + self.horizon
        if len(values) < width:
            return np.empty((0, width), dtype=np.float32)
        return np.lib.stride_tricks.sliding_window_view(values, width)[:: self.stride]

    def split_windows(self):
        series = self.load_series()
        bounds = {col: self._bounds(col, len(values)) for col, values in series.items()}
        if self.standardize:
            train = np.concatenate([values[: bounds[col]["train"][1]] for col, values in series.items()])
            self.mean, self.std = float(train.mean()), float(train.std()) or 1.0
            self.value_label = "value (standardized)"
        return {
            split: np.concatenate([self._windows((values[slice(*bounds[col][split])] - self.mean) / self.std)
                                   for col, values in series.items()]).astype(np.float32)
            for split in ("train", "val", "test")
        }

    def _bounds(self, col: str, n: int) -> dict[str, tuple[int, int]]:
        """The values each part's windows are cut from, (start, end), in a series of n; one line if a part
        cannot give one window. Validation and test windows reach n_steps back, before their part."""
        n_test, n_val = round(n * self.test_fraction), round(n * self.val_fraction)
        n_train = n - n_val - n_test
        width = self.n_steps + self.horizon
        # Validation and test windows take their inputs from before their part (seq2seq aside): a part
        # then needs only the horizon values one forecast scores.
        need = {"train": width, "val": width if self.targets == "seq2seq" else self.horizon}
        need["test"] = need["val"]
        sizes = {"train": n_train, "val": n_val, "test": n_test}
        short = [s for s, k in sizes.items() if k < need[s]]
        if short:
            part = short[0]
            raise DataError(
                f"column {col!r} of {self.path} has {n} values: its {part} part ({sizes[part]} values) is shorter "
                f"than {'one window of n_steps + horizon' if need[part] == width else 'the horizon'} = {need[part]}; "
                f"use a longer series, smaller n_steps or horizon, or a larger data.{part}_fraction"
            )
        reach = 0 if self.targets == "seq2seq" else self.n_steps  # seq2seq targets follow every input step
        return {"train": (0, n_train), "val": (n_train - reach, n_train + n_val), "test": (n_train + n_val - reach, n)}

    @property
    def interval_block(self) -> int:
        """Test windows resampled together by the bootstrap intervals (dlcourse.intervals): neighbouring
        windows share values, so blocks of max(horizon, cube root of the windows) of them."""
        n = len(self.splits["test"][0]) if self.splits else 1
        return max(self.horizon, round(n ** (1 / 3)))

    @property
    def series_scale(self) -> tuple[float, float] | None:
        """(mean, std) of the global standardisation: metrics * std are in the series' own units."""
        return (self.mean, self.std) if self.standardize else None

    def preprocess(self, x):
        return (x - self.mean) / self.std

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mean, self.std = state.get("mean", 0.0), state.get("std", 1.0)
