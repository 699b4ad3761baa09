"""What every image data module shares: per-channel normalisation with the training split's
statistics, on-device augmentation (a small random affine per image, off by default), the
preprocessing that travels with checkpoints, and the figures a student sees.

Images are stored once as one float tensor (N, C, H, W) per split; models reshape what they need
themselves (the MLP flattens, classic LeNet-5 pads, ResNet repeats channels and resizes).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F

from dlcourse.config.types import Interval, NonNegative
from dlcourse.data.base import InMemoryDataModule


class ImageDataModule(InMemoryDataModule):
    task = "multiclass"
    inputs = "image"

    def __init__(self, normalize: bool = True, augment: bool = False, max_shift: NonNegative = 2.0,
                 max_rotate: Annotated[float, Interval(ge=0, le=180)] = 10.0,
                 max_scale: Annotated[float, Interval(ge=0, le=0.9)] = 0.1, hflip: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.normalize, self.augment = normalize, augment
        self.max_shift, self.max_rotate, self.max_scale, self.hflip = max_shift, max_rotate, max_scale, hflip
        self.has_train_transform = bool(augment)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    # -- normalisation ---------------------------------------------------------------
    def fit_normalization(self, x_train: torch.Tensor, chunk: int = 4096) -> None:
        """Per-channel mean and std of the training split (x in [0, 1], shape N, C, H, W)."""
        if not self.normalize:
            c = x_train.shape[1]
            self.mean, self.std = [0.0] * c, [1.0] * c
            return
        # float64 sums, exact enough for 60k images and independent of batch order, taken a chunk at
        # a time: a float64 copy of the whole split would be twice the split's size for a moment.
        dims, n = (0, 2, 3), x_train.shape[0] * x_train.shape[2] * x_train.shape[3]
        total = sum(part.double().sum(dims) for part in x_train.split(chunk))
        mean = total / n
        centred = mean.view(1, -1, 1, 1)
        squares = sum((part.double() - centred).square_().sum(dims) for part in x_train.split(chunk))
        self.mean = [float(v) for v in mean]
        self.std = [max(float(v), 1e-6) for v in (squares / max(n - 1, 1)).sqrt()]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    def apply_normalization(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def normalize_(self, x: torch.Tensor) -> torch.Tensor:
        """apply_normalization in place, for a split's own float tensor (the same values, no copy)."""
        mean, std = self._stats(x)
        return x.sub_(mean).div_(std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to [0, 1] pixels, for figures."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0, 1)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images -> model inputs: uint8 (0-255) or float in [0, 1]; (N, H, W) or (N, C, H, W)."""
        x = torch.as_tensor(x)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.apply_normalization(x)

    # -- augmentation, on the training device ----------------------------------------------
    def train_transform(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x, *rest = batch
        return (self.random_affine(x), *rest)

    def random_affine(self, x: torch.Tensor) -> torch.Tensor:
        """A random rotation (+-max_rotate degrees), scale (1 +- max_scale), shift (+-max_shift pixels)
        and optional horizontal flip per image, in one grid_sample. Empty borders get the background
        (the value of a 0 pixel after normalisation), not 0."""
        n, _, h, w = x.shape
        dev, dt = x.device, x.dtype
        angle = (torch.rand(n, device=dev, dtype=dt) * 2 - 1) * math.radians(self.max_rotate)
        scale = 1 + (torch.rand(n, device=dev, dtype=dt) * 2 - 1) * self.max_scale
        shift = (torch.rand(n, 2, device=dev, dtype=dt) * 2 - 1) * self.max_shift
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        flip = torch.ones(n, device=dev, dtype=dt)
        if self.hflip:
            flip = torch.where(torch.rand(n, device=dev) < 0.5, -flip, flip)
        theta = torch.stack([
            torch.stack([cos * flip, -sin, shift[:, 0] * 2 / w], 1),
            torch.stack([sin * flip, cos, shift[:, 1] * 2 / h], 1),
        ], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        background = self.apply_normalization(torch.zeros(1, x.shape[1], 1, 1, device=dev, dtype=dt))
        return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mean, self.std = state.get("mean"), state.get("std")

    # -- figures ----------------------------------------------------------------------------
    def input_figures(self) -> dict:
        """A few training images per class, drawn when training starts (check the data first)."""
        from dlcourse import image_figures

        self.setup()
        x, y = self.splits["train"]
        per_class = 8  # image_figures.samples_per_class_figure's row length
        picked = torch.cat([(y == c).nonzero().flatten()[:per_class] for c in range(len(self.class_names))])
        picked = picked.sort().values  # only these are denormalised: a copy of the split would cost its size
        return {"input_samples": image_figures.samples_per_class_figure(self.denormalize(x[picked]), y[picked],
                                                                      self.class_names, per_class)}

    def figures(self, model, preds: torch.Tensor, targets: torch.Tensor) -> dict:
        from dlcourse import image_figures

        x = self.splits["test"][0]
        if len(x) != len(preds):  # e.g. gathered across ranks in another order: skip image figures
            return {"per_class_precision_recall": image_figures.precision_recall_figure(preds, targets, self.class_names)}
        return image_figures.test_figures(model, x, preds, targets, self.class_names, self.denormalize)
