"""A configurable convolutional network: conv blocks, then a dense head.

`channels` lists the layers in order, VGG style: a number is a convolution with that many maps
(kernel_size, padding, optional batchnorm, activation), `pool` is a pooling layer (pool, pool_size;
dropout `conv_dropout` after it). The default is the lecture's network:
conv 32 -> conv 64 -> 2x2 max pool -> dense 64 -> outputs, i.e. channels [32, 64, pool], hidden [64].
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlcourse.config.types import Activation, Init, NonNegativeInt, PositiveInt, Probability
from dlcourse.errors import ConfigError
from dlcourse.models.layers import init_weights, make_activation

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNN(nn.Module):
    accepts = ("image",)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        channels: list[PositiveInt | Literal["pool", "M"]] = (32, 64, "pool"),
        kernel_size: PositiveInt = 3,
        padding: NonNegativeInt | Literal["same"] = 0,
        pool: Literal["max", "avg"] = "max",
        pool_size: PositiveInt = 2,
        batchnorm: bool = False,
        conv_dropout: Probability = 0.0,
        global_pool: bool = False,
        hidden: list[PositiveInt] = (64,),
        activation: Activation = "relu",
        dropout: Probability = 0.0,
        init: Init = "default",
    ):
        super().__init__()
        in_ch = input_shape[0] if len(input_shape) == 3 else 1
        layers: list[nn.Module] = []
        c = in_ch
        for item in channels:
            if item in ("pool", "M"):
                layers.append(POOLS[pool](pool_size))
                if conv_dropout > 0:
                    layers.append(nn.Dropout(conv_dropout))
            else:
                layers.append(nn.Conv2d(c, item, kernel_size, padding=padding, bias=not batchnorm))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(item))
                layers.append(make_activation(activation))
                c = item
        if global_pool:
            layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            try:
                flat = self.features(torch.zeros(1, in_ch, *input_shape[-2:])).numel()
            except RuntimeError:
                raise ConfigError("model.channels", list(channels),
                                  f"too many convolutions/pools for {tuple(input_shape[-2:])} images") from None
        head: list[nn.Module] = [nn.Flatten()]
        width = flat
        for h in hidden:
            head += [nn.Linear(width, h), make_activation(activation)]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            width = h
        head.append(nn.Linear(width, num_outputs))
        self.classifier = nn.Sequential(*head)
        init_weights(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x))
