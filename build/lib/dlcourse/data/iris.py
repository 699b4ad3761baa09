"""Fisher's Iris (scikit-learn's bundled copy: no download), stratified split, standardised."""

from __future__ import annotations

import torch

from dlcourse.config.types import Fraction
from dlcourse.data.tabular import TabularDataModule


class IrisDataModule(TabularDataModule):
    task = "multiclass"

    def __init__(self, val_fraction: Fraction = 0.2, test_fraction: Fraction = 0.2, standardize: bool = True, **kwargs):
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, standardize=standardize, **kwargs)

    def load_table(self):
        from sklearn.datasets import load_iris

        iris = load_iris()
        self.feature_names = [str(n).replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
        self.class_names = [str(n) for n in iris.target_names]
        return torch.tensor(iris.data, dtype=torch.float32), torch.tensor(iris.target, dtype=torch.long)
