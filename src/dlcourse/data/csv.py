"""The user's own table: one row per example, a target column, feature columns.

Cells are typed per column (data/csv_values.py: numbers, True/False, or text; decimal commas; which
cells are missing). Numeric features are used as they are (then imputed and standardised, see
tabular.py); a column of strings is one-hot encoded, one input per category (the categories of the
whole file, saved with the model: predictions on new rows use the same ones). Missing cells are
handled as a scikit-learn pipeline would (`data.missing=impute`, the default): numbers get the training
rows' median plus a 0/1 "was missing" input where the training rows had gaps, text gets a category of
its own, "(missing)". `data.missing=error` stops at the first gap instead. Labels may be strings or
integers. An infinite value, a target that does not fit the task or a column with too many categories
stops the run with one line naming the column (and the first row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlcourse.config.types import Fraction, PositiveInt
from dlcourse.data import csv_values
from dlcourse.data.tabular import TabularDataModule
from dlcourse.errors import ConfigError, DataError

MISSING = "(missing)"  # the category a gap in a text column becomes


def read_csv(path: Path, key: str = "data.path", text: bool = False):
    """The user's CSV as a DataFrame (`text`: every cell as text, see csv_values), or one line saying
    why it cannot be read. The delimiter is sniffed (`,` `;` tab `|`), as spreadsheets in many locales
    write `;` and .tsv files tabs."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{key}={str(path)!r}: no such file")
    try:
        return csv_values.read_text(path, _delimiter(path)) if text else pd.read_csv(path, sep=_delimiter(path))
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


