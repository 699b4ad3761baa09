"""Which classes a config may name with `_target_`.

A config can come from a file someone else wrote (a checkpoint's stored config, a run directory's
overrides): it is data, and must not be able to run code. So a `_target_` is accepted only if it is
a torch or Lightning class the project knows (config/recorded.json: optimizers, schedules, callbacks,
loggers, the Trainer), one of Lightning's loggers (LIGHTNING_LOGGER: `+logger.wandb._target_=
lightning.pytorch.loggers.WandbLogger`), or named in a config file: the shipped conf/ (the models, data
modules, task, callbacks and loggers) or a user's own config dir (--config-dir, $DLCOURSE_CONFIG_DIRS).
Nothing is imported to decide.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

TARGET_LINE = re.compile(r"^\s*_target_:\s*['\"]?([\w.]+)", re.M)
# Lightning's logger classes, from `lightning.pytorch.loggers` or the module that defines them.
LIGHTNING_LOGGER = re.compile(r"(lightning\.pytorch|pytorch_lightning)\.loggers(\.\w+)?\."
                              r"(CSVLogger|CometLogger|MLFlowLogger|NeptuneLogger|TensorBoardLogger|WandbLogger)")


@cache
def declared_in(folder: Path) -> frozenset[str]:
    """Every `_target_` written in the YAML files below a config folder."""
    found: set[str] = set()
    for path in folder.rglob("*.yaml"):
        try:
            found |= set(TARGET_LINE.findall(path.read_text()))
        except OSError:
            continue
    return frozenset(found)


def config_folders() -> list[Path]:
    from dlcourse.compose import conf_dir, search_dirs, user_dirs

    return [conf_dir(), *search_dirs(), *user_dirs()]


def allowed(target: str) -> bool:
    from dlcourse.config.signatures import recorded_targets

    target = str(target)
    if target in recorded_targets() or LIGHTNING_LOGGER.fullmatch(target):
        return True
    return any(target in declared_in(folder) for folder in config_folders() if folder.is_dir())


def all_targets(node, path: str = "") -> list[tuple[str, str]]:
    """(key, target) of every `_target_` in a plain config tree, however deep (Hydra instantiates
    nested ones too)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{path}.{key}" if path else str(key)
            if key == "_target_" and value is not None:
                found.append((full, str(value)))
            else:
                found += all_targets(value, full)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += all_targets(value, f"{path}[{i}]")
    return found
