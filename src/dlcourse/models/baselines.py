"""Forecasting baselines, as models so that they sit in the same tables as the networks.

  Naive   repeat the last input value (no parameters; nothing is trained, the run only evaluates), or
          with `season` s > 1 the seasonal naive forecast: the value one season before, step k after the
          window is x[n - s + (k - 1) mod s] (monthly data, s = 12: the same month a year ago);
  Linear  one dense layer over the flattened window (n_steps x features -> horizon).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlcourse.config.types import Head, PositiveInt
from dlcourse.errors import ConfigError
from dlcourse.models.layers import flat_size
from dlcourse.models.rnn import seq2seq_horizon


class Naive(nn.Module):
    accepts = ("sequence",)

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, head: Head = "last", season: PositiveInt = 1):
        super().__init__()
        self.head, self.season, n_steps = head, int(season), int(input_shape[0])
        if self.season > n_steps:
            raise ConfigError("model.season", season, f"a season longer than the window; data.n_steps={n_steps} must "
                              f"be at least {season}")
        self.horizon = seq2seq_horizon("naive", input_shape, num_outputs) if head == "seq2seq" else num_outputs
        k = torch.arange(1, self.horizon + 1)
        back = self.season * torch.div(k + self.season - 1, self.season, rounding_mode="floor") - k  # >= 0
        if head == "seq2seq":  # after step t: x[t - back[k]], the window's first value where it reaches before it
            index = (torch.arange(n_steps)[:, None] - back[None]).clamp_min(0)  # (n_steps, horizon)
        else:  # after the window: x[n - 1 - back[k]]
            index = n_steps - 1 - back
        self.register_buffer("index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x[..., 0]  # (N, n_steps): the series (the first feature)
        if self.head == "seq2seq":
            return value[:, self.index]  # (N, n_steps, horizon)
        steps = 1 if (self.head == "iterative" and self.training) else self.horizon
        return value[:, self.index[:steps]]  # (N, horizon): the last value (or season), repeated


class Linear(nn.Module):
    accepts = ("table", "image", "sequence")  # any input: it flattens (on a table, logistic/linear regression)

    # head: seq2seq would let the forecast after step t see the inputs after t: not offered.
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, head: Literal["last"] = "last"):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(flat_size(input_shape), num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
