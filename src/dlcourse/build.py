"""From a validated config to objects, one builder per config group: the data module, the task
(model, loss, optimizer, schedule) and the Trainer with its callbacks and loggers."""

from __future__ import annotations

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from dlcourse.callbacks.progress import NotebookProgressBar, in_notebook
from dlcourse.checkpoints import read_checkpoint
from dlcourse.errors import CheckpointError, ConfigError, DataError, DlcourseError
from dlcourse.machine import resolve_precision
from dlcourse.metrics import LOSSES, resolve_loss
from dlcourse.task import Task


def instantiate_checked(node, *args, **kwargs):
    """instantiate(), but a DlcourseError raised by a constructor (e.g. a model's own shape check)
    stays the one-line error it is instead of Hydra's wrapped traceback."""
    try:
        return instantiate(node, *args, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, DlcourseError):
            raise e.__cause__ from None
        raise


def check_device(cfg: DictConfig) -> None:
    """A GPU run on a machine without one: one line before anything is built."""
    import torch

    accelerator = cfg.trainer.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator", accelerator, "no GPU is visible here (torch.cuda.is_available() is "
                          "False); use trainer=cpu, or trainer=auto (a GPU when there is one)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator", accelerator, "no Apple GPU (MPS) here; use trainer=cpu")
    if isinstance(accelerator, str) and accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        from lightning.pytorch.accelerators import AcceleratorRegistry

        try:  # tpu, hpu, ...: Lightning knows the name; whether this machine has one is another matter
            available = bool(AcceleratorRegistry.get(accelerator).is_available())
        except Exception:  # its package is missing (torch_xla, ...): Lightning raises as it builds it
            available = False
        if not available:
            raise ConfigError("trainer.accelerator", accelerator, f"no {accelerator.upper()} is usable here (or the "
                              "package it needs is not installed); use trainer=cpu, or trainer=auto")


def build_datamodule(cfg: DictConfig):
    dm = instantiate_checked(cfg.data, seed=cfg.seed, _convert_="all")
    fold = OmegaConf.select(cfg, "cv.fold")  # cross-validation (dlcourse.cv): this fold's split
    if fold == "refit":
        dm.use_refit()
    elif fold is not None:
        dm.use_fold(fold, cfg.cv.folds)
    return dm


def build_optimizer(cfg: DictConfig):
    """The optimizer factory: call it with the parameters (the task does)."""
    return instantiate(cfg.optimizer, _convert_="all")


def build_model(cfg: DictConfig, input_shape, num_outputs: int, normalize: str | None = None):
    """The model of cfg.model; a series with `data.normalize=window` wraps it in its per-window scaling."""
    model = instantiate_checked(cfg.model, input_shape=tuple(input_shape), num_outputs=num_outputs, _convert_="all")
    if normalize == "window":
        from dlcourse.models.window_norm import WindowNorm

        model = WindowNorm(model)
    return model


def build_task(cfg: DictConfig, dm) -> Task:
    loss = resolve_loss(dm.task, cfg.task.loss)
    if dm.task not in LOSSES[loss]:  # e.g. bce on a CSV that turned out to have 3 classes
        allowed = [n for n, tasks in LOSSES.items() if dm.task in tasks]
        raise ConfigError("task.loss", cfg.task.loss, f"does not fit this {dm.task} data; allowed: auto, " + ", ".join(allowed))
    model = build_model(cfg, dm.input_shape, dm.num_outputs, getattr(dm, "normalize", None))
    scheduler = instantiate(cfg.scheduler, _convert_="all") if cfg.scheduler.get("_target_") else None
    make_task = instantiate(cfg.task, _partial_=True, _convert_="all")
    io = {**data_facts(dm), "class_weight": class_weights(cfg, dm)}  # the weights travel with the checkpoint
    return make_task(model=model, task=dm.task, num_classes=dm.num_classes, optimizer=build_optimizer(cfg),
                     scheduler=scheduler, io=io)


