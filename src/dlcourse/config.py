"""Config validation: runs on the composed config before any data is built or any file written.

Every check names the key, the bad value and what is allowed, in one line (a ConfigError).
Checks are by key name wherever it appears (e.g. any `dropout`, any `hidden`), plus a check of
each `_target_`'s constructor signature, so a new model or dataset needs no code here.
"""

from __future__ import annotations

import importlib
import inspect
import numbers

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlcourse.errors import ConfigError
from dlcourse.metrics import LOSSES, loss_fits_family
from dlcourse.models.layers import ACTIVATIONS, INITS
from dlcourse.models.rnn import HEADS  # sequence heads = the data's target forms

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64")
# Keys a group config may carry that are not constructor arguments (the task consumes them).
TASK_KEYS = {"optimizer": {"l1"}, "scheduler": {"interval", "monitor"}}
# Arguments the framework fills in; the user must not set them in the group's YAML.
FILLED_IN = {"data": {"batch_size", "eval_batch_size", "seed", "steps_per_call"}, "model": {"input_shape", "num_outputs"},
             "optimizer": {"params"}, "scheduler": {"optimizer"}}


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def number(key: str, v, *, gt=None, ge=None, lt=None, le=None, integer=False, optional=False) -> None:
    if v is None and optional:
        return
    kind = "an integer" if integer else "a number"
    if not (_is_int(v) if integer else _is_number(v)):
        raise ConfigError(key, v, f"must be {kind}")
    bounds = [f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "",
              f"< {lt}" if lt is not None else "", f"<= {le}" if le is not None else ""]
    ok = (gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt) and (le is None or v <= le)
    if not ok:
        raise ConfigError(key, v, f"must be {kind} " + " and ".join(b for b in bounds if b))


def choice(key: str, v, allowed) -> None:
    if v not in allowed:
        raise ConfigError(key, v, "allowed: " + ", ".join(map(str, allowed)))


def import_target(key: str, target: str):
    module_name, _, attr = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{key}._target_", target, f"must name an importable class ({e})") from None


def check_signature(group: str, node: DictConfig) -> type | None:
    """Unknown keys in a group (typos such as `model.hiden`) fail here, listing the accepted ones."""
    if node.get("_target_") is None:
        return None
    cls = import_target(group, node._target_)
    params = inspect.signature(cls).parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    accepted = set(params) - FILLED_IN.get(group, set())
    if takes_kwargs:  # e.g. a data module forwarding **kwargs to its base class
        for base in inspect.getmro(cls)[1:]:
            if base.__init__ is not object.__init__:
                accepted |= set(inspect.signature(base.__init__).parameters) - {"self", "kwargs"}
        accepted -= FILLED_IN.get(group, set())
    for key in node:
        if key.startswith("_") or key in TASK_KEYS.get(group, ()):
            continue
        if key in FILLED_IN.get(group, ()):
            raise ConfigError(f"{group}.{key}", node[key], "is filled in by dlcourse; remove it")
        if key not in accepted and not (takes_kwargs and group not in ("data", "model")):
            # A typo, or a key an experiment set for the option it chose (experiment=gaussian_mlp sets SGD's
            # momentum; optimizer=adam takes none): say how to drop it.
            raise ConfigError(f"{group}.{key}", node[key], "unknown key; accepted: " + ", ".join(sorted(accepted))
                              + f" (to drop a key set by the experiment for another option: ~{group}.{key})")
    return cls


def check_model_values(node: DictConfig, prefix: str = "model") -> None:
    """Checks by key name, so they cover every model (and nested blocks) without per-model code."""
    for key, v in node.items():
        name = f"{prefix}.{key}"
        if isinstance(v, DictConfig):
            check_model_values(v, name)
        elif key == "hidden":
            if not isinstance(v, ListConfig | list) or len(v) == 0:
                raise ConfigError(name, OmegaConf.to_object(v) if isinstance(v, ListConfig) else v,
                                  "must be a non-empty list of positive integers, e.g. [100]")
            for i, h in enumerate(v):
                number(f"{name}[{i}]", h, ge=1, integer=True)
        elif key == "dropout":
            number(name, v, ge=0, lt=1)
        elif key == "activation" and v is not None:  # None: the model's own default (e.g. lenet5's variant)
            choice(name, v, ACTIVATIONS)
        elif key == "init":
            choice(name, v, INITS)
        elif key == "head":
            choice(name, v, HEADS)


def missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """`???` values, found without resolving interpolations (some need a running Hydra app)."""
    found = []
    for key in node:
        name = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            found.append(name)
        elif OmegaConf.is_interpolation(node, key):
            continue
        elif isinstance(node[key], DictConfig):
            found += missing_keys(node[key], f"{name}.")
    return found


