"""ModelCheckpoint whose last.ckpt really is the last epoch.

Lightning 2.6 refreshes last.ckpt only in epochs that also saved a top-k checkpoint, so after a
few epochs without improvement "last" is several epochs old, and a resumed run would silently
redo them (and could not end with the unbroken run's metrics). This saves it every epoch.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
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
