"""Forecasting baselines, as models so that they sit in the same tables as the networks.

  Naive   repeat the last input value (no parameters; nothing is trained, the run only evaluates);
  Linear  one dense layer over the flattened window (n_steps x features -> horizon).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlcourse.config.types import Head
from dlcourse.models.layers import flat_size
from dlcourse.models.rnn import seq2seq_horizon


class Naive(nn.Module):
    accepts = ("sequence",)

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, head: Head = "last"):
        super().__init__()
        self.head = head
        self.horizon = seq2seq_horizon("naive", input_shape, num_outputs) if head == "seq2seq" else num_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x[..., :1]  # (N, n_steps, 1): the series (the first feature)
        if self.head == "seq2seq":
            return value.repeat(1, 1, self.horizon)  # after every step: that step's value
        steps = 1 if (self.head == "iterative" and self.training) else self.horizon
        return value[:, -1].repeat(1, steps)  # (N, horizon): the last value, repeated


class Linear(nn.Module):
    accepts = ("table", "image", "sequence")  # any input: it flattens (on a table, logistic/linear regression)

    # head: seq2seq would let the forecast after step t see the inputs after t: not offered.
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, head: Literal["last"] = "last"):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(flat_size(input_shape), num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
