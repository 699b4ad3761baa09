"""Multi-layer perceptron: input (any shape, flattened) -> hidden layers -> num_outputs logits."""

from __future__ import annotations

from torch import nn

from dlcourse.config.types import Activation, Init, Probability, Widths
from dlcourse.models.layers import flat_size, init_weights, make_activation


class MLP(nn.Module):
    accepts = ("table", "image", "sequence")  # any input: it flattens

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        hidden: Widths = (100,),
        activation: Activation = "relu",
        dropout: Probability = 0.0,
        batchnorm: bool = False,
        init: Init = "default",
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]  # images work unchanged: 1x28x28 -> 784
        width = flat_size(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_outputs))  # logits: the loss applies sigmoid/softmax
        self.net = nn.Sequential(*layers)
        init_weights(self, init, activation)

    def forward(self, x):
        return self.net(x)

