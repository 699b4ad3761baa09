"""How the cells of a user's CSV become values. The file is read as text, so that pandas' list of
missing-value words (None, NA, null, ...) does not swallow a category that happens to be spelled so;
then each column is typed on its own:

- a column whose cells are all numbers (or empty, or a missing-value word such as `NA`/`nan`) is
  numeric, the empty and missing-value cells being missing (NaN);
- True/False is 0/1, as in scikit-learn;
- anything else is text, where only an empty cell (or a word listed in `data.na_values`) is missing:
  `None` or `NA` in a column of words is a category like any other.

Decimal commas (`1,5`, as spreadsheets write them in many locales) are read as numbers when the file
writes its decimals that way only (`data.decimal=auto`); a file with both kinds asks for data.decimal.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

# pandas' own default missing-value words; they count as missing in numeric columns only
NA_WORDS = frozenset({"#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
BOOLS = {"true": True, "false": False}
FLOAT32_MAX = float(np.finfo(np.float32).max)
_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
_POINT = re.compile(r"[+-]?\d*\.\d+(?:[eE][+-]?\d+)?")


def read_text(path, sep: str):
    """Every cell as text (no cell is missing yet: that is decided per column by `parse`)."""
    import pandas as pd

    return pd.read_csv(path, sep=sep, dtype=object, keep_default_na=False, na_filter=False)


def decimal_mark(df, setting: str, where: str) -> str:
    """`setting` unless it is auto: "," when the text cells write decimals with commas only, else ".".
    A comma among decimal points in the same column is a typo (left for the column's own check); a
    column of decimal commas beside a column of decimal points is ambiguous: one line asks which."""
    if setting != "auto":
        return setting
    comma, point = {}, {}
    for col in df.columns:
        if df[col].dtype != object:  # read as text: only a DataFrame a user typed has other columns
            continue
        cells = df[col].dropna().astype(str).str.strip()
        for found, pattern in ((comma, _COMMA), (point, _POINT)):
            hits = cells[cells.str.fullmatch(pattern.pattern)]
            if len(hits):
                found[col] = hits.iloc[0]
    only_comma = [c for c in comma if c not in point]
    if only_comma and point:
        col = next(iter(point))
        raise _decimal_error(where, (only_comma[0], comma[only_comma[0]]), (col, point[col]))
    return "," if comma and not point else "."


def _decimal_error(where: str, comma: tuple, point: tuple):
    from dlcourse.errors import ConfigError

    return ConfigError("data.decimal", "auto", message=(
        f"data.decimal='auto': {where} writes numbers both with a decimal comma ({comma[1]!r} in column "
        f"{comma[0]!r}) and with a decimal point ({point[1]!r} in column {point[0]!r}); set data.decimal=',' "
        f"or data.decimal='.'"))


def missing_mask(column, na_values) -> np.ndarray:
    """Cells that are missing in any column: empty (or blank), NaN/None objects, the user's na_values."""
    text = column.astype(str).str.strip()
    return (column.isna() | (text == "") | text.isin(set(na_values or ()))).to_numpy()


def parse(column, na_values=None, decimal: str = "."):
    """`column` typed: numbers (int64 when whole and complete, else float64 with NaN where missing),
    bool (True/False, complete), or text with NaN where missing. Typed columns pass as they are."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    column = column.astype(object)
    missing = missing_mask(column, na_values)
    text = column.astype(str).str.strip()
    present = text[~missing & ~text.isin(NA_WORDS)]
    if len(present) and present.str.lower().isin(set(BOOLS)).all():
        values = present.str.lower().map(BOOLS)
        if len(present) == len(text):
            return values.astype(bool)
        return values.astype(float).reindex(text.index)
    numbers = pd.to_numeric(present.str.replace(",", ".", regex=False) if decimal == "," else present, errors="coerce")
    if len(present) and numbers.notna().all():
        return numbers if len(present) == len(text) else numbers.astype(float).reindex(text.index)
    return column.where(~missing, np.nan)


def check_range(values: np.ndarray, name: str, where: str) -> None:
    """A value that is infinite, or finite but beyond float32 (it would become inf in the model), stops."""
    from dlcourse.errors import DataError

    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"column {name!r} of {where} has the value {values[row]:g} at line {row + 2}, beyond what a "
                        f"float32 input holds (|x| <= {FLOAT32_MAX:.4g}); fix or rescale it, or leave the column out "
                        f"of data.features")


def warn_if_id(column, name: str) -> None:
    """A feature that looks like a row ID (unique per row; named id/*_id, or integers counting up) lets
    the model learn the row order, not the data: worth a warning, not a stop."""
    values = column.dropna()
    if len(values) < 3 or values.nunique() != len(column):
        return
    named = bool(re.fullmatch(r"(?i:id|index|row|.*[_ ]id)|.*[a-z](Id|ID)", name))  # not "paid" or "grid"
    integers = np.issubdtype(values.dtype, np.integer)
    counting = integers and bool((np.diff(values.to_numpy()) > 0).all())
    if (named and (integers or not np.issubdtype(values.dtype, np.number))) or counting:
        warnings.warn(f"data.features: column {name!r} looks like a row ID (a different value in every row"
                      f"{', counting up' if counting else ''}); a model that learns from it will not generalise. "
                      f"Leave it out with data.features=[...] listing the other columns", UserWarning, stacklevel=2)