def _columns(df) -> str:
    return ", ".join(map(str, df.columns))



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
        missing: Literal["impute", "error"] = "impute",
        na_values: list[str] | None = None,  # words that mean "missing" in any column (besides an empty cell)
        decimal: Literal["auto", ".", ","] = "auto",
        **kwargs,
    ):
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, standardize=standardize,
                         standardize_target=standardize_target, **kwargs)
        self.path, self.target, self.features = Path(path).expanduser(), target, list(features) if features else None
        self.kind, self.max_categories = task, max_categories
        self.missing, self.na_values, self.decimal = missing, [str(v) for v in na_values or []], decimal
        self.categories: dict[str, list[str]] = {}  # one-hot encoded columns -> their categories
        # binary vs multiclass is only known once the labels are read; "regression" is final.
        self.task = "regression" if task == "regression" else "multiclass"

    def read(self, path: Path, key: str = "data.path"):
        """A CSV file as typed columns (numbers, True/False, text with NaN where missing)."""
        df = read_csv(Path(path), key=key, text=True)
        mark = csv_values.decimal_mark(df, self.decimal, str(path))
        return df.apply(lambda column: csv_values.parse(column, self.na_values, mark))

    def load_table(self):
        df = self.read(self.path)
        if len(df) == 0:
            raise DataError(f"data.path={str(self.path)!r} has a header but no rows")
        if self.target not in df.columns:
            raise DataError(f"data.target={self.target!r} is not a column of {self.path}; columns: {_columns(df)}")
        features = self.features or [c for c in df.columns if c != self.target]
        self._check_features(df, features)
        self.feature_names = [str(c) for c in features]
        for col in features:
            csv_values.warn_if_id(df[col], col)
        self.categories = {c: self._categories(df[c]) for c in features if not _numeric(df[c])}
        for col in features:
            if col not in self.categories:
                csv_values.warn_if_id(df[col], col)
        x = torch.tensor(self.encode(df, where=str(self.path)), dtype=torch.float32)
        return x, self._targets(df[self.target])

    def _check_features(self, df, features: list) -> None:
        if self.target in features:
            raise ConfigError("data.features", list(features), f"includes the target column {self.target!r}; "
                              "a model given its own answer as an input learns nothing; list only other columns")
        if not features:
            raise DataError(f"data.path={str(self.path)!r} has no column besides the target {self.target!r}; "
                            f"a model needs at least one feature column")
        for col in features:
            if col not in df.columns:
                raise DataError(f"data.features: column {col!r} is not in {self.path}; columns: {_columns(df)}")
            if df[col].isna().all():
                raise DataError(f"column {col!r} of {self.path} is empty in every row; leave it out of data.features")

    def _categories(self, column) -> list[str]:
        import pandas as pd

        gaps = column.isna().to_numpy()
        self._check_gaps(str(column.name), gaps, str(self.path), self.missing == "error")
        present = column[~gaps]
        parsed = pd.to_numeric(present, errors="coerce")
        if 0.9 <= parsed.notna().mean() < 1:  # numbers with a few words among them: a typo, not categories
            line = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(f"column {column.name!r} of {self.path} holds numbers but also {present.iloc[line]!r} "
                            f"(line {int(present.index[line]) + 2}); fix it, list it in data.na_values if it means "
                            f"missing, or leave the column out of data.features")
        categories = sorted(present.astype(str).unique()) + ([MISSING] if gaps.any() else [])
        if len(categories) > self.max_categories:
            raise DataError(f"column {column.name!r} of {self.path} has {len(categories)} different values, more than "
                            f"data.max_categories={self.max_categories} to one-hot encode; leave it out of data.features, "
                            f"or raise data.max_categories")
        return categories

    def encode(self, df, where: str = "the table") -> np.ndarray:
        """Feature columns as model inputs before imputing and scaling: numbers as they are (NaN where
        missing), strings one-hot."""
        blocks = []
        for col in self.feature_names:
            if col not in df.columns:
                raise DataError(f"column {col!r} is missing; the model needs the columns {', '.join(self.feature_names)}")
            column = csv_values.parse(df[col], self.na_values)
            gaps = column.isna().to_numpy()
            if col in self.categories:
                blocks.append(self._one_hot(column, gaps, where))
                continue
            if not _numeric(column):
                raise DataError(f"column {col!r} of {where} should hold numbers, as in training")
            values = column.to_numpy(dtype=np.float64)  # a True/False column is 0/1, as in scikit-learn
            # a model saved before imputation existed has no fill values: a gap would reach it as NaN
            self._check_gaps(col, gaps, where, self.missing == "error" or (self.fill is None and self.mean is not None))
            csv_values.check_range(values, col, where)
            blocks.append(values[:, None].astype(np.float32))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0), np.float32)

    def _one_hot(self, column, gaps: np.ndarray, where: str) -> np.ndarray:
        col, known = str(column.name), self.categories[str(column.name)]
        self._check_gaps(col, gaps, where, MISSING not in known, "the training table had no gaps in it")
        values = column.astype(str).where(~gaps, MISSING)
        unseen = sorted(set(values) - set(known))
        if unseen:
            raise DataError(f"column {col!r} has the value {unseen[0]!r}, which the model never saw; "
                            f"it knows: {', '.join(known)}")
        return (values.to_numpy()[:, None] == np.array(known)[None, :]).astype(np.float32)

    def _check_gaps(self, col: str, gaps: np.ndarray, where: str, refuse: bool, why: str = "") -> None:
        if refuse and gaps.any():
            why = why or ("data.missing=error" if self.missing == "error" else "the model was saved without imputation")
            raise DataError(f"column {col!r} of {where} has a missing value at line {int(gaps.nonzero()[0][0]) + 2} "
                            f"({why}); fill or drop it{', or set data.missing=impute' if self.missing == 'error' else ''}")

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
            csv_values.check_range(values, self.target, str(self.path))
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

    def inputs_from(self, df, where: str = "the table") -> torch.Tensor:
        """New rows (a predict CSV) as model inputs: encoded, imputed and scaled as the training rows were."""
        return self.preprocess(torch.tensor(self.encode(df, where), dtype=torch.float32))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "categories": self.categories}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.categories = state.get("categories", {})


def _numeric(column) -> bool:
    """Numbers, or True/False (read as 0/1); as a target True/False are two class labels instead."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
