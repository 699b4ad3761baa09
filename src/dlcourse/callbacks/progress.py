"""Lightning's RichProgressBar in real batches and samples per second.

On one device the training loader hands the task several batches per call (dlcourse.loop):
Lightning's bar would count calls (`8/8` for an epoch of hundreds of batches, `1/1` for full
batch) and its it/s column, measured over a few calls, reads `0.00it/s`. Here the training bar
counts batches and its speed column shows samples per second since the epoch started.

In a Jupyter kernel, rich's live bar needs ipywidgets and cannot be kept in a saved notebook; there
the same counts go to Lightning's tqdm bar (`NotebookProgressBar`: a widget where ipywidgets is
installed, text lines otherwise), chosen by dlcourse.build."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.text import Text

from dlcourse.internals import TrainDescription, attached_trainer
from dlcourse.loop import TrainLoop, steps_per_epoch


class SamplesPerSecondColumn(ProcessingSpeedColumn):
    def render(self, task) -> Text:
        samples, started = task.fields.get("samples"), task.fields.get("started")
        if samples is None or started is None:  # evaluation bars: batches per second
            speed = task.completed / task.elapsed if task.elapsed else 0.0
            return Text(f"{speed:,.0f} batches/s" if speed >= 1 else "", style=self.style)
        elapsed = time.perf_counter() - started
        return Text(f"{samples / elapsed:,.0f} samples/s" if elapsed > 0 and samples else "", style=self.style)


def loader_shape(loader) -> tuple[int, int]:
    """(batch size, samples) of a training loader (a TensorLoader or a DataLoader)."""
    batch_size = int(getattr(loader, "batch_size", 1) or 1)
    n = getattr(loader, "n", None)
    if n is None:
        dataset = getattr(loader, "dataset", None)
        n = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else 0
    return batch_size, int(n)


def in_notebook() -> bool:
    """True in a Jupyter kernel (Jupyter, Colab, VS Code notebooks), not in IPython in a terminal."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")  # Shell: Colab's


class _RealBatches(TrainDescription):
    """The training bar in batches, as the training loop counts them (dlcourse.loop), whatever its grouping."""

    _shape = (1, 0)

    @property
    def total_train_batches(self):
        trainer = self.trainer if attached_trainer(self) is not None else None
        loader = trainer.train_dataloader if trainer is not None else None
        self._shape = loader_shape(loader) if loader is not None else (1, 0)
        return steps_per_epoch(trainer) if trainer is not None else super().total_train_batches

    def epoch_text(self, current_epoch: int) -> str:
        """"Epoch 3/20, batches of 32": epochs counted from 1, as the summary and TensorBoard count them."""
        most = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{most}" if most and most > 0 else "")
        batch_size, n = self._shape
        size = "full batch" if n and batch_size >= n else f"batches of {batch_size}"
        return f"{text}, {size}"

    @staticmethod
    def _done(pl_module, batch_idx: int) -> tuple[int, int | None]:
        """(batches, samples) of the epoch so far: the loop's counts; Lightning's calls for another module."""
        loop = getattr(pl_module, "loop", None)
        return (loop.batches, loop.seen) if isinstance(loop, TrainLoop) else (batch_idx + 1, None)


class NotebookProgressBar(_RealBatches, TQDMProgressBar):
    """Lightning's tqdm bar in real batches, for Jupyter kernels."""

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(self.epoch_text(trainer.current_epoch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # Lightning's handler sets the bar to `batch_idx + 1`: the batches done, here
        super().on_train_batch_end(trainer, pl_module, outputs, batch, self._done(pl_module, batch_idx)[0] - 1)


class ProgressBar(_RealBatches, RichProgressBar):

    def configure_columns(self, trainer) -> list:
        columns = super().configure_columns(trainer)
        return [*columns[:-1], SamplesPerSecondColumn(style=self.theme.processing_speed)]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, samples=0, started=time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        batches, samples = self._done(pl_module, batch_idx)
        bar = self.train_progress_bar_id
        if self.progress is not None and bar is not None:
            if samples is None:  # not dlcourse's loop: full batches
                batch_size, n = self._shape
                samples = min(batches * batch_size, n) if n else batches * batch_size
            self.progress.update(bar, samples=samples)
        # Lightning's handler sets the bar to `batch_idx + 1`: the batches done, here
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batches - 1)
