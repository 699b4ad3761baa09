"""Recurrent forecaster: stacked simple RNN / LSTM / GRU layers and one of three heads.

Inputs are (N, n_steps, features). `head` must match the data's target form (the data configs
follow `model.head` automatically):

  last       sequence-to-vector: a dense layer on the last step's output -> (N, horizon);
  seq2seq    the same dense layer at every step -> (N, n_steps, horizon), trained against the next
             horizon values after every step;
  iterative  a one-step model (dense layer -> 1 value). In training it predicts the next value; in
             evaluation it feeds each prediction back as the next input and forecasts horizon steps,
             so validation and test metrics score the whole rollout.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlcourse.config.types import Head, Init, Probability, Widths
from dlcourse.errors import ConfigError
from dlcourse.models.layers import init_weights

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def seq2seq_horizon(model: str, input_shape, num_outputs: int) -> int:
    n_steps = int(input_shape[0])
    if num_outputs % n_steps:
        raise ConfigError("model.head", "seq2seq", f"the {model} model needs targets of n_steps x horizon values "
                          f"(got {num_outputs} outputs for {n_steps} steps); set data.targets=seq2seq")
    return num_outputs // n_steps


class RNN(nn.Module):
    accepts = ("sequence",)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        cell: Literal["rnn", "lstm", "gru"] = "rnn",
        hidden: Widths = (20, 20),
        dropout: Probability = 0.0,
        head: Head = "last",
        init: Init = "xavier",
    ):
        super().__init__()
        self.cell, self.head = cell, head
        self.horizon = seq2seq_horizon("rnn", input_shape, num_outputs) if head == "seq2seq" else num_outputs
        width = int(input_shape[-1])
        if head == "iterative" and width != 1:
            raise ConfigError("model.head", head, f"rolls a univariate series forward; the inputs have {width} features")
        # One module per layer, so widths may differ and dropout sits between layers.
        self.layers = nn.ModuleList()
        for h in hidden:
            self.layers.append(CELLS[cell](width, int(h), batch_first=True))
            width = int(h)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1 if head == "iterative" else self.horizon)
        self.reset_parameters(init)

    def reset_parameters(self, scheme: str) -> None:
        """default: PyTorch's U(-1/sqrt(h), 1/sqrt(h)) everywhere. xavier / kaiming: the textbook's (Keras)
        set-up: that scheme for the input and dense weights, orthogonal recurrent weights, zero biases
        (LSTM forget gate 1). normal: N(0, 1) everywhere, the lecture's example of what goes wrong."""
        if scheme == "default":
            return
        for layer in self.layers:
            for name, p in layer.named_parameters():
                if scheme == "normal":
                    nn.init.normal_(p, 0.0, 1.0)
                elif name.startswith("weight_ih"):
                    (nn.init.xavier_uniform_ if scheme == "xavier" else nn.init.kaiming_uniform_)(p)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p)
                else:
                    nn.init.zeros_(p)
                    if self.cell == "lstm" and name.startswith("bias_ih"):
                        nn.init.ones_(p[p.shape[0] // 4 : p.shape[0] // 2])  # gates i, f, g, o: forget = 1
        init_weights(self.out, scheme, "tanh")

    def _run(self, x: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        new_states = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            x, state = layer(x, None if states is None else states[i])
            new_states.append(state)
        return x, new_states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, states = self._run(x)
        if self.head == "seq2seq":
            return self.out(seq)  # (N, n_steps, horizon)
        y = self.out(seq[:, -1])  # (N, horizon) or, iterative, the next value (N, 1)
        if self.head != "iterative" or self.training:
            return y
        # Roll forward: feed each forecast back as the next input, carrying the recurrent state
        # (identical to re-running the RNN on the growing window, at 1/n_steps of the cost).
        outputs = [y]
        for _ in range(self.horizon - 1):
            seq, states = self._run(outputs[-1].unsqueeze(1), states)
            outputs.append(self.out(seq[:, -1]))
        return torch.cat(outputs, dim=1)  # (N, horizon)
