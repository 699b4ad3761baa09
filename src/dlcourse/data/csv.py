"""The user's own table: one row per example, a target column, feature columns.

Numeric features are used as they are (then standardised, see tabular.py); a column of strings is
one-hot encoded, one input per category (the categories of the whole file, saved with the model:
predictions on new rows use the same ones). Labels may be strings or integers. A missing or
non-finite value, a target that does not fit the task or a column with too many categories stops
the run with one line naming the column (and the first row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlcourse.config.types import Fraction, PositiveInt
from dlcourse.data.tabular import TabularDataModule
from dlcourse.errors import DataError


def read_csv(path: Path, key: str = "data.path"):
    """The user's CSV as a DataFrame, or one line saying why it cannot be read. The delimiter is
    sniffed (`,` `;` tab `|`), as spreadsheets in many locales write `;` and .tsv files tabs."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{key}={str(path)!r}: no such file")
    try:
        return pd.read_csv(path, sep=_delimiter(path))
    except Exception as e:  # pandas raises many kinds; the user needs the file and the reason
        raise DataError(f"{key}={str(path)!r}: cannot read as CSV ({str(e).strip().splitlines()[0]})") from e


def _delimiter(path: Path) -> str:
    import csv

    with open(path, newline="", errors="replace") as f:
        sample = f.read(65536)
    header = sample.splitlines()[0] if sample else ""
    try:
        found = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or too irregular to tell: pandas' default
        return "\t" if path.suffix.lower() == ".tsv" else ","
    return found if found in header or "," not in header else ","


def first_bad_row(values: np.ndarray) -> int:
    """The CSV line (1-based, after the header) of the first missing or non-finite value."""
    return int(np.flatnonzero(~np.isfinite(values))[0]) + 2


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
        standardize_target: bool = True,  # regression: train on standardised targets, report in their units
        max_categories: PositiveInt = 50,  # a string column with more categories than this is refused
        **kwargs,
    ):
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, standardize=standardize,
                         standardize_target=standardize_target, **kwargs)
        self.path, self.target, self.features = Path(path).expanduser(), target, list(features) if features else None
        self.kind, self.max_categories = task, max_categories
        self.categories: dict[str, list[str]] = {}  # one-hot encoded columns -> their categories
        # binary vs multiclass is only known once the labels are read; "regression" is final.
        self.task = "regression" if task == "regression" else "multiclass"

    def load_table(self):
        df = read_csv(self.path)
        if len(df) == 0:
            raise DataError(f"data.path={str(self.path)!r} has a header but no rows")
        if self.target not in df.columns:
            raise DataError(f"data.target={self.target!r} is not a column of {self.path}; columns: {', '.join(map(str, df.columns))}")
        features = self.features or [c for c in df.columns if c != self.target]
        for col in features:
            if col not in df.columns:
                raise DataError(f"data.features: column {col!r} is not in {self.path}; columns: {', '.join(map(str, df.columns))}")
        self.feature_names = [str(c) for c in features]
        self.categories = {c: self._categories(df[c]) for c in features if not _numeric(df[c])}
        x = torch.tensor(self.encode(df), dtype=torch.float32)
        return x, self._targets(df[self.target])

    def _categories(self, column) -> list[str]:
        if column.isna().any():
            raise DataError(f"column {column.name!r} of {self.path} has missing values (first at line "
                            f"{int(column.isna().to_numpy().nonzero()[0][0]) + 2}); fill or drop them")
        import pandas as pd

        parsed = pd.to_numeric(column, errors="coerce")
        if 0.9 <= parsed.notna().mean() < 1:  # numbers with a few words among them: a typo, not categories
            line = int(parsed.isna().to_numpy().nonzero()[0][0])
            raise DataError(f"column {column.name!r} of {self.path} holds numbers but also {column.iloc[line]!r} "
                            f"(line {line + 2}); fix it, or leave the column out of data.features")
        categories = sorted(column.astype(str).unique())
        if len(categories) > self.max_categories:
            raise DataError(f"column {column.name!r} of {self.path} has {len(categories)} different values, more than "
                            f"data.max_categories={self.max_categories} to one-hot encode; leave it out of data.features, "
                            f"or raise data.max_categories")
        return categories

    def encode(self, df) -> np.ndarray:
        """Feature columns as model inputs (before scaling): numbers as they are, strings one-hot."""
        blocks = []
        for col in self.feature_names:
            if col not in df.columns:
                raise DataError(f"column {col!r} is missing; the model needs the columns {', '.join(self.feature_names)}")
            if col in self.categories:
                values = df[col].astype(str)
                unseen = sorted(set(values) - set(self.categories[col]))
                if unseen:
                    raise DataError(f"column {col!r} has the value {unseen[0]!r}, which the model never saw; "
                                    f"it knows: {', '.join(self.categories[col])}")
                blocks.append((values.to_numpy()[:, None] == np.array(self.categories[col])[None, :]).astype(np.float32))
                continue
            if not _numeric(df[col]):
                raise DataError(f"column {col!r} should hold numbers, as in training")
            values = df[col].to_numpy(dtype=np.float64)  # a True/False column is 0/1, as in scikit-learn
            if not np.isfinite(values).all():
                raise DataError(f"column {col!r} of {self.path} has a missing or non-finite value (nan, inf) at line "
                                f"{first_bad_row(values)}; fill or drop it")
            blocks.append(values[:, None].astype(np.float32))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0), np.float32)

    def _targets(self, labels) -> torch.Tensor:
        if labels.isna().any():
            raise DataError(f"target column {self.target!r} of {self.path} has missing values (first at line "
                            f"{int(labels.isna().to_numpy().nonzero()[0][0]) + 2})")
        if self.kind == "regression":
            if not _numeric(labels):
                raise DataError(f"target column {self.target!r} is not numeric, but data.task=regression")
            values = labels.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                raise DataError(f"target column {self.target!r} of {self.path} has a non-finite value at line "
                                f"{first_bad_row(values)}")
            return torch.tensor(values, dtype=torch.float32)
        numbers = labels.to_numpy(np.float64) if _numeric(labels) else None
        if numbers is not None and not np.allclose(numbers, np.round(numbers)):
            raise DataError(f"target column {self.target!r} holds fractional numbers ({labels.nunique()} different values), "
                            f"not class labels; for a numeric target set data.task=regression")
        # Sorted label values define the class indices; the mapping is saved with the run.
        self.class_names = [str(v) for v in sorted(labels.unique(), key=lambda v: (str(type(v)), v))]
        if len(self.class_names) < 2:
            raise DataError(f"target column {self.target!r} has a single class; classification needs at least 2")
        self.task = "binary" if len(self.class_names) == 2 else "multiclass"
        index = {name: i for i, name in enumerate(self.class_names)}
        return torch.tensor([index[str(v)] for v in labels], dtype=torch.long)

    def inputs_from(self, df) -> torch.Tensor:
        """New rows (a predict CSV) as model inputs: encoded and scaled as the training rows were."""
        return self.preprocess(torch.tensor(self.encode(df), dtype=torch.float32))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "categories": self.categories}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.categories = state.get("categories", {})


def _numeric(column) -> bool:
    """Numbers, or True/False (read as 0/1); as a target True/False are two class labels instead."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
