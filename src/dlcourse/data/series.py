"""Time series for forecasting: windows of `n_steps` inputs and the `horizon` values that follow.

A subclass returns, per split, an array of windows of n_steps + horizon consecutive values
(`split_windows()`); this base cuts them into inputs and targets in the form the model's head needs:

  last       inputs (N, n_steps, 1), targets (N, horizon): the values after the last input step
             (sequence-to-vector; horizon 1 = next step, horizon 10 = the "vector" forecast).
  seq2seq    inputs (N, n_steps, 1), targets (N, n_steps, horizon): after every step t, the next
             horizon values, target[t, k-1] = x[t + k] (k = 1..horizon).
  iterative  as `last` for validation and test (N, horizon), but the training targets are the next
             value only (N, 1): a one-step model is trained, then rolled forward horizon steps.

The form follows the model's head (conf/data/*.yaml: `targets: ${oc.select:model.head,last}`).
Every form also declares `last_outputs = horizon`: the last `horizon` columns of the flattened targets
are the forecast made after the last input step, reported as `val/mse_last` and `test/mse_last`
(for seq2seq it is the textbook's "last time step MSE"; for the other forms it equals the MSE).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from dlcourse.config.types import Head, PositiveInt
from dlcourse.data.base import InMemoryDataModule


def windows_to_xy(windows: np.ndarray, n_steps: int, horizon: int, form: str) -> tuple[np.ndarray, np.ndarray]:
    """windows (N, n_steps + horizon) -> inputs (N, n_steps, 1) and targets in the given form."""
    if windows.shape[1] != n_steps + horizon:
        raise ValueError(f"windows have {windows.shape[1]} values, expected n_steps + horizon = {n_steps + horizon}")
    x = windows[:, :n_steps, None]
    if form == "seq2seq":
        y = np.stack([windows[:, k : k + n_steps] for k in range(1, horizon + 1)], axis=-1)
    else:
        y = windows[:, n_steps:]
    return x, y


class SeriesDataModule(InMemoryDataModule):
    task = "regression"
    family = "regression"
    inputs = "sequence"

    def __init__(self, n_steps: PositiveInt = 50, horizon: PositiveInt = 1, targets: Head = "last",
                 normalize: Literal["window", "global"] = "global", **kwargs):
        super().__init__(**kwargs)
        self.n_steps, self.horizon, self.targets = int(n_steps), int(horizon), targets
        # window: the model scales each window by its own statistics (dlcourse.models.window_norm)
        self.normalize = normalize
        self.last_outputs = self.horizon
        self.value_label = "value"

    # -- to implement ---------------------------------------------------------------
    def split_windows(self) -> dict[str, np.ndarray]:
        """{"train"|"val"|"test": array (N, n_steps + horizon)} of consecutive values."""
        raise NotImplementedError

    # -- built here ------------------------------------------------------------------
    def build(self):
        splits = {}
        for split, windows in self.split_windows().items():
            x, y = windows_to_xy(np.asarray(windows, dtype=np.float32), self.n_steps, self.horizon, self.targets)
            if self.targets == "iterative" and split == "train":
                y = y[:, :1]  # train the next step only; validation and test roll it forward
            splits[split] = (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))
        return splits

    @property
    def num_outputs(self) -> int:
        # The whole forecast, also for `iterative` (whose training targets are one step).
        return self.n_steps * self.horizon if self.targets == "seq2seq" else self.horizon

    def figures(self, model, preds: torch.Tensor, targets: torch.Tensor, n: int = 3) -> dict:
        """Three test series: input history, true future and the forecast made after the last step."""
        from dlcourse.metric_figures import figure

        x = self.splits["test"][0][:n, :, 0].numpy()
        h, t = self.horizon, np.arange(self.n_steps + self.horizon)
        true_future, pred_future = targets[:n, -h:].numpy(), preds[:n, -h:].numpy()
        fig, axes = figure((8, 2.2 * len(x)), len(x), 1, sharex=True, squeeze=False)
        for i, ax in enumerate(axes[:, 0]):
            ax.plot(t[: self.n_steps], x[i], ".-", color="tab:blue", label="input history")
            ax.plot(t[self.n_steps :], true_future[i], "o-", color="tab:green", label="true future")
            ax.plot(t[self.n_steps :], pred_future[i], "x--", color="tab:red", label="forecast")
            ax.set_ylabel(self.value_label)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(loc="upper left", fontsize=8)
        axes[0, 0].set_title(f"forecast of the next {h} step{'s' if h > 1 else ''} (test series, best model)")
        axes[-1, 0].set_xlabel("time step")
        fig.tight_layout()
        return {"forecast": fig}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "n_steps": self.n_steps, "horizon": self.horizon, "targets": self.targets,
                "normalize": self.normalize}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.n_steps = state.get("n_steps", self.n_steps)
        self.horizon = state.get("horizon", self.horizon)
        self.targets = state.get("targets", self.targets)
        self.normalize = state.get("normalize", "global")  # checkpoints from before the key: global
        self.last_outputs = self.horizon
