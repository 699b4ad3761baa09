"""Shared logic for tables that fit in memory: split (stratified for classes), standardise with train stats."""

from __future__ import annotations

import torch

from dlcourse.config.types import Fraction
from dlcourse.data.base import InMemoryDataModule


class TabularDataModule(InMemoryDataModule):
    inputs = "table"

    def __init__(self, val_fraction: Fraction = 0.2, test_fraction: Fraction = 0.2, standardize: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.val_fraction, self.test_fraction, self.standardize = val_fraction, test_fraction, standardize
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def load_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All rows as (float features [N, F], targets); sets feature_names and class_names."""
        raise NotImplementedError

    def split_indices(self, y: torch.Tensor) -> dict[str, list[int]]:
        from sklearn.model_selection import train_test_split

        idx = list(range(len(y)))
        strat = y.numpy() if self.task != "regression" else None
        rest, test = train_test_split(idx, test_size=self.test_fraction, stratify=strat, random_state=self.seed)
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        strat_rest = strat[rest] if strat is not None else None
        train, val = train_test_split(rest, test_size=val_share, stratify=strat_rest, random_state=self.seed)
        return {"train": train, "val": val, "test": test}

    def build(self):
        x, y = self.load_table()
        parts = self.split_indices(y)
        train_x = x[parts["train"]]
        if self.standardize:  # statistics of the training split only: no peeking at val/test
            self.mean = train_x.mean(0)
            self.std = train_x.std(0).clamp_min(1e-8)
        return {split: (self.preprocess(x[i]), y[i]) for split, i in parts.items()}

    def fold_splits(self, splits: dict, fold: int, folds: int) -> dict:
        """Cross-validation folds standardised with each fold's own training rows (no peeking at its
        validation fold)."""
        cut = super().fold_splits
        return self._restandardised(splits, lambda raw: cut(raw, fold, folds))

    def pool_splits(self, splits: dict) -> dict:
        """train+val as one training split (cv.refit), standardised with all of its rows."""
        return self._restandardised(splits, super().pool_splits)

    def _restandardised(self, splits: dict, cut) -> dict:
        """Undo the split-time scaling, re-cut the rows with `cut`, then scale with the new training rows."""
        if self.mean is None:
            return cut(splits)
        raw = {name: (x * self.std + self.mean, y) for name, (x, y) in splits.items()}
        parts = cut(raw)
        self.mean = parts["train"][0].mean(0)
        self.std = parts["train"][0].std(0).clamp_min(1e-8)
        return {name: (self.preprocess(x), y) for name, (x, y) in parts.items()}

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return (x - self.mean) / self.std if self.mean is not None else x

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mean, self.std = state.get("mean"), state.get("std")
