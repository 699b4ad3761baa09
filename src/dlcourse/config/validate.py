"""Validate a composed config once, before anything is built or written, without importing torch.

Every node with a `_target_` is checked against that class's constructor (`signatures`): unknown
keys (with the closest accepted one), values of the wrong type or range, required arguments. Then
the few rules that span nodes: the loss fits the data, the model takes the data's inputs, a sequence
model's head matches the data's targets, cross-validation settings. The first problem found is a
ConfigError: one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlcourse.config.check import problem
from dlcourse.config.signatures import Signature, UnknownTarget, signature
from dlcourse.config.types import DEFAULT_LOSS, INPUT_KINDS, LOSSES, Interval, NonNegativeInt
from dlcourse.errors import ConfigError

HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


@dataclass(frozen=True)
class Role:
    """What the builder of a node passes itself (`provided`: a config must not set it) and fills in
    when the config leaves it null (`completed`)."""

    provided: frozenset = frozenset()
    completed: frozenset = frozenset()


ROLES = {  # in the order they are checked: data.targets follows model.head, so the model comes first
    "model": Role(frozenset({"input_shape", "num_outputs"})),
    "data": Role(frozenset({"seed"})),
    "optimizer": Role(frozenset({"params"})),
    "scheduler": Role(frozenset({"optimizer"}), frozenset({"max_lr", "total_steps", "T_max"})),
    "task": Role(frozenset({"model", "task", "num_classes", "optimizer", "scheduler", "config", "io"})),
    "trainer": Role(frozenset({"callbacks", "logger", "default_root_dir"})),
}
# Keys that moved in the config redesign: the old spelling names the new one.
MOVED = {
    "trainer.batch_size": "data.batch_size",
    "trainer.eval_batch_size": "data.eval_batch_size",
    "trainer.steps_per_call": "data.steps_per_call",
    "trainer.gradient_clip_val": "task.gradient_clip_val",
    "optimizer.l1": "task.l1",
    "scheduler.interval": "task.scheduler_interval",
    "scheduler.monitor": "task.scheduler_monitor",
    "loss": "task.loss",
}
ROOT = {
    "name": str,
    "seed": NonNegativeInt,
    "ckpt_path": str | None,
    "test": bool,
    "optimized_metric": str,
    "optimized_mode": Literal["min", "max"],
}
CV = {"folds": Annotated[int, Interval(ge=2)] | None, "refit": bool}


def plain(value):
    return OmegaConf.to_container(value, resolve=False) if isinstance(value, DictConfig | ListConfig) else value


def did_you_mean(key: str, candidates) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _value(node: DictConfig, key: str):
    """The resolved value, or the marker `SKIP` when it needs a running Hydra app (a run directory)."""
    try:
        return plain(node[key])
    except Exception:  # e.g. ${hydra:runtime.output_dir} before the run exists: a path, not checked here
        return SKIP


SKIP = object()


def check_node(path: str, node: DictConfig, role: Role = Role()) -> Signature | None:
    """Check one `_target_` node against its class; return the class's signature (None: no target)."""
    target = node.get("_target_")
    if target is None:
        return None
    try:
        sig = signature(str(target))
    except UnknownTarget as e:
        raise ConfigError(f"{path}._target_", target, f"must name an importable class ({e})") from None
    raw = OmegaConf.to_container(node, resolve=False)
    for key in node:
        if key in HYDRA_KEYS:
            continue
        full = f"{path}.{key}"
        value = _value(node, key)
        shown = raw[key] if value is SKIP else value
        if full in MOVED:
            raise ConfigError(full, shown, f"this key moved: set {MOVED[full]} instead")
        if key in role.provided:
            raise ConfigError(full, shown, "is filled in by dlcourse; remove it")
        if key not in sig.params:
            if sig.open:
                continue
            accepted = sorted(set(sig.params) - role.provided)
            raise ConfigError(full, shown, f"unknown key{did_you_mean(key, accepted).replace('mean ', f'mean {path}.')}"
                                           f"; accepted: {', '.join(accepted)}")
        if value is not SKIP and (why := problem(value, sig.params[key].type)):
            raise ConfigError(full, value, why)
    for name, param in sig.params.items():
        if param.required and name not in node and name not in role.provided | role.completed:
            raise ConfigError(f"{path}.{name}", "???", f"is required by {target}: set it, e.g. {path}.{name}=...")
    return sig


def missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """`???` values, found without resolving interpolations (some need a running Hydra app)."""
    found = []
    for key in node:
        name = f"{prefix}{key}"
        if name == "hydra":  # Hydra's own settings: Hydra checks them
            continue
        if OmegaConf.is_missing(node, key):
            found.append(name)
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            found += missing_keys(node[key], f"{name}.")
    return found


def check_root(cfg: DictConfig) -> None:
    for key in missing_keys(cfg):
        raise ConfigError(key, "???", f"is required: set it, e.g. {key}=...")
    known = {*ROOT, "cv", "paths", "hydra", *ROLES, "callbacks", "logger", "experiment", "hparams_search"}
    for key in cfg:
        if key in MOVED:
            raise ConfigError(key, plain(cfg[key]), f"this key moved: set {MOVED[key]} instead")
        if key not in known:
            raise ConfigError(key, plain(cfg[key]), f"unknown key{did_you_mean(key, known)}")
    for key, tp in ROOT.items():
        if key in cfg and (why := problem(_value(cfg, key), tp)):
            raise ConfigError(key, plain(cfg[key]), why)
    for key, tp in CV.items():
        value = OmegaConf.select(cfg, f"cv.{key}")
        if why := problem(value, tp):
            raise ConfigError(f"cv.{key}", value, why)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad value. Imports no torch, builds nothing."""
    check_root(cfg)
    sigs = {path: check_node(path, cfg[path], role) for path, role in ROLES.items() if cfg.get(path) is not None}
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                check_node(f"{group}.{name}", node)
    check_data_and_model(cfg, sigs.get("data"), sigs.get("model"))
    check_optimisation(cfg, sigs.get("optimizer"))


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
    if "targets" in cfg.data and "head" in cfg.model and _value(cfg.data, "targets") != cfg.model.head:
        raise ConfigError("data.targets", _value(cfg.data, "targets"),
                          f"must match model.head={cfg.model.head} (leave data.targets out: it follows model.head)")
    fractions = [_value(cfg.data, k) for k in ("val_fraction", "test_fraction") if k in cfg.data]
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


__all__ = ["validate", "check_node", "MOVED", "ROLES", "DEFAULT_LOSS"]
