"""The course's synthetic time series: two sines of random phase and frequency plus uniform noise.

    x(t) = 0.5 sin((t - a)(10 p + 10)) + 0.2 sin((t - b)(20 q + 20)) + noise (r - 0.5)

with a, b, p, q ~ U[0, 1) drawn once per series, r ~ U[0, 1) drawn per step and noise = 0.1. As in
the textbook's notebook, t runs over linspace(0, 1, n_steps + horizon): each series is exactly one
window of n_steps inputs and horizon future values. The first 70% of the series are the training
split, the next 20% validation, the last 10% test (7,000 / 2,000 / 1,000 of 10,000).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dlcourse.config.types import Fraction, Head, NonNegative, PositiveInt
from dlcourse.data.series import SeriesDataModule
from dlcourse.errors import ConfigError


def sine_series(n_series: int, length: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """(n_series, length) float32 series, drawn from `rng` (a, b, p, q first, then the noise)."""
    p, q, a, b = rng.random((4, n_series, 1))
    t = np.linspace(0.0, 1.0, length)
    series = 0.5 * np.sin((t - a) * (10 * p + 10))
    series += 0.2 * np.sin((t - b) * (20 * q + 20))
    series += noise * (rng.random((n_series, length)) - 0.5)
    return series.astype(np.float32)


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    return n - n_val - n_test, n_val, n_test


class SineDataModule(SeriesDataModule):
    def __init__(
        self,
        n_series: PositiveInt = 10_000,
        n_steps: PositiveInt = 50,
        horizon: PositiveInt = 1,
        targets: Head = "last",
        val_fraction: Fraction = 0.2,
        test_fraction: Fraction = 0.1,
        noise: NonNegative = 0.1,
        normalize: Literal["window", "global"] = "global",
        **kwargs,
    ):
        super().__init__(n_steps=n_steps, horizon=horizon, targets=targets, normalize=normalize, **kwargs)
        self.n_series, self.noise = int(n_series), float(noise)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        if min(split_sizes(self.n_series, val_fraction, test_fraction)) < 1:
            raise ConfigError("data.n_series", n_series, "too few series: train, val and test each need at least one")

    def generate(self) -> np.ndarray:
        """All n_series series, (n_series, n_steps + horizon); the same for the same seed."""
        return sine_series(self.n_series, self.n_steps + self.horizon, np.random.default_rng(self.seed), self.noise)

    def split_windows(self):
        series = self.generate()
        n_train, n_val, _ = split_sizes(self.n_series, self.val_fraction, self.test_fraction)
        return {"train": series[:n_train], "val": series[n_train : n_train + n_val], "test": series[n_train + n_val :]}
