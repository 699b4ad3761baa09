"""The base of every built-in data module: splits built once as tensors, served by TensorLoader."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

from dlcourse.config.types import BatchSize, PositiveInt
from dlcourse.data.loader import TensorLoader

TASKS = ("binary", "multiclass", "regression")


class InMemoryDataModule(L.LightningDataModule):
    """Subclasses implement `build()`, returning {"train"|"val"|"test": (inputs, targets)}.

    They also set, in `build()` or as class attributes:
      task         "binary" | "multiclass" | "regression"
      class_names  list of label names (classification)
      feature_names list of input column names (tabular data; used by `dlcourse-eval predict=`)
    Targets are int64 class indices for classification, float for regression.
    """

    task: str = "multiclass"
    family: str = "classification"  # what validation checks the loss against, before any data is built
    inputs: str = "table"  # table | image | sequence: which models can take the examples (their `accepts`)
    class_names: list[str] | None = None
    feature_names: list[str] | None = None

    # How many training batches one training call takes, given the batches of an epoch: set by the
    # training loop (dlcourse.loop) when a fit starts; without it, one.
    group_batches: Callable[[int], int] | None = None

    def __init__(self, batch_size: BatchSize = 32, eval_batch_size: PositiveInt | None = None, seed: int = 0):
        super().__init__()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._on_device: dict[str, tuple[torch.Tensor, ...]] = {}

    # -- to implement -------------------------------------------------------------
    def build(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def train_transform(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Per-batch augmentation, on the device; identity unless a subclass overrides it."""
        return batch

    has_train_transform = False

    # -- derived facts ----------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:  # idempotent: train.py builds early to size the model
            self.splits = self.build()
            if self.task not in TASKS:
                raise ValueError(f"{type(self).__name__}.task must be one of {TASKS}")
            if self.fold == "refit":
                self.splits = self.pool_splits(self.splits)
            elif self.fold is not None:
                self.splits = self.fold_splits(self.splits, *self.fold)

    # -- K-fold cross-validation (dlcourse.cv) --------------------------------------
    fold: tuple[int, int] | str | None = None

    def use_fold(self, fold: int, folds: int) -> None:
        """Serve fold `fold` (0-based) of `folds` as train/val; call before setup()."""
        self.fold = (int(fold), int(folds))

    def use_refit(self) -> None:
        """Serve train+val as one training split and no validation rows (`cv.refit`); call before setup()."""
        self.fold = "refit"

    @staticmethod
    def _pool(splits: dict) -> tuple[torch.Tensor, ...]:
        return tuple(torch.cat([a, b]) for a, b in zip(splits["train"], splits["val"], strict=True))

    def pool_splits(self, splits: dict) -> dict:
        """train+val pooled as the training split, an empty validation split; test stays as it is."""
        pool = self._pool(splits)
        return {**splits, "train": pool, "val": tuple(t[:0] for t in pool)}

    def fold_splits(self, splits: dict, fold: int, folds: int) -> dict:
        """train+val pooled and cut into `folds` folds (stratified by class for classification, seeded);
        fold `fold` is the validation split, the rest the training split; test stays as it is."""
        import numpy as np
        from sklearn.model_selection import KFold, StratifiedKFold

        from dlcourse.errors import ConfigError

        pool = self._pool(splits)
        y = pool[1]
        if self.task == "regression":
            splitter = KFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(len(y)))
        else:
            smallest = int(torch.unique(y, return_counts=True)[1].min()) if len(y) else 0
            if smallest < folds:
                raise ConfigError("cv.folds", folds, f"a class has only {smallest} train+val examples; "
                                  f"use at most {smallest} folds")
            splitter = StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(len(y)), y.numpy())
        if len(y) < folds:
            raise ConfigError("cv.folds", folds, f"only {len(y)} train+val examples")
        train_idx, val_idx = list(splitter)[fold]
        train_idx, val_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
        return {**splits, "train": tuple(t[train_idx] for t in pool), "val": tuple(t[val_idx] for t in pool)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.splits["train"][0].shape[1:])

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.task != "regression" else None

    @property
    def num_outputs(self) -> int:
        if self.task == "binary":
            return 1
        if self.task == "multiclass":
            return self.num_classes
        y = self.splits["train"][1]
        return 1 if y.ndim == 1 else int(y[0].numel())

    @property
    def train_batch_size(self) -> int:
        n = len(self.splits["train"][0])
        return n if self.batch_size == "full" else min(int(self.batch_size), n)

    # -- loaders ----------------------------------------------------------------
    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _tensors(self, split: str) -> tuple[torch.Tensor, ...]:
        device = self._device()
        cached = self._on_device.get(split)
        if cached is None or cached[0].device != device:
            cached = tuple(t.to(device) for t in self.splits[split])
            self._on_device[split] = cached
        return cached

    def _loader(self, split: str, batch_size: int, train: bool) -> TensorLoader:
        self.setup()
        trainer = self.trainer
        loader = TensorLoader(
            self._tensors(split),
            batch_size=batch_size,
            shuffle=train,
            seed=self.seed,
            epoch_fn=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            pad_to_equal=train,
            transform=self.train_transform if (train and self.has_train_transform) else None,
        )
        if train and self.group_batches is not None:
            loader.group = self.group_batches(loader.num_batches)
        return loader

    def _eval_batch_size(self) -> int:
        # Evaluation batches do not change results, only speed: default to large ones.
        return int(self.eval_batch_size or max(self.train_batch_size, 1024))

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", self.train_batch_size, train=True)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val", self._eval_batch_size(), train=False)

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", self._eval_batch_size(), train=False)

    def predict_dataloader(self) -> TensorLoader:
        return self.test_dataloader()

    # -- preprocessing that must travel with a checkpoint --------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Turn raw inputs (as a user would give them to `predict`) into model inputs."""
        return x

    def state_dict(self) -> dict:
        return {"class_names": self.class_names, "feature_names": self.feature_names, "task": self.task}

    def load_state_dict(self, state: dict) -> None:
        self.class_names = state.get("class_names")
        self.feature_names = state.get("feature_names")
        self.task = state.get("task", self.task)

