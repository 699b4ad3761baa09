"""`dlcourse-train`: compose the config, validate it, build data/model/task/trainer, fit, test,
and write the run's metrics.json, figures and TensorBoard HParams entry.

    dlcourse-train experiment=iris_mlp optimizer.lr=0.05
    python -m dlcourse.train experiment=gaussian_mlp trainer.batch_size=1
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from omegaconf import DictConfig, OmegaConf

from dlcourse.checkpoints import read_checkpoint
from dlcourse.cli import CONF_DIR, fail, preflight
from dlcourse.config import validate
from dlcourse.errors import CheckpointError, ConfigError, DlcourseError
from dlcourse.metrics import LOSSES, resolve_loss
from dlcourse.models.layers import count_parameters
from dlcourse.report import accuracy_interval, flat_hparams, print_summary, write_json
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

# Keys of conf/trainer that are ours, not Lightning Trainer arguments.
# gradient_clip_val is applied by the task, which runs the optimizer itself (see Task.training_step).
OWN_TRAINER_KEYS = {"batch_size", "eval_batch_size", "steps_per_call", "gradient_clip_val"}


def instantiate_checked(node, **kwargs):
    """instantiate(), but a DlcourseError raised by a constructor (e.g. a model's own `model.head` check)
    stays the one-line error it is instead of Hydra's wrapped traceback."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, DlcourseError):
            raise e.__cause__ from None
        raise


def build_datamodule(cfg: DictConfig):
    dm = instantiate_checked(cfg.data, batch_size=cfg.trainer.batch_size, eval_batch_size=cfg.trainer.eval_batch_size,
                     seed=cfg.seed, steps_per_call=cfg.trainer.get("steps_per_call", "auto"), _convert_="all")
    fold = OmegaConf.select(cfg, "cv.fold")  # cross-validation (dlcourse.cv): this fold's split
    if fold == "refit":
        dm.use_refit()
    elif fold is not None:
        dm.use_fold(fold, cfg.cv.folds)
    return dm


def build_optimizer(cfg: DictConfig):
    """The optimizer factory (call it with the parameters) and the L1 coefficient, which the task
    applies itself and torch's optimizers do not take."""
    opt_cfg = OmegaConf.to_container(cfg.optimizer, resolve=True)
    l1 = opt_cfg.pop("l1", 0.0)
    return instantiate(opt_cfg), l1


def build_task(cfg: DictConfig, dm) -> Task:
    loss = resolve_loss(dm.task, cfg.loss)
    if dm.task not in LOSSES[loss]:  # e.g. bce on a CSV that turned out to have 3 classes
        allowed = [n for n, tasks in LOSSES.items() if dm.task in tasks]
        raise ConfigError("loss", cfg.loss, f"does not fit this {dm.task} data; allowed: auto, " + ", ".join(allowed))
    model = instantiate_checked(cfg.model, input_shape=dm.input_shape, num_outputs=dm.num_outputs, _convert_="all")
    optimizer, l1 = build_optimizer(cfg)
    sched_cfg = OmegaConf.to_container(cfg.scheduler, resolve=True)
    scheduler, interval, monitor = None, "epoch", "val/loss"
    if sched_cfg.get("_target_") is not None:
        interval, monitor = sched_cfg.pop("interval", "epoch"), sched_cfg.pop("monitor", "val/loss")
        scheduler = instantiate(sched_cfg)
    return Task(
        model, task=dm.task, num_classes=dm.num_classes, loss=loss, optimizer=optimizer,
        scheduler=scheduler, scheduler_interval=interval, scheduler_monitor=monitor, l1=l1,
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
        config=OmegaConf.to_container(cfg, resolve=True),
        io={"input_shape": list(dm.input_shape), "num_outputs": dm.num_outputs, "task": dm.task,
            "class_names": dm.class_names, "feature_names": dm.feature_names,
            "last_outputs": getattr(dm, "last_outputs", None)},  # sequences: the key of val/mse_last
    )


def build_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
              if k not in OWN_TRAINER_KEYS and v is not None}
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not kwargs.get("enable_progress_bar", True):  # the flag wins over a configured bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg is not None]
    if not loggers:  # nothing to monitor the lr into (Lightning would refuse to start)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    # The summary is the `model_summary` callback (ours): with it removed (`~callbacks.model_summary`)
    # there is none, rather than Lightning's default one; with it, Lightning would announce skipping its own.
    kwargs.setdefault("enable_model_summary", False)
    kwargs.update(callbacks=callbacks, logger=loggers or False, default_root_dir=cfg.paths.output_dir)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def check_checkpoint(path: str, task: Task) -> None:
    """Fail with one line if the checkpoint is corrupt or belongs to another model."""
    state = read_checkpoint(path)["state_dict"]
    own = task.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape of {shapes[0]} is {tuple(state[shapes[0]].shape)}, the model has {tuple(own[shapes[0]].shape)}")
        raise CheckpointError(f"checkpoint {path} does not fit this model/config ({detail})")


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


