"""One training run, in two steps: `prepare` builds the data and the task (every data or model error
surfaces here, before the run directory exists), `fit` trains, tests and writes the run's outputs.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from dlcourse.atomic_files import write_json
from dlcourse.build import build_datamodule, build_task, build_trainer, check_checkpoint, check_device
from dlcourse.callbacks.early_stopping import EarlyStopping
from dlcourse.console_summary import ending_line, markdown_summary, print_summary
from dlcourse.errors import NonFiniteLossError
from dlcourse.faults import ending_cleanly
from dlcourse.intervals import task_intervals
from dlcourse.loggers import log_final, tested_step
from dlcourse.lr_finder import find_lr_if_enabled, lr_find_record, record_lr_find_only
from dlcourse.machine import apply_thread_policy
from dlcourse.memory import keep_freed_memory
from dlcourse.models.layers import count_parameters
from dlcourse.run_records import history_rows, run_record, write_history
from dlcourse.task import Task
from dlcourse.tensorboard_hparams import hparam_entries, metric_order, user_overrides
from dlcourse.tensorboard_logger import TensorBoardLogger

log = logging.getLogger("dlcourse")


class _DropAdverts(logging.Filter):
    """Lightning prints a cloud-logging advert on every run; students need the device lines, not that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_noise() -> None:
    """Warnings and messages that say nothing to a student, silenced for the run (a process-wide
    setting: `dlcourse.run` puts back the caller's warnings filters and loggers afterwards)."""
    # Few batches per epoch is normal on small data; the pytree notice is internal to Lightning.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # On a machine with SLURM installed, Lightning suggests srun for every run; dlcourse's launcher uses it.
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # bf16-mixed: the summary counts parameters right; only its size estimate assumes 32 bits.
    warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")
    # A model with nothing to train (the naive forecast) runs without an optimizer, on purpose.
    warnings.filterwarnings("ignore", message=".*(returned `None`, this fit will run with no optimizer|`training_step` returned `None`).*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdverts) for f in logger.filters):
            logger.addFilter(_DropAdverts())


@dataclass
class Prepared:
    """A run whose data and task are built: nothing can fail on the config or the data any more."""

    cfg: DictConfig
    dm: object
    task: Task
    started: float = field(default_factory=time.perf_counter)
    resumed: dict | None = None  # a resume's checkpoint: epochs trained, its run's max_epochs


def prepare(cfg: DictConfig) -> Prepared:
    """Seed, build the data (read, split, preprocess) and the model/task; check a resume checkpoint."""
    started = time.perf_counter()
    quiet_noise()
    check_device(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    dm.setup("fit")  # builds the data now: the model's input/output sizes come from it
    task = build_task(cfg, dm)
    apply_thread_policy(cfg.get("threads", "auto"), cfg.trainer.get("accelerator"), dm.inputs,
                        count_parameters(task.model), dm.train_batch_size)
    resumed = check_checkpoint(cfg.ckpt_path, task, cfg.trainer.max_epochs) if cfg.ckpt_path is not None else None
    return Prepared(cfg, dm, task, started, resumed)


def best_epoch_metrics(task: Task, trainer: L.Trainer) -> dict:
    """The validation metrics of the epoch the best checkpoint comes from (or of the last epoch)."""
    history = task.val_history
    if not history:
        return {}
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is None or ckpt_cb.monitor is None or not any(ckpt_cb.monitor in h for h in history):
        return history[-1]
    scored = [h for h in history if ckpt_cb.monitor in h]
    pick = min if ckpt_cb.mode == "min" else max
    return pick(scored, key=lambda h: h[ckpt_cb.monitor])  # first among ties, as ModelCheckpoint keeps


def log_lightning_to_the_run() -> None:
    """Lightning's messages into the run's log (train.log) and console handlers, when Hydra has set
    them up: imported before that, Lightning keeps its messages to a console handler of its own."""
    if not any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if type(h) is not logging.StreamHandler]
        lg.propagate = True


def fit(prepared: Prepared, cfg: DictConfig | None = None) -> dict:
    """Train, test the best checkpoint, write metrics.json and the HParams entry; return the record.
    `cfg` is the job's own copy of the config when Hydra runs the job (its run directory is known)."""
    cfg = cfg if cfg is not None else prepared.cfg
    log_lightning_to_the_run()
    dm, task = prepared.dm, prepared.task
    task.config = OmegaConf.to_container(cfg, resolve=True)  # stored in checkpoints for dlcourse-eval
    run_dir = Path(cfg.paths.output_dir)
    trainer = build_trainer(cfg)
    keep_freed_memory()  # DLCOURSE_MALLOC=keep: from here on the steps reuse what they free (dlcourse.memory)
    if prepared.resumed:
        longer = (prepared.resumed["max_epochs"] or 0) < cfg.trainer.max_epochs
        log.info("resuming from %s after %s epochs%s", cfg.ckpt_path, prepared.resumed["epochs"],
                 f", to train up to {cfg.trainer.max_epochs} (early stopping's patience counts from here)" if longer else "")
        for cb in trainer.callbacks:
            if isinstance(cb, EarlyStopping):
                cb.restart_patience = longer

    with ending_cleanly(run_dir, trainer):  # a signal, a full disk: one line that says how to go on
        found = find_lr_if_enabled(prepared, cfg, run_dir, trainer.loggers)  # lr_find.enabled: Lightning's finder first
        if found is not None and not cfg.lr_find.train:
            return record_lr_find_only(prepared, cfg, run_dir, found, trainer.loggers)
        try:
            trainer.fit(task, datamodule=dm, ckpt_path=cfg.ckpt_path, weights_only=True)
        except NonFiniteLossError:
            if trainer.is_global_zero:  # the error line follows on stderr; the console says how the run ended
                print(ending_line({"diverged_epoch": trainer.current_epoch + 1, "max_epochs": cfg.trainer.max_epochs}))
            raise
        return tested(prepared, cfg, trainer, run_dir, found)


def tested(prepared: Prepared, cfg: DictConfig, trainer: L.Trainer, run_dir: Path, found) -> dict:
    """After training: test the best checkpoint, write metrics.json, history.csv and the loggers' results."""
    dm, task = prepared.dm, prepared.task
    early = trainer.early_stopping_callback  # read now: testing the best checkpoint restores its state
    stopped_early = bool(early is not None and early.stopped_epoch > 0)

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    test_metrics = {}
    if cfg.test:
        trainer.test(task, datamodule=dm, ckpt_path="best" if best else None, weights_only=True, verbose=False)
        test_metrics = dict(task.test_results)
    val_metrics = best_epoch_metrics(task, trainer)
    record = run_record(
        cfg, run_dir, task=dm.task, epochs=trainer.current_epoch, started=prepared.started,
        params=count_parameters(task.model), val=val_metrics, test=test_metrics, best_checkpoint=best,
        n_test=len(dm.splits["test"][1]),
        stopped_early=stopped_early, max_epochs=cfg.trainer.max_epochs,
        trainable_params=count_parameters(task.model, trainable_only=True), class_names=dm.class_names,
        **lr_find_record(found))
    record.update(task_intervals(task, dm))  # regression: bootstrap intervals of the test mse and mae
    pruned = next((cb.pruned_epoch for cb in trainer.callbacks if getattr(cb, "pruned_epoch", None)), None)
    if pruned is not None:  # an Optuna trial stopped by its pruner (dlcourse.sweeps.pruning)
        record.update(status="pruned", pruned_epoch=pruned)
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", record)
        write_history(run_dir / "history.csv", history_rows(task.train_history, task.val_history))
        for lg in trainer.loggers:  # the HParams view: one row per run, with its final metrics
            log_results(lg, cfg, record, task.val_history)
            lg.finalize("success")
        print_summary(record, run_dir, trainer.loggers)
    return record


def log_results(lg, cfg: DictConfig, record: dict, history: list[dict]) -> None:
    """The run's final values and hyperparameters to one logger, the way it takes them: dlcourse's
    TensorBoardLogger gets the values at the tested epoch, the HParams entry and the summary card here;
    MLflow, CSV and any other Lightning logger get theirs from dlcourse.loggers.log_final."""
    hparams, first = hparam_entries(cfg)
    summary = markdown_summary(record, user_overrides())
    if not isinstance(lg, TensorBoardLogger):
        log_final(lg, hparams, record, summary)
        return
    results = {k: v for k, v in {**record["val"], **record["test"]}.items() if "/" in k}
    last_train = ["train/loss", *(["train/acc"] if record["task"] != "regression" else [])] if history else []
    order = metric_order([*results, *last_train], cfg.optimized_metric)
    lg.log_results(hparams, first, results, tested_step(record), order, summary)


def train(cfg: DictConfig) -> dict:
    """Run one validated config end to end in `cfg.paths.output_dir`; return the metrics.json content."""
    return fit(prepare(cfg))
