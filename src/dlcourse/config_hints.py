"""Hydra's composition errors as one line that names the key, the value, what is allowed and the
closest match: `lr=0.1` -> optimizer.lr, `optimiser=adam` -> optimizer, `model=lstm` -> model=rnn
model.cell=lstm. Used by dlcourse.app; needs no torch."""

from __future__ import annotations

import difflib
import re

from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from dlcourse.config.validate import MOVED

# Options people type that are another option plus a value.
ALIASES = {
    "model=lstm": "model=rnn model.cell=lstm",
    "model=gru": "model=rnn model.cell=gru",
    "model=lenet": "model=lenet5",
    "model=resnet18": "model=resnet model.arch=resnet18",
    "model=resnet34": "model=resnet model.arch=resnet34",
    "model=resnet50": "model=resnet model.arch=resnet50",
    "model=transformer": None,
    "optimizer=momentum": "optimizer=sgd optimizer.momentum=0.9",
    "scheduler=onecyclelr": "scheduler=onecycle",
    "data=fashion": "data=fashion_mnist",
    "data=fashionmnist": "data=fashion_mnist",
    "data=images": "data=image_folder",
}


def override_value(overrides: list[str], key: str) -> str:
    for o in overrides:
        k, sep, v = o.lstrip("+~").partition("=")
        if sep and k.lstrip("+") == key:
            return v
    return "?"


def keys_of(node, prefix: str = "") -> list[str]:
    """Every dotted key of a config (values not resolved)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    out = []
    for k, child in node.items():
        out.append(f"{prefix}{k}")
        if isinstance(child, dict):
            out += keys_of(child, f"{prefix}{k}.")
    return out


def groups() -> list[str]:
    loader = GlobalHydra.instance().config_loader()
    return sorted(g for g in loader.list_groups("") if g != "hydra")


def options(group: str) -> list[str]:
    return list(GlobalHydra.instance().config_loader().get_group_options(group))


def close(word: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key(key: str, value: str, cfg: DictConfig | None) -> str:
    if key in MOVED:
        return f"{key}={value} is invalid: this key moved; use {MOVED[key]}={value}"
    parent, _, leaf = key.rpartition(".")
    known = [k for k in keys_of(cfg) if not k.startswith("hydra")] if cfg is not None else []
    if not parent and key in groups():
        return f"{key}={value} is not an option of '{key}'; available: {', '.join(options(key))}"
    if parent and not any(k == parent for k in known):
        guess = close(parent, [k for k in known if "." not in k] + groups())
        hint = f" (did you mean {guess}{key[len(parent):]}?)" if guess else ""
        return f"{key}={value} is invalid: there is no '{parent}'{hint}; top-level keys: {', '.join(_top(known))}"
    siblings = [k[len(parent) + 1:] for k in known if k.startswith(f"{parent}.") and "." not in k[len(parent) + 1:]] \
        if parent else _top(known)
    same_leaf = [k for k in known if k.endswith(f".{leaf}")] if not parent else []
    guess = same_leaf[0] if len(same_leaf) == 1 else close(key, known) or close(leaf, groups())
    hint = f" (did you mean {guess}{'=' + value if guess in groups() else ''}?)" if guess else ""
    where = f"'{parent}' takes" if parent else "top-level keys"
    return f"{key}={value} is invalid: no such key{hint}; {where}: {', '.join(siblings)}"


def _top(known: list[str]) -> list[str]:
    return sorted(k for k in known if "." not in k)


def missing_option(e: MissingConfigException) -> str:
    match = re.search(r"Could not find '([^']+)'", str(e))
    path = match.group(1) if match else (e.missing_cfg_file or "?")
    group, _, option = path.rpartition("/")
    if not group:
        return str(e).strip().splitlines()[0]
    avail = list(e.options or options(group))
    alias = ALIASES.get(f"{group}={option}")
    guess = alias or (f"{group}={g}" if (g := close(option, avail)) else None)
    hint = f" (did you mean {guess}?)" if guess else ""
    return f"{group}={option} is not an option of '{group}'{hint}; available: {', '.join(avail)}"


def explain(e: Exception, overrides: list[str], compose_without) -> str:
    """One line for a Hydra error. `compose_without(override)` composes the config without the failing
    override, to list the keys that do exist (only called on this error path)."""
    text = str(e).strip()
    if isinstance(e, MissingConfigException):
        return missing_option(e)
    if isinstance(e, OverrideParseException):
        reason = text.splitlines()[0]
        return (f"{e.override!r} is not a valid override ({reason}); write key=value, a list as key=[1,2], "
                "and quote values that hold spaces, commas or brackets: key='a,b'")
    match = re.match(r"Could not override '([^']+)'", text)
    if match:
        key = match.group(1)
        value = override_value(overrides, key)
        try:
            cfg = compose_without(key)
        except Exception:
            cfg = None
        return unknown_key(key, value, cfg)
    match = re.match(r"Ambiguous value for argument '([^']+)'", text)
    if match:
        return (f"{match.group(1)} is ambiguous: a list is key=[a,b], a string with a comma is key='a,b', "
                "a sweep over the values needs -m (--multirun)")
    return text.splitlines()[0]
