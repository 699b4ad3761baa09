"""Keys that moved and still work under their old spelling, with a warning that names the new key.

The old spelling can come from the command line (rewritten before Hydra composes: Hydra would refuse a
key its group no longer has), from a config file or from the config stored in an older checkpoint
(moved in the composed config, before validation). Keys that moved for good are validate.MOVED.
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

RENAMED = {"data.steps_per_call": "task.steps_per_call"}  # grouping is the training loop's (dlcourse.loop)
# dlcourse's own classes whose module was renamed: the config stored in an older checkpoint names the old one.
MOVED_TARGETS = {f"dlcourse.{old}.{cls}": f"dlcourse.{new}.{cls}" for old, new, cls in (
    ("tblog", "tensorboard_logger", "TensorBoardLogger"), ("mlflowlog", "mlflow_logger", "MLFlowLogger"),
    ("csvlog", "csv_logger", "CSVLogger"))}


def _warn(old: str, new: str, value) -> None:
    warnings.warn(f"{old} is deprecated and will be removed: set {new}={value} instead (used as that now)",
                  FutureWarning, stacklevel=3)


def renamed_overrides(overrides: list[str]) -> list[str]:
    """The overrides with every old key spelled as its new one (`+`/`++` dropped: the new key exists)."""
    out = []
    for override in overrides:
        key, sep, value = override.partition("=")
        bare = key.lstrip("+~")
        if bare in RENAMED:
            _warn(bare, RENAMED[bare], value)
            override = ("~" if key.startswith("~") else "") + RENAMED[bare] + sep + value
        out.append(override)
    return out


def move_renamed(cfg: DictConfig) -> None:
    """Move an old key's value to its new key in a composed config (a config file or an old checkpoint's),
    and name moved classes by their new module."""
    _move_targets(cfg)
    for old, new in RENAMED.items():
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(cfg, parent)
        if not isinstance(node, DictConfig) or leaf not in node:
            continue
        value = node[leaf]
        _warn(old, new, value)
        with read_write(cfg), open_dict(cfg):
            node.pop(leaf)
            if OmegaConf.select(cfg, new.rpartition(".")[0]) is not None:
                OmegaConf.update(cfg, new, value, force_add=True)


def _move_targets(cfg: DictConfig) -> None:
    def found(node, path: str):
        if isinstance(node, dict):
            if node.get("_target_") in MOVED_TARGETS:
                yield path
            for key, child in node.items():
                yield from found(child, f"{path}.{key}" if path else str(key))

    for path in list(found(OmegaConf.to_container(cfg, resolve=False), "")):  # not resolved: ${hydra:...}
        with read_write(cfg), open_dict(cfg):
            OmegaConf.update(cfg, f"{path}._target_", MOVED_TARGETS[OmegaConf.select(cfg, f"{path}._target_")])
