"""A configurable convolutional network: conv blocks, then a dense head.

`channels` lists the layers in order, VGG style: a number is a convolution with that many maps
(kernel_size, padding, optional batchnorm, activation), `pool` is a pooling layer (pool, pool_size;
dropout `conv_dropout` after it). The default is the lecture's network:
conv 32 -> conv 64 -> 2x2 max pool -> dense 64 -> outputs, i.e. channels [32, 64, pool], hidden [64].
"""

from __future__ import annotations

import torch
from torch import nn

from dlcourse.errors import ConfigError
from dlcourse.models.layers import init_weights, make_activation

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNN(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        channels: list = (32, 64, "pool"),
        kernel_size: int = 3,
        padding: int | str = 0,
        pool: str = "max",
        pool_size: int = 2,
        batchnorm: bool = False,
        conv_dropout: float = 0.0,
        global_pool: bool = False,
        hidden: list[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        init: str = "default",
    ):
        super().__init__()
        if pool not in POOLS:
            raise ConfigError("model.pool", pool, "allowed: " + ", ".join(POOLS))
        if not isinstance(conv_dropout, int | float) or not 0 <= conv_dropout < 1:
            raise ConfigError("model.conv_dropout", conv_dropout, "must be a number >= 0 and < 1")
        if not isinstance(kernel_size, int) or kernel_size < 1:
            raise ConfigError("model.kernel_size", kernel_size, "must be an integer >= 1")
        if not (padding == "same" or (isinstance(padding, int) and padding >= 0)):
            raise ConfigError("model.padding", padding, "must be an integer >= 0 or 'same'")
        in_ch = input_shape[0] if len(input_shape) == 3 else 1
        layers: list[nn.Module] = []
        c = in_ch
        for i, item in enumerate(channels):
            if item in ("pool", "M"):
                layers.append(POOLS[pool](pool_size))
                if conv_dropout > 0:
                    layers.append(nn.Dropout(conv_dropout))
            elif isinstance(item, int) and not isinstance(item, bool) and item >= 1:
                layers.append(nn.Conv2d(c, item, kernel_size, padding=padding, bias=not batchnorm))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(item))
                layers.append(make_activation(activation))
                c = item
            else:
                raise ConfigError(f"model.channels[{i}]", item, "must be a positive integer (conv maps) or 'pool'")
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
