"""Lightning's LearningRateMonitor on the epoch axis of every other curve: the learning rate an
epoch trains with is logged at that epoch's number (1 = the first epoch), not at the optimizer step."""

from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor as LightningLearningRateMonitor

from dlcourse.internals import learning_rates


class LearningRateMonitor(LightningLearningRateMonitor):
    def on_train_epoch_start(self, trainer, *args, **kwargs) -> None:
        if self.logging_interval == "step":
            return
        stats = learning_rates(self, trainer, "epoch" if self.logging_interval is None else "any")
        if stats:
            for logger in trainer.loggers:  # `epoch` (0-based) sets the step, as for the task's values
                logger.log_metrics({**stats, "epoch": trainer.current_epoch}, step=trainer.current_epoch + 1)
