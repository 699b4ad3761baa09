"""One training run, in two steps: `prepare` builds the data and the task (every data or model error
surfaces here, before the run directory exists), `fit` trains, tests and writes the run's outputs.

    python -m dlcourse.train experiment=iris_mlp     # the same as dlcourse-train (dlcourse.app)
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from dlcourse.build import build_datamodule, build_task, build_trainer, check_checkpoint
from dlcourse.models.layers import count_parameters
from dlcourse.report import flat_hparams, print_summary, run_record, write_json
from dlcourse.task import Task

log = logging.getLogger("dlcourse")
# Noise that says nothing to a student: few batches per epoch is normal on small data, and
# the pytree notice is internal to Lightning.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
# bf16-mixed: the summary counts parameters right; only its size estimate assumes 32 bits.
warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")
# A model with nothing to train (the naive forecast) runs without an optimizer, on purpose.
warnings.filterwarnings("ignore", message=".*(returned `None`, this fit will run with no optimizer|`training_step` returned `None`).*")


class _DropAdverts(logging.Filter):
    """Lightning prints a cloud-logging advert on every run; students need the device lines, not that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropAdverts())


@dataclass
class Prepared:
    """A run whose data and task are built: nothing can fail on the config or the data any more."""

    cfg: DictConfig
    dm: object
    task: Task
    started: float = field(default_factory=time.perf_counter)


def prepare(cfg: DictConfig) -> Prepared:
    """Seed, build the data (read, split, preprocess) and the model/task; check a resume checkpoint."""
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    dm.setup("fit")  # builds the data now: the model's input/output sizes come from it
    task = build_task(cfg, dm)
    if cfg.ckpt_path is not None:
        check_checkpoint(cfg.ckpt_path, task, cfg.trainer.max_epochs)
    return Prepared(cfg, dm, task, started)


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


def fit(prepared: Prepared, cfg: DictConfig | None = None) -> dict:
    """Train, test the best checkpoint, write metrics.json and the HParams entry; return the record.
    `cfg` is the job's own copy of the config when Hydra runs the job (its run directory is known)."""
    cfg = cfg if cfg is not None else prepared.cfg
    dm, task = prepared.dm, prepared.task
    task.config = OmegaConf.to_container(cfg, resolve=True)  # stored in checkpoints for dlcourse-eval
    run_dir = Path(cfg.paths.output_dir)
    if cfg.ckpt_path is not None:
        log.info("resuming from %s", cfg.ckpt_path)
    trainer = build_trainer(cfg)

    trainer.fit(task, datamodule=dm, ckpt_path=cfg.ckpt_path, weights_only=True)

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    test_metrics = {}
    if cfg.test:
        trainer.test(task, datamodule=dm, ckpt_path="best" if best else None, weights_only=True, verbose=False)
        test_metrics = dict(task.test_results)
    val_metrics = best_epoch_metrics(task, trainer)
    early = trainer.early_stopping_callback
    record = run_record(
        cfg, run_dir, task=dm.task, epochs=trainer.current_epoch, started=prepared.started,
        params=count_parameters(task.model), val=val_metrics, test=test_metrics, best_checkpoint=best,
        n_test=len(dm.splits["test"][1]),
        stopped_early=bool(early is not None and early.stopped_epoch > 0),
        trainable_params=count_parameters(task.model, trainable_only=True), class_names=dm.class_names)
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", record)
        for lg in trainer.loggers:  # the HParams view: one row per run, with its final metrics
            hp_metrics = {f"hp/{k.replace('/', '_')}": v for k, v in {**val_metrics, **test_metrics}.items()}
            lg.log_hyperparams(flat_hparams(cfg), hp_metrics)
            lg.finalize("success")
        print_summary(record, run_dir)
    return record


def train(cfg: DictConfig) -> dict:
    """Run one validated config end to end in `cfg.paths.output_dir`; return the metrics.json content."""
    return fit(prepare(cfg))


if __name__ == "__main__":
    from dlcourse.app import main

    main()