def train(cfg: DictConfig) -> dict:
    """Run one experiment end to end; return the metrics.json content."""
    validate(cfg)
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.output_dir)
    dm = build_datamodule(cfg)
    dm.setup("fit")  # builds the data now: the model's input/output sizes come from it
    task = build_task(cfg, dm)
    ckpt_path = cfg.ckpt_path
    if ckpt_path is not None:
        check_checkpoint(ckpt_path, task)
        log.info("resuming from %s", ckpt_path)
    trainer = build_trainer(cfg)

    trainer.fit(task, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)

    has_best = trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path
    test_metrics = {}
    if cfg.test:
        trainer.test(task, datamodule=dm, ckpt_path="best" if has_best else None, weights_only=True, verbose=False)
        test_metrics = dict(task.test_results)
    val_metrics = best_epoch_metrics(task, trainer)
    early = trainer.early_stopping_callback
    metrics = {
        "experiment": cfg.name,
        "status": "completed",
        "run_dir": str(run_dir),
        "seed": cfg.seed,
        "task": dm.task,
        "epochs": trainer.current_epoch,
        "stopped_early": bool(early is not None and early.stopped_epoch > 0),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "params": count_parameters(task.model),
        "trainable_params": count_parameters(task.model, trainable_only=True),
        "best_checkpoint": str(trainer.checkpoint_callback.best_model_path) if has_best else None,
        "class_names": dm.class_names,
        "val": val_metrics,
        "test": test_metrics,
    }
    if "test/acc" in test_metrics:  # how precise one split's accuracy is: small test sets say little
        metrics.update(accuracy_interval("test", test_metrics["test/acc"], len(dm.splits["test"][1])))
    opt_key = cfg.optimized_metric
    split = opt_key.split("/")[0]
    metrics["optimized_metric"] = opt_key
    metrics["optimized_value"] = metrics.get(split, {}).get(opt_key)
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", metrics)
        for lg in trainer.loggers:  # the HParams view: one row per run, with its final metrics
            hp_metrics = {f"hp/{k.replace('/', '_')}": v for k, v in {**val_metrics, **test_metrics}.items()}
            lg.log_hyperparams(flat_hparams(cfg), hp_metrics)
            lg.finalize("success")
        print_summary(metrics, run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        if OmegaConf.select(cfg, "cv.folds"):
            from dlcourse.cv import cross_validate

            metrics = cross_validate(cfg)
        else:
            metrics = train(cfg)
    except DlcourseError as e:
        if multirun:  # recorded as this job's failure (status failed in the summary); the other jobs go on
            from dlcourse.sweep import record_failure

            record_failure(cfg, e)
            print(f"error: {e}", file=sys.stderr)
            return None
        fail(str(e), e.exit_code)
    value = metrics.get("optimized_value")
    return value if value is None or math.isfinite(value) else None


def main() -> None:
    sys.argv = [sys.argv[0], *preflight(sys.argv[1:])]
    hydra_main()


if __name__ == "__main__":
    main()
