"""dlcourse: configuration-driven PyTorch experiments for an introductory deep-learning course."""

__version__ = "0.1.0"

from dlcourse.lean import LeanTorchmetrics as _LeanTorchmetrics

_LeanTorchmetrics.install()  # torchmetrics without scipy, torchvision and pyplot (see dlcourse.lean)