def task_family(data_node: DictConfig, data_cls) -> str:
    task = data_node.get("task") or getattr(data_cls, "task", "multiclass")
    return "regression" if task == "regression" else "classification"


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad value. Does not build anything."""
    for key in missing_keys(cfg):
        raise ConfigError(key, "???", f"is required: set it, e.g. {key}=...")
    number("seed", cfg.get("seed"), ge=0, integer=True)

    choice("loss", cfg.loss, ("auto", *LOSSES))
    data_cls = check_signature("data", cfg.data)
    check_signature("model", cfg.model)
    check_model_values(cfg.model)
    if data_cls is not None:
        family = task_family(cfg.data, data_cls)
        if not loss_fits_family(cfg.loss, family):
            fitting = [name for name in LOSSES if loss_fits_family(name, family)]
            raise ConfigError("loss", cfg.loss, f"does not fit a {family} task; allowed: auto, " + ", ".join(fitting))
    for key in ("val_fraction", "test_fraction"):
        if key in cfg.data:
            number(f"data.{key}", cfg.data[key], gt=0, lt=1)
    if "val_fraction" in cfg.data and "test_fraction" in cfg.data:
        total = cfg.data.val_fraction + cfg.data.test_fraction
        if total >= 1:
            raise ConfigError("data.val_fraction", cfg.data.val_fraction, f"val_fraction + test_fraction must be < 1 (is {total:g})")
    for key in ("n_train", "n_val", "n_test", "n_series", "n_steps", "horizon", "stride"):
        if key in cfg.data:
            number(f"data.{key}", cfg.data[key], ge=1, integer=True)
    # Sequences: the data's target form follows the model's head (conf/data: targets: ${model.head}).
    if "targets" in cfg.data:
        choice("data.targets", cfg.data.targets, HEADS)
        if "head" in cfg.model and cfg.model.head != cfg.data.targets:
            raise ConfigError("data.targets", cfg.data.targets,
                              f"must match model.head={cfg.model.head} (leave data.targets out: it follows model.head)")

    opt = cfg.optimizer
    check_signature("optimizer", opt)
    number("optimizer.lr", opt.get("lr"), gt=0)
    number("optimizer.weight_decay", opt.get("weight_decay", 0.0), ge=0)
    number("optimizer.l1", opt.get("l1", 0.0), ge=0)
    if "momentum" in opt:
        number("optimizer.momentum", opt.momentum, ge=0, lt=1)
    if opt.get("nesterov") and not opt.get("momentum"):
        raise ConfigError("optimizer.nesterov", True, "needs optimizer.momentum > 0")

    sched = cfg.scheduler
    if sched.get("_target_") is not None:
        check_signature("scheduler", sched)
        choice("scheduler.interval", sched.get("interval", "epoch"), ("epoch", "step"))

    tr = cfg.trainer
    bs = tr.batch_size
    if bs != "full":
        if not _is_int(bs) or bs < 1:
            raise ConfigError("trainer.batch_size", bs, 'must be an integer >= 1 or "full" (full-batch gradient descent)')
    number("trainer.eval_batch_size", tr.get("eval_batch_size"), ge=1, integer=True, optional=True)
    spc = tr.get("steps_per_call", "auto")
    if spc != "auto" and (not _is_int(spc) or spc < 1):
        raise ConfigError("trainer.steps_per_call", spc, 'must be an integer >= 1 or "auto"')
    number("trainer.max_epochs", tr.max_epochs, ge=1, integer=True)
    choice("trainer.accelerator", tr.accelerator, ACCELERATORS)
    choice("trainer.precision", str(tr.precision), PRECISIONS)
    number("trainer.gradient_clip_val", tr.get("gradient_clip_val"), gt=0, optional=True)
    if tr.devices != "auto":
        number("trainer.devices", tr.devices, ge=1, integer=True)
    number("trainer.num_nodes", tr.get("num_nodes", 1), ge=1, integer=True)

    es = cfg.get("callbacks", {}).get("early_stopping") if cfg.get("callbacks") else None
    if es is not None:
        number("callbacks.early_stopping.patience", es.get("patience"), ge=1, integer=True)
    choice("optimized_mode", cfg.get("optimized_mode", "min"), ("min", "max"))
    number("cv.folds", OmegaConf.select(cfg, "cv.folds"), ge=2, integer=True, optional=True)
    refit = OmegaConf.select(cfg, "cv.refit", default=False)
    choice("cv.refit", refit, (True, False))
    if refit and not OmegaConf.select(cfg, "cv.folds"):
        raise ConfigError("cv.refit", refit, "needs cv.folds >= 2 (the folds choose the refit's epoch count)")
    if refit and str(cfg.scheduler.get("_target_", "")).endswith("ReduceLROnPlateau"):
        raise ConfigError("cv.refit", refit, "cannot be combined with scheduler=plateau "
                          "(the refit run has no validation loss to watch); use step, cosine or onecycle")