def class_weights(cfg: DictConfig, dm) -> list[float] | None:
    """task.class_weight as one weight per class: "balanced" from the training split's counts (scikit-learn's
    n_samples / (n_classes * count)); a list as given, in the order of the class names."""
    import torch

    given = OmegaConf.select(cfg, "task.class_weight")
    if given is None:
        return None
    if dm.task == "regression":
        raise ConfigError("task.class_weight", given, "only for classification (this data is regression); allowed: null")
    names = [str(n) for n in dm.class_names or range(dm.num_classes or 2)]
    if given != "balanced":
        if len(given) != len(names):
            raise ConfigError("task.class_weight", list(given), f"needs one weight per class, {len(names)} "
                              f"({', '.join(names)}), or balanced")
        return [float(w) for w in given]
    counts = torch.bincount(dm.splits["train"][1].long().flatten(), minlength=len(names)).tolist()
    if 0 in counts:
        raise DataError(f"task.class_weight=balanced: class {names[counts.index(0)]!r} has no training examples")
    return [sum(counts) / (len(names) * c) for c in counts]


def data_facts(dm) -> dict:
    """What rebuilding the model and reading its outputs needs, without the data: saved in checkpoints."""
    return {"input_shape": list(dm.input_shape), "num_outputs": dm.num_outputs, "task": dm.task,
            "class_names": dm.class_names, "feature_names": dm.feature_names,
            "last_outputs": getattr(dm, "last_outputs", None),  # sequences: the key of val/mse_last
            "normalize": getattr(dm, "normalize", None),  # series: window = the model scales each window
            "series_scale": getattr(dm, "series_scale", None),  # series: (mean, std) of the global standardisation
            "target_scale": getattr(dm, "target_scale", None)}  # regression targets trained in standard units


def trial_pruning(cfg: DictConfig):
    """The pruning callback of an Optuna trial (dlcourse.sweeps.pruning), or None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or OmegaConf.select(HydraConfig.get(), "sweeper.trial", default=None) is None:
        return None
    from dlcourse.sweeps.pruning import pruning_callback

    return pruning_callback(cfg)


def build_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # the flag wins over a configured bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    elif in_notebook():  # rich's live bar needs ipywidgets and is lost in a saved notebook: tqdm's there
        callbacks = [NotebookProgressBar() if isinstance(c, RichProgressBar) else c for c in callbacks]
    loggers = [instantiate(lg, _convert_="all") for lg in (cfg.get("logger") or {}).values() if lg is not None]
    if not loggers:  # nothing to monitor the lr into (Lightning would refuse to start)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    pruning = trial_pruning(cfg)
    if pruning is not None:  # a trial of an Optuna study with a pruner (hydra.sweeper.pruner)
        callbacks.append(pruning)
    make_trainer = instantiate(cfg.trainer, _partial_=True, _convert_="all")
    kwargs = {"callbacks": callbacks, "logger": loggers or False, "default_root_dir": cfg.paths.output_dir,
              "precision": resolve_precision(cfg.trainer.get("precision"), cfg.trainer.get("accelerator")), **overrides}
    return make_trainer(**kwargs)


def check_checkpoint(path: str, task: Task, max_epochs: int | None = None) -> dict:
    """Fail with one line if the checkpoint is corrupt, belongs to another model, or leaves nothing
    to train within `max_epochs`. Returns the epochs it has trained and its run's max_epochs."""
    ckpt = read_checkpoint(path)
    stored = (ckpt.get("dlcourse_config") or {}).get("trainer") or {}
    state = ckpt["state_dict"]
    own = task.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape of {shapes[0]} is {tuple(state[shapes[0]].shape)}, the model has {tuple(own[shapes[0]].shape)}")
        raise CheckpointError(f"checkpoint {path} does not fit this model/config ({detail})")
    done = ckpt["epoch"] + 1 if isinstance(ckpt.get("epoch"), int) else None
    if max_epochs is not None and done is not None and done >= max_epochs:
        raise ConfigError("trainer.max_epochs", max_epochs, f"nothing left to train: the checkpoint {path} has "
                          f"trained {done} epochs already; set trainer.max_epochs above {done} to train it further")
    return {"epochs": done, "max_epochs": stored.get("max_epochs")}
