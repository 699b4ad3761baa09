"""WaveNet-style forecaster: stacked causal dilated 1-D convolutions (no recurrence).

Each layer sees its input `dilation` steps apart and only the past (left padding), so with kernel 2
and dilations 1, 2, 4, 8 (twice) an output at step t sees up to 31 steps back. A 1x1 convolution
gives the horizon values after every step (`head: seq2seq`, the textbook's set-up) or only after the
last step (`head: last`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.errors import ConfigError
from dlcourse.models.layers import make_activation
from dlcourse.models.rnn import check_head, seq2seq_horizon


class CausalConv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (pad, 0)))


class WaveNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        filters: int = 20,
        kernel_size: int = 2,
        dilations: list[int] = (1, 2, 4, 8, 1, 2, 4, 8),
        activation: str = "relu",
        dropout: float = 0.0,
        head: str = "seq2seq",
    ):
        super().__init__()
        check_head("wavenet", head, ("last", "seq2seq"))
        if len(input_shape) != 2:
            raise ConfigError("model", "wavenet", f"needs sequence inputs (n_steps, features), got shape {tuple(input_shape)}")
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ConfigError("model.dilations", list(dilations), "must be a non-empty list of integers >= 1")
        for key, v in (("filters", filters), ("kernel_size", kernel_size)):
            if int(v) < 1:
                raise ConfigError(f"model.{key}", v, "must be an integer >= 1")
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
