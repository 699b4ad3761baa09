"""The rules that span config nodes: the loss fits the data, the model takes the data's inputs, a
sequence model's head matches the data's targets, monitored metrics exist, cross-validation and
optimizer settings agree. Called by dlcourse.config.validate; no torch."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from dlcourse.config.signatures import Signature, UnknownTarget, signature
from dlcourse.config.types import INPUT_KINDS, LOSSES
from dlcourse.errors import ConfigError


def value(node: DictConfig, key: str):
    try:
        return OmegaConf.to_container(node, resolve=True)[key] if isinstance(node, DictConfig) else node[key]
    except Exception:
        return None


def data_task(cfg: DictConfig, data_sig: Signature) -> str:
    """binary | multiclass | regression, as far as it is known before the data is read."""
    declared = cfg.data.get("task")  # a CSV's data.task: classification | regression
    if declared == "regression" or data_sig.attrs.get("family") == "regression":
        return "regression"
    return "classification" if declared == "classification" else data_sig.attrs.get("task", "multiclass")


def check_data_and_model(cfg: DictConfig, data_sig: Signature | None, model_sig: Signature | None) -> None:
    if data_sig is None:
        return
    kind = data_task(cfg, data_sig)
    loss = OmegaConf.select(cfg, "task.loss", default="auto")
    if loss != "auto" and loss in LOSSES and not fits_task(loss, kind):
        allowed = ["auto", *(n for n in LOSSES if fits_task(n, kind))]
        raise ConfigError("task.loss", loss, f"does not fit a {word(kind)} task; allowed: {', '.join(allowed)}")
    inputs, accepts = data_sig.attrs.get("inputs"), (model_sig.attrs.get("accepts") if model_sig else None)
    if inputs and accepts and inputs not in accepts:
        takes = " or ".join(INPUT_KINDS.get(k, k) for k in accepts)
        fitting = models_for(inputs)
        raise ConfigError.option("model", choice(cfg, "model"),
                                 f"takes {takes}, but data={choice(cfg, 'data')} gives {INPUT_KINDS[inputs]}; "
                                 f"models for {INPUT_KINDS[inputs]}: {', '.join(fitting)}")
    if "targets" in cfg.data and "head" in cfg.model and value(cfg.data, "targets") != cfg.model.head:
        raise ConfigError("data.targets", value(cfg.data, "targets"),
                          f"must match model.head={cfg.model.head} (leave data.targets out: it follows model.head)")
    fractions = [value(cfg.data, k) for k in ("val_fraction", "test_fraction") if k in cfg.data]
    if len(fractions) == 2 and all(isinstance(f, float | int) for f in fractions) and sum(fractions) >= 1:
        raise ConfigError("data.val_fraction", fractions[0],
                          f"val_fraction + test_fraction must be < 1 (is {sum(fractions):g})")


def choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for a group (`cnn`), or the class the node builds when that is not known."""
    from hydra.core.hydra_config import HydraConfig

    choices = OmegaConf.select(cfg, "hydra.runtime.choices")
    if choices is None and HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
    if choices is not None and choices.get(group):
        return str(choices.get(group))
    return str(cfg[group]._target_).rpartition(".")[2]


def models_for(inputs: str) -> list[str]:
    """The shipped model options that take this kind of input (read from conf/model/*.yaml)."""
    from dlcourse.compose import conf_dir

    found = []
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_")
        try:
            if target and inputs in signature(str(target)).attrs.get("accepts", ()):
                found.append(path.stem)
        except UnknownTarget:
            continue
    return found


def fits_task(loss: str, kind: str) -> bool:
    tasks = LOSSES[loss]
    return kind in tasks or (kind == "classification" and not set(tasks) & {"regression"})


def word(kind: str) -> str:
    return "classification" if kind in ("binary", "multiclass", "classification") else kind


def logged_metrics(kind: str, sequence: bool) -> list[str]:
    """What a run logs during training (train/, val/), by the kind of task: what can be monitored."""
    if kind == "regression":
        names = ["loss", "mse", "mae", "r2", *(["mse_last"] if sequence else [])]
        return [*(f"val/{n}" for n in names), "train/loss"]
    names = ["loss", "acc", "balanced_acc", "precision", "recall", "f1", "specificity", "auroc"]
    return [*(f"val/{n}" for n in names), "train/loss", "train/acc"]


def check_monitors(cfg: DictConfig, data_sig: Signature) -> None:
    """A monitored metric the run never logs would only fail once training has started."""
    during = logged_metrics(word(data_task(cfg, data_sig)), data_sig.attrs.get("inputs") == "sequence")
    watched = [(f"callbacks.{name}.monitor", node.get("monitor")) for name, node in (cfg.get("callbacks") or {}).items()
               if node is not None and node.get("monitor") is not None]
    if str(OmegaConf.select(cfg, "scheduler._target_", default="") or "").endswith("ReduceLROnPlateau"):
        watched.append(("task.scheduler_monitor", OmegaConf.select(cfg, "task.scheduler_monitor")))
    for key, metric in watched:
        if metric not in during:
            raise ConfigError(key, metric, f"not a metric this run logs; allowed: {', '.join(during)}")
    finals = [*during, *(m.replace("val/", "test/") for m in during if m.startswith("val/"))]
    if cfg.get("optimized_metric") not in finals:  # e.g. a classification experiment's val/acc on a regression table
        raise ConfigError("optimized_metric", cfg.get("optimized_metric"), f"not a metric this {word(data_task(cfg, data_sig))} "
                          f"run reports (set e.g. optimized_metric=val/loss optimized_mode=min); allowed: {', '.join(finals)}")
    trainer = cfg.get("trainer") or {}
    if trainer.get("limit_train_batches") == 0:
        raise ConfigError("trainer.limit_train_batches", 0, "trains nothing; null = every batch, or a share (0-1] "
                          "or a count >= 1")
    if trainer.get("limit_val_batches") == 0 and any(m.startswith("val/") for _, m in watched):
        raise ConfigError("trainer.limit_val_batches", 0, "validates nothing, but a callback or the schedule "
                          "watches a val/ metric; remove it (e.g. callbacks=all_epochs ~callbacks.model_checkpoint)")


def check_optimisation(cfg: DictConfig, optimizer_sig: Signature | None) -> None:
    opt = cfg.get("optimizer") or {}
    if optimizer_sig and opt.get("nesterov") and not opt.get("momentum"):
        raise ConfigError("optimizer.nesterov", True, "needs optimizer.momentum > 0")
    refit, folds = OmegaConf.select(cfg, "cv.refit"), OmegaConf.select(cfg, "cv.folds")
    if refit and not folds:
        raise ConfigError("cv.refit", refit, "needs cv.folds >= 2 (the folds choose the refit's epoch count)")
    scheduler = str(OmegaConf.select(cfg, "scheduler._target_", default="") or "")
    if refit and scheduler.endswith("ReduceLROnPlateau"):
        raise ConfigError("cv.refit", refit, "cannot be combined with scheduler=plateau "
                          "(the refit run has no validation loss to watch); use step, cosine or onecycle")
    if folds and cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path", cfg.ckpt_path, "cannot be combined with cv.folds (each fold trains from scratch)")

