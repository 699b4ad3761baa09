"""ModelCheckpoint whose last.ckpt really is the last epoch, written once per epoch.

Lightning refreshes last.ckpt only in epochs that also saved a top-k checkpoint, so after a few
epochs without improvement "last" is several epochs old, and a resumed run would silently redo
them (and could not end with the unbroken run's metrics). Here last.ckpt is saved after every
training epoch: in an epoch that saved a top-k checkpoint, as a link to that file (one write per
epoch, not two: ~10 ms of a small model's epoch); otherwise written in full to a temporary file
that is renamed over last.ckpt, so a run killed mid-write keeps the previous one and a link is
replaced, never written through.
"""

from __future__ import annotations

import os
import time
import zipfile
from weakref import proxy

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from dlcourse.faults import as_disk_error


class ModelCheckpoint(LightningModelCheckpoint):
    def __init__(self, *args, save_last: bool = True, **kwargs):
        super().__init__(*args, save_last=False, **kwargs)  # Lightning's own last.ckpt logic stays off
        self.keep_last = save_last
        self._saved_at: dict[str, int] = {}  # top-k files written this run -> the global step they hold

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._since = time.time() - 1  # this session's files (mtime resolution): only those are ever removed

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """A write cut short (a full disk, Ctrl+C): Lightning's top-k save writes the file in place, so a
        checkpoint of this session that is not a whole archive (torch.save writes a zip) is removed;
        resume and dlcourse-eval then find only whole ones, the earlier epochs' among them."""
        super().on_exception(trainer, pl_module, exception)
        folder = self.dirpath
        if not trainer.is_global_zero or not folder or not os.path.isdir(folder):
            return
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if (name.endswith((".ckpt", ".partial")) and os.path.isfile(path) and not os.path.islink(path)
                    and os.path.getmtime(path) >= getattr(self, "_since", 0) and not zipfile.is_zipfile(path)):
                os.remove(path)

    def _note_new_saves(self, trainer) -> None:
        for path in {*self.best_k_models, self.best_model_path} - {""}:
            self._saved_at.setdefault(path, trainer.global_step)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._saved_at = dict.fromkeys({*self.best_k_models, self.best_model_path} - {""}, -1)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self._note_new_saves(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # validation and any top-k save of this epoch are done
        self._note_new_saves(trainer)
        if not self.keep_last or trainer.fast_dev_run or trainer.sanity_checking or not trainer.training:
            return
        current = [p for p, step in self._saved_at.items() if step == trainer.global_step and os.path.isfile(p)]
        self.last_model_path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        if current:
            self._link(trainer, current[0], self.last_model_path)
        else:
            self._write(trainer, self.last_model_path)

    def _write(self, trainer, path: str) -> None:
        partial = f"{path}.partial"
        try:
            trainer.save_checkpoint(partial, self.save_weights_only)  # written by rank zero, then a barrier
        except BaseException as e:  # a full disk, Ctrl+C: no half file left; the earlier checkpoints stay
            if trainer.is_global_zero and os.path.exists(partial):
                os.remove(partial)
            disk = as_disk_error(e, partial) if isinstance(e, Exception) else None
            if disk is not None and disk is not e:
                raise disk from None
            raise
        if trainer.is_global_zero:
            os.replace(partial, path)
            for logger in trainer.loggers:  # as Lightning's own saves do (a logger may upload it)
                logger.after_save_checkpoint(proxy(self))

    @staticmethod
    def _link(trainer, target: str, path: str) -> None:
        if trainer.is_global_zero:
            tmp = f"{path}.link"
            if os.path.lexists(tmp):
                os.remove(tmp)
            try:
                os.symlink(os.path.relpath(target, os.path.dirname(path)), tmp)
            except OSError:  # no symlinks here (e.g. Windows without the privilege): copy
                import shutil

                shutil.copyfile(target, tmp)
            os.replace(tmp, path)
        trainer.strategy.barrier()
