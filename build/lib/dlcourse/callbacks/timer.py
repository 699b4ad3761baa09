"""Wall time per epoch (train + validation + checkpointing), kept in memory for benchmarks."""

from __future__ import annotations

import time

import lightning as L


class EpochTimer(L.Callback):
    def __init__(self):
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.starts.append(time.perf_counter())  # closes the last epoch

    @property
    def epoch_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]
