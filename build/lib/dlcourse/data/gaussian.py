"""The lecture's 2-D toy problem: signal N(mu_s, sigma) label 1 vs background N(mu_b, sigma) label 0."""

from __future__ import annotations

import torch

from dlcourse.config.types import Positive, PositiveInt
from dlcourse.data.base import InMemoryDataModule


class GaussianDataModule(InMemoryDataModule):
    task = "binary"
    class_names = ["background", "signal"]
    feature_names = ["x1", "x2"]
    inputs = "table"

    def __init__(
        self,
        n_train: PositiveInt = 10_000,
        n_val: PositiveInt = 2_000,
        n_test: PositiveInt = 20_000,
        signal_mean: tuple[float, float] = (1.0, 1.0),
        background_mean: tuple[float, float] = (-1.0, -1.0),
        sigma: Positive = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.means = (torch.tensor(background_mean, dtype=torch.float32), torch.tensor(signal_mean, dtype=torch.float32))
        self.sigma = sigma

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points, half signal and half background (an odd point goes to background), shuffled."""
        y = (torch.arange(n) >= n - n // 2).long()
        y = y[torch.randperm(n, generator=generator)]
        centres = torch.stack(self.means)[y]
        x = centres + self.sigma * torch.randn(n, 2, generator=generator)
        return x, y

    def build(self):
        # One generator per split, derived from the seed: the test sample is a fresh draw
        # that does not change when the train or val sizes do.
        return {
            split: self.sample(n, torch.Generator().manual_seed(self.seed * 1000 + i))
            for i, (split, n) in enumerate(self.sizes.items())
        }
