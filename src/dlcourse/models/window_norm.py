"""Per-window normalisation around a forecaster (`data.normalize=window`, the default of `csv_series`).

Each input window is scaled by its own statistics before the model sees it, and the model's forecast
is scaled back with the same statistics (RevIN without its learned affine, as in Kim et al. 2022). A
series that drifts or trends then reaches the model at the same level and spread in every window:
trained on the early part of a rising series, it still forecasts the later, higher part, where a model
fed globally standardised values saturates at the levels it was trained on.

  last, iterative  (x - window mean) / window std; forecast * std + mean.
  seq2seq          x - the window's first value; forecast + it. The forecast after step t may only
                   see steps up to t: a mean or std over the whole window would show it the later
                   steps it forecasts, the first value shows it nothing it has not seen.

Being part of the model, the scaling travels with checkpoints and is folded into exported graphs.
"""

from __future__ import annotations

import torch
from torch import nn

# Floor of the window variance, in the units the model gets (the series standardised by its training
# part, data.standardize): a flat window is centred, not blown up to unit spread.
EPS = 1e-3


class WindowNorm(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.causal = getattr(model, "head", "last") == "seq2seq"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.causal:
            shift, scale = x[:, :1], torch.ones_like(x[:, :1])
        else:
            shift = x.mean(dim=1, keepdim=True)  # (N, 1, features)
            scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + EPS)
        out = self.model((x - shift) / scale)
        # The forecast is of the series, the first feature: (N, horizon) or, seq2seq, (N, n_steps, horizon).
        shift, scale = shift[:, :, 0], scale[:, :, 0]
        if out.ndim == 3:
            shift, scale = shift[..., None], scale[..., None]
        return out * scale + shift
