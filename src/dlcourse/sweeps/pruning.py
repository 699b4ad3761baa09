"""Pruning an Optuna trial (`hydra.sweeper.pruner`): a Lightning callback on the trial's Trainer
reports each epoch's `optimized_metric` to the study and stops training when the pruner says so.
The run then ends as usual (best checkpoint tested, TensorBoard closed, metrics.json written) with
status "pruned" and the epoch; the sweeper tells the study the trial was pruned."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("dlcourse")


class OptunaPruning(L.Callback):
    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.pruned_epoch: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_epoch is not None:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        epoch = trainer.current_epoch + 1
        if trainer.is_global_zero:
            self.trial.report(float(value), step=epoch)
            prune = self.trial.should_prune()
        else:
            prune = False
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune and epoch < (trainer.max_epochs or 0):
            self.pruned_epoch = epoch
            trainer.should_stop = True
            log.info("Optuna trial %d pruned after epoch %d (%s = %.4g)", self.trial.number, epoch,
                     self.metric, float(value))


def sweep_settings() -> DictConfig | None:
    """The running job's `hydra.sweeper` when it is a trial of dlcourse's Optuna sweeper."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    sweeper = OmegaConf.select(HydraConfig.get(), "sweeper", default=None)
    if sweeper is None or OmegaConf.select(sweeper, "trial", default=None) is None:
        return None
    return sweeper


def pruning_callback(cfg: DictConfig) -> OptunaPruning | None:
    """The callback for a trial of a study with a pruner; None otherwise."""
    from dlcourse.sweeps.optuna_search import ACTIVE_TRIALS, build_pruner, pruning_on

    sweeper = sweep_settings()
    if sweeper is None or not pruning_on(sweeper.get("pruner")):
        return None
    number = int(sweeper.trial)
    trial = ACTIVE_TRIALS.get((sweeper.study_name, number))
    if trial is None:  # a job in another process (joblib, SLURM): the trial through the study's storage
        trial = load_trial(sweeper, number, build_pruner(sweeper.get("pruner")))
    return OptunaPruning(trial, str(cfg.optimized_metric))


def load_trial(sweeper: DictConfig, number: int, pruner):
    import optuna

    storage = optuna.storages.RDBStorage(str(sweeper.storage)) if isinstance(sweeper.storage, str) else None
    if storage is None:
        raise RuntimeError("hydra.sweeper.storage is null: a trial in another process cannot reach an "
                           "in-memory study")
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    return optuna.trial.Trial(study, trial_id)
