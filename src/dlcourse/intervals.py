"""How precise a test figure is: an accuracy's 95% Wilson interval; for a regression or forecast error,
95% bootstrap intervals of the test MSE and MAE.

The interval resamples the split's rows (tables) or forecast windows (series) with replacement, 2,000
times, and takes the 2.5 and 97.5 percentiles of the resampled means (the percentile bootstrap); over
100,000 rows, where that would take seconds, the normal interval, which the bootstrap's equals there. Windows
cut from one series overlap, so their errors are not independent: they are resampled in blocks of
consecutive windows (a moving-block bootstrap, the series' `interval_block`), which keeps neighbours
together and so does not understate the spread. Seeded: the same predictions give the same interval.
"""

from __future__ import annotations

import math

import numpy as np

DRAWS = 2000
WORK, CHUNK = 20_000_000, 4_000_000  # resampled rows in all (under a second), and at once (32 MB of indices)
MIN_DRAWS = 200


def bootstrap_means(values: np.ndarray, block: int = 1, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """`draws` means of `values` (one per row), each over a resample of as many rows, in blocks of `block`.
    Fewer draws (at least MIN_DRAWS) where draws x rows would pass WORK: a large test set's interval is
    narrow and smooth, and its evaluation should not wait on it; computed in chunks of CHUNK indices."""
    n = len(values)
    block = max(1, min(int(block), n))
    draws = min(draws, max(MIN_DRAWS, WORK // n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(draws, -(-n // block)))
    means = np.empty(draws)
    step = max(1, CHUNK // n)
    for lo in range(0, draws, step):
        chunk = starts[lo : lo + step]
        rows = (chunk[..., None] + np.arange(block)).reshape(len(chunk), -1)[:, :n]
        means[lo : lo + step] = values[rows].mean(axis=1)
    return means


def interval(values: np.ndarray, block: int = 1) -> list[float]:
    """[low, high]: the 95% percentile-bootstrap interval of the mean of `values`."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) * MIN_DRAWS > WORK:  # over 100,000 rows: the normal interval of the block means, as exact there
        means = values[: len(values) // block * block].reshape(-1, block).mean(axis=1)
        half = 1.96 * means.std(ddof=1) / np.sqrt(len(means))
        low, high = values.mean() - half, values.mean() + half
    else:
        low, high = np.percentile(bootstrap_means(values, block), [2.5, 97.5])
    return [float(f"{low:.6g}"), float(f"{high:.6g}")]


def error_intervals(split: str, preds, targets, block: int = 1, scale: float | None = None) -> dict:
    """`n_<split>`, `<split>_mse_ci95`, `<split>_mae_ci95` of (N, outputs) predictions against targets
    (each row's squared / absolute error averaged over its outputs: the mean over rows is the split's
    mse / mae); with the series' standardisation `scale` (its std) also the `_raw` ones, in its own units."""
    diff = np.asarray(preds, dtype=np.float64).reshape(len(preds), -1) - np.asarray(targets, dtype=np.float64).reshape(
        len(targets), -1)
    if not len(diff):
        return {}
    se, ae = (diff * diff).mean(axis=1), np.abs(diff).mean(axis=1)
    out = {f"n_{split}": len(diff), f"{split}_mse_ci95": interval(se, block), f"{split}_mae_ci95": interval(ae, block)}
    if scale is not None and scale != 1.0:
        out[f"{split}_mse_raw_ci95"] = interval(se * scale * scale, block)
        out[f"{split}_mae_raw_ci95"] = interval(ae * scale, block)
    return out


def task_intervals(task, dm, split: str = "test") -> dict:
    """The intervals of a tested Task (its gathered test predictions) on `dm`'s data; {} unless regression."""
    if task.task != "regression" or not task.test_preds.update_called:
        return {}
    preds, targets = task.test_preds.compute(), task.test_targets.compute()
    scale = (task.io.get("series_scale") or (0.0, 1.0))[1]
    return error_intervals(split, preds.cpu().numpy(), targets.cpu().numpy(), getattr(dm, "interval_block", 1), scale)


def error_line(metrics: dict) -> str | None:
    """"test mse 0.0123 (95% CI 0.0101-0.0150; bootstrap over 42 windows)": how much the figure can say."""
    ci, n, mse = metrics.get("test_mse_ci95"), metrics.get("n_test"), metrics.get("test", {}).get("test/mse")
    if ci is None or not n or mse is None:
        return None
    raw = metrics.get("test_mse_raw_ci95")
    raw_text = "" if raw is None else (f"; in the series' units {metrics['test'].get('test/mse_raw', float('nan')):.4g} "
                                       f"({raw[0]:.4g}-{raw[1]:.4g})")
    rows = "forecast windows" if "test/mse_last" in metrics["test"] else "rows"  # a series' data declares mse_last
    return f"test mse {mse:.4g} (95% CI {ci[0]:.4g}-{ci[1]:.4g}{raw_text}; bootstrap over {n} test {rows})"


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of an accuracy measured on n examples (Wilson score interval: sound
    near 0 and 1, where the normal approximation breaks). On 30 iris flowers, 29 right is 83-99%."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    center = (accuracy + z * z / (2 * n)) / denom
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def accuracy_interval(split: str, accuracy: float, n: int) -> dict:
    """`n_<split>` and `<split>_acc_ci95`, as metrics.json (training) and dlcourse-eval write them."""
    return {f"n_{split}": n, f"{split}_acc_ci95": [round(v, 4) for v in wilson_interval(accuracy, n)]}
