"""LeNet-5 (LeCun et al. 1998): conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> dense 120 -> 84 -> outputs.

`variant: classic` is the 1998 network: saturating activation (tanh by default, or sigmoid), average
pooling, and 28x28 inputs padded to 32x32 (the first convolution pads by 2, which is the same).
`variant: modern` swaps in ReLU and max pooling. About 61.7k parameters for MNIST.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlcourse.config.types import Activation, Init, Probability
from dlcourse.models.layers import init_weights, make_activation

VARIANTS = {"classic": ("tanh", nn.AvgPool2d), "modern": ("relu", nn.MaxPool2d)}


class LeNet5(nn.Module):
    accepts = ("image",)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        variant: Literal["classic", "modern"] = "classic",
        activation: Activation | None = None,
        dropout: Probability = 0.0,
        init: Init = "default",
    ):
        super().__init__()
        default_act, pool = VARIANTS[variant]
        act = activation or default_act
        in_ch = input_shape[0] if len(input_shape) == 3 else 1
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, 6, 5, padding=2),  # 28x28 padded to 32x32 -> 6@28x28
            make_activation(act),
            pool(2),                            # 6@14x14
            nn.Conv2d(6, 16, 5),                # 16@10x10
            make_activation(act),
            pool(2),                            # 16@5x5
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_ch, *input_shape[-2:])).numel()
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, 120), make_activation(act)]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head += [nn.Linear(120, 84), make_activation(act)]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(84, num_outputs))
        self.classifier = nn.Sequential(*head)
        init_weights(self, init, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # (N, H, W): one channel
            x = x.unsqueeze(1)
        return self.classifier(self.features(x))
