"""The user's own table: one row per example, a target column, numeric feature columns."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from dlcourse.config.types import Fraction
from dlcourse.data.tabular import TabularDataModule
from dlcourse.errors import DataError


def read_csv(path: Path):
    """The user's CSV as a DataFrame, or one line saying why it cannot be read."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data.path={str(path)!r}: no such file")
    try:
        return pd.read_csv(path)
    except Exception as e:  # pandas raises many kinds; the user needs the file and the reason
        raise DataError(f"data.path={str(path)!r}: cannot read as CSV ({e})") from e


class CSVDataModule(TabularDataModule):
    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        task: Literal["classification", "regression"] = "classification",
        val_fraction: Fraction = 0.2,
        test_fraction: Fraction = 0.2,
        standardize: bool = True,
        **kwargs,
    ):
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, standardize=standardize, **kwargs)
        self.path, self.target, self.features = Path(path).expanduser(), target, list(features) if features else None
        self.kind = task
        # binary vs multiclass is only known once the labels are read; "regression" is final.
        self.task = "regression" if task == "regression" else "multiclass"

    def load_table(self):
        import pandas as pd

        df = read_csv(self.path)
        if self.target not in df.columns:
            raise DataError(f"data.target={self.target!r} is not a column of {self.path}; columns: {', '.join(df.columns)}")
        features = self.features or [c for c in df.columns if c != self.target]
        for col in features:
            if col not in df.columns:
                raise DataError(f"data.features: column {col!r} is not in {self.path}; columns: {', '.join(df.columns)}")
            if not pd.api.types.is_numeric_dtype(df[col]):
                bad = df[col][pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()].iloc[0]
                raise DataError(f"column {col!r} of {self.path} is not numeric (e.g. {bad!r}); encode it or leave it out of data.features")
            if df[col].isna().any():
                row = int(df[col].isna().to_numpy().nonzero()[0][0]) + 2  # +2: header line, 1-based
                raise DataError(f"column {col!r} of {self.path} has missing values (first at line {row}); fill or drop them")
        if df[self.target].isna().any():
            raise DataError(f"target column {self.target!r} of {self.path} has missing values")
        self.feature_names = features
        x = torch.tensor(df[features].to_numpy(dtype="float32"))
        if self.kind == "regression":
            if not pd.api.types.is_numeric_dtype(df[self.target]):
                raise DataError(f"target column {self.target!r} is not numeric, but data.task=regression")
            return x, torch.tensor(df[self.target].to_numpy(dtype="float32"))
        labels = df[self.target]
        # Sorted label values define the class indices; the mapping is saved with the run.
        self.class_names = [str(v) for v in sorted(labels.unique(), key=lambda v: (str(type(v)), v))]
        if len(self.class_names) < 2:
            raise DataError(f"target column {self.target!r} has a single class; classification needs at least 2")
        self.task = "binary" if len(self.class_names) == 2 else "multiclass"
        index = {name: i for i, name in enumerate(self.class_names)}
        return x, torch.tensor([index[str(v)] for v in labels], dtype=torch.long)
