"""Lightning's EarlyStopping, with patience that counts from the resume point when a run is resumed
to train longer (a larger trainer.max_epochs than the run had): the restored state of a run that
early stopping had ended would otherwise end the resumed run after one epoch. A resume of an
interrupted run (the same max_epochs) restores the state exactly, so it ends as the unbroken run."""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping


class EarlyStopping(LightningEarlyStopping):
    restart_patience = False  # set by dlcourse.train when the resumed run trains longer than the original

    def load_state_dict(self, state_dict: dict) -> None:
        patience = self.patience  # this run's setting, not the checkpoint's
        super().load_state_dict(state_dict)
        self.patience = patience
        if self.restart_patience:
            self.wait_count, self.stopped_epoch = 0, 0
