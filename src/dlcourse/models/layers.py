"""Small building blocks shared by the models."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, scheme: str, nonlinearity: str = "relu") -> None:
    """Re-initialise every Linear/Conv weight. 'normal' is N(0, 1): the lecture's example of an
    initialisation that makes activations and gradients explode or vanish with depth."""
    if scheme == "default":
        return
    gain_name = {"leaky_relu": "leaky_relu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}.get(nonlinearity, "relu")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(gain_name))
            elif scheme == "kaiming":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="leaky_relu" if gain_name == "leaky_relu" else "relu")
            elif scheme == "normal":
                nn.init.normal_(m.weight, 0.0, 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flat_size(shape) -> int:
    return int(torch.Size(shape).numel())
