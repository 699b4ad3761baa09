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
from dlcourse.config.renamed import move_renamed
from dlcourse.config.rules import check_data_and_model, check_monitors, check_optimisation
from dlcourse.config.signatures import Signature, UnknownTarget, signature
from dlcourse.config.targets import all_targets, allowed
from dlcourse.config.types import Interval, Seed
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
    "trainer.steps_per_call": "task.steps_per_call",
    "trainer.gradient_clip_val": "task.gradient_clip_val",
    "optimizer.l1": "task.l1",
    "scheduler.interval": "task.scheduler_interval",
    "scheduler.monitor": "task.scheduler_monitor",
    "loss": "task.loss",
}
ROOT = {
    "name": str,
    "seed": Seed,
    "ckpt_path": str | None,
    "test": bool,
    "optimized_metric": str,
    "optimized_mode": Literal["min", "max"],
    "threads": Literal["auto"] | Annotated[int, Interval(ge=1)],
}
SWEEP = {"max_jobs": Annotated[int, Interval(ge=1)], "continue": bool}
CV = {"folds": Annotated[int, Interval(ge=2)] | None, "refit": bool}
LR_FIND = {"enabled": bool, "apply": bool, "train": bool, "min_lr": Annotated[float, Interval(gt=0)],
           "max_lr": Annotated[float, Interval(gt=0)], "num_training": Annotated[int, Interval(ge=13)],
           "mode": Literal["exponential", "linear"]}


def plain(value):
    return OmegaConf.to_container(value, resolve=False) if isinstance(value, DictConfig | ListConfig) else value


def did_you_mean(key: str, candidates, show=str) -> str:
    """" (did you mean optimizer.lr?)" for a close candidate (a typo), else ""; `show=repr` quotes it."""
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {show(close[0])}?)" if close else ""


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
    known = {*ROOT, "sweep", "cv", "lr_find", "paths", "hydra", *ROLES, "callbacks", "logger", "experiment", "hparams_search"}
    for key in cfg:
        if key in MOVED:
            raise ConfigError(key, plain(cfg[key]), f"this key moved: set {MOVED[key]} instead")
        if key not in known:
            raise ConfigError(key, plain(cfg[key]), f"unknown key{did_you_mean(key, known)}")
    for key, tp in ROOT.items():
        if key in cfg and (why := problem(_value(cfg, key), tp)):
            raise ConfigError(key, plain(cfg[key]), why)
    for group, keys in (("sweep", SWEEP), ("cv", CV)):
        if group == "sweep" and group not in cfg:  # a checkpoint's config from before sweep.* existed
            continue
        for key, tp in keys.items():
            value = OmegaConf.select(cfg, f"{group}.{key}")
            if why := problem(value, tp):
                raise ConfigError(f"{group}.{key}", value, why)
    check_lr_find(cfg)


def check_lr_find(cfg: DictConfig) -> None:
    """`lr_find`: its keys, their types and ranges, and what the finder cannot be combined with."""
    node = cfg.get("lr_find")
    if node is None:
        return
    if not isinstance(node, DictConfig):
        raise ConfigError("lr_find", plain(node), "must be a mapping; turn the finder on with lr_find.enabled=true")
    for key in node:
        if key not in LR_FIND:
            raise ConfigError(f"lr_find.{key}", plain(node[key]), f"unknown key{did_you_mean(key, LR_FIND)}"
                              .replace("mean ", "mean lr_find.") + f"; accepted: {', '.join(LR_FIND)}")
    for key, tp in LR_FIND.items():
        if key in node and (why := problem(_value(node, key), tp)):
            more = " (Lightning's suggestion skips the first 10 steps and the last)" if key == "num_training" else ""
            raise ConfigError(f"lr_find.{key}", plain(node[key]), why + more)
    if node.get("min_lr", 0) >= node.get("max_lr", float("inf")):
        raise ConfigError("lr_find.min_lr", node.min_lr, f"must be below lr_find.max_lr ({node.max_lr:g})")
    if not node.get("enabled"):
        return
    if not node.get("train", True) and OmegaConf.select(cfg, "cv.folds"):
        raise ConfigError("lr_find.train", False, "cannot be combined with cv.folds (the folds must train); "
                          "find the rate without cv.folds first")
    trainer = cfg.get("trainer") or {}
    devices, strategy = _value(trainer, "devices") if "devices" in trainer else 1, str(trainer.get("strategy") or "")
    if any(s in strategy for s in ("ddp", "fsdp", "deepspeed")) or (isinstance(devices, int) and devices > 1) \
            or (isinstance(devices, list) and len(devices) > 1):
        raise ConfigError("lr_find.enabled", True, "the finder runs on one device: find the rate with trainer=gpu or "
                          "trainer=cpu, then set optimizer.lr for the distributed run")


def check_targets(cfg: DictConfig | dict, where: str = "") -> None:
    """Every `_target_`, however deep, names a class a config may build (config/targets.py)."""
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    tree = {k: v for k, v in plain.items() if k != "hydra"}
    for key, target in all_targets(tree):
        if not allowed(target):
            raise ConfigError(key, target, "not a class dlcourse may build: a target must come from the project's "
                              "configs, be a torch optimizer or schedule or a Lightning callback or logger, or be "
                              f"named in a YAML file of your own config dir (--config-dir){where}")


# Optional packages a target needs, and the extra that installs them.
NEEDS = {"MLFlowLogger": ("mlflow", "dlcourse[mlflow]")}


def check_installed(path: str, node: DictConfig) -> None:
    """A logger whose package is not installed: one line now, not a traceback once the run has started."""
    import importlib.util

    target = str(node.get("_target_", ""))
    for name, (module, extra) in NEEDS.items():
        if target.endswith(name) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{path}._target_", target, f"needs {module}, which is not installed: pip install '{extra}'")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad value. Imports no torch, builds nothing; the one change it
    makes is to move a renamed key to its new place (config/renamed.py), with a warning."""
    move_renamed(cfg)
    check_targets(cfg)
    check_root(cfg)
    sigs = {path: check_node(path, cfg[path], role) for path, role in ROLES.items() if cfg.get(path) is not None}
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                check_node(f"{group}.{name}", node)
                check_installed(f"{group}.{name}", node)
    check_data_and_model(cfg, sigs.get("data"), sigs.get("model"))
    check_optimisation(cfg, sigs.get("optimizer"))
    if sigs.get("data") is not None:
        check_monitors(cfg, sigs["data"])
