"""WaveNet-style forecaster: stacked causal dilated 1-D convolutions (no recurrence).

Each layer sees its input `dilation` steps apart and only the past (left padding), so with kernel 2
and dilations 1, 2, 4, 8 (twice) an output at step t sees up to 31 steps back. A 1x1 convolution
gives the horizon values after every step (`head: seq2seq`, the textbook's set-up) or only after the
last step (`head: last`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.config.types import Activation, MinLen, PositiveInt, Probability
from dlcourse.models.layers import make_activation
from dlcourse.models.rnn import seq2seq_horizon


class CausalConv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (pad, 0)))


class WaveNet(nn.Module):
    accepts = ("sequence",)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        filters: PositiveInt = 20,
        kernel_size: PositiveInt = 2,
        dilations: Annotated[list[PositiveInt], MinLen(1)] = (1, 2, 4, 8, 1, 2, 4, 8),
        activation: Activation = "relu",
        dropout: Probability = 0.0,
        head: Literal["last", "seq2seq"] = "seq2seq",  # seq2seq: horizon values after every step
    ):
        super().__init__()
        self.head = head
        horizon = seq2seq_horizon("wavenet", input_shape, num_outputs) if head == "seq2seq" else num_outputs
        layers: list[nn.Module] = []
        width = int(input_shape[-1])
        for d in dilations:
            layers += [CausalConv1d(width, int(filters), int(kernel_size), dilation=int(d)), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(filters)
        layers.append(nn.Conv1d(width, horizon, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.transpose(1, 2)).transpose(1, 2)  # (N, n_steps, horizon)
        return out if self.head == "seq2seq" else out[:, -1]
