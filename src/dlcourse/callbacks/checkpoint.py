"""ModelCheckpoint whose last.ckpt really is the last epoch, written once per epoch.

Lightning 2.6 refreshes last.ckpt only in epochs that also saved a top-k checkpoint, so after a
few epochs without improvement "last" is several epochs old, and a resumed run would silently
redo them (and could not end with the unbroken run's metrics). This saves it every epoch.

In an epoch that saved a top-k checkpoint, last.ckpt is a link to that file instead of a second
copy (one write per epoch, not two: ~10 ms of a small model's epoch); otherwise it is written in
full, to a temporary file renamed over last.ckpt, so a run killed mid-write keeps the previous one
and a link is replaced, never written through.
"""

from __future__ import annotations

import os
from weakref import proxy

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        previous, self.last_model_path = self.last_model_path, filepath
        saved = self._last_checkpoint_saved
        if self._last_global_step_saved == trainer.global_step and saved and saved != filepath:
            self._link_checkpoint(trainer, saved, filepath)  # a symlink, or a copy where links are not allowed
        else:
            partial = f"{filepath}.partial"
            trainer.save_checkpoint(partial, self.save_weights_only)  # written by rank zero, then a barrier
            if trainer.is_global_zero:
                os.replace(partial, filepath)
                for logger in trainer.loggers:  # as Lightning's own save does (a logger may upload it)
                    logger.after_save_checkpoint(proxy(self))
            self._last_global_step_saved = trainer.global_step
            self._last_checkpoint_saved = filepath
        if previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _save_last_every_epoch(self, trainer) -> None:
        # Skipped when this step was saved already (a top-k save followed by Lightning's own last).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)
