"""`dlcourse-train --help`: what can be chosen and how, read from the configs (no torch import)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from hydra.core.global_hydra import GlobalHydra

from dlcourse.compose import conf_dir, search_dirs, start, user_dirs

GROUPS = {
    "experiment": "a course experiment: a recipe of the options below",
    "data": "the data module (dataset, splits, preprocessing, batch size)",
    "model": "the network",
    "optimizer": "the optimizer",
    "scheduler": "the learning-rate schedule",
    "task": "loss, L1 penalty, gradient clipping",
    "trainer": "device and Trainer settings",
    "callbacks": "early stopping, checkpoints, figures, ...",
    "logger": "where the curves go",
    "hparams_search": "an Optuna search",
}
USEFUL = """\
most useful overrides:
  trainer.max_epochs=20      train longer or shorter          data.batch_size=64    or full (full batch)
  optimizer.lr=0.01          the learning rate                 seed=1                another random start
  trainer=gpu                the device (cpu | gpu | auto)     cv.folds=5            k-fold cross-validation
  ~callbacks.early_stopping  train every epoch                 logger=none           no TensorBoard files
  ckpt_path=last             resume this run's last.ckpt       test=false            do not touch the test split"""
EXAMPLES = """\
examples:
  dlcourse-train experiment=iris_mlp                         a course experiment
  dlcourse-train experiment=iris_mlp optimizer=sgd           ... with another option (its own defaults)
  dlcourse-train experiment=iris_mlp optimizer.lr=0.05       ... with another value
  dlcourse-train -m experiment=iris_mlp optimizer.lr=0.01,0.1  a sweep: one job per value
  dlcourse-train data=csv data.path=t.csv data.target=label  your own table, neutral defaults (Adam, batches of 32)
  dlcourse-train --cfg job experiment=mnist_cnn              print the composed config, run nothing
  dlcourse-train --config-dir my_conf experiment=my_exp      your own configs (my_conf/experiment/my_exp.yaml)"""
WIDTH = 110


def option_files(group: str) -> dict[str, Path]:
    """option name -> its YAML file, over every config directory (a user's --config-dir wins)."""
    found: dict[str, Path] = {}
    for d in reversed(search_dirs() or [conf_dir()]):
        for path in sorted((Path(d) / group).glob("*.yaml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def first_comment(path: Path) -> str:
    """The file's first comment line (after `# @package`): what the option is, in one line."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            return text.lstrip("# ").strip()
        if text and not text.startswith("#"):
            break
    return ""


def defaults(path: Path) -> list[str]:
    """`key=default` for every key of the option (nested keys dotted), without Hydra's plumbing."""
    data = yaml.safe_load(path.read_text()) or {}
    out: list[str] = []

    def walk(prefix: str, node) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if str(key) in ("_target_", "_partial_", "defaults"):
                continue
            if isinstance(value, dict) and value:
                walk(f"{name}.", value)
            else:
                out.append(f"{name}={'null' if value is None else json.dumps(value) if isinstance(value, str) and ' ' in value else value}")

    if isinstance(data, dict):
        walk("", data)
    return out


def base_option(path: Path, group: str) -> str | None:
    """The option a variant starts from (`defaults: [/group/base@_here_]` or `[base]`), or None."""
    data = yaml.safe_load(path.read_text()) or {}
    for entry in data.get("defaults", []) if isinstance(data, dict) else []:
        if isinstance(entry, str) and entry.startswith(f"/{group}/") and entry.endswith("@_here_"):
            return entry.removeprefix(f"/{group}/").removesuffix("@_here_")
        if isinstance(entry, str) and entry != "_self_" and not set(entry) & set("/@:"):
            return entry
    return None


def one_line(name: str, text: str, indent: int, width: int = 22) -> str:
    """`name  first sentence of its description`, cut to the line's width."""
    text = re.split(r"\.\s+(?=[A-Z(])", text)[0].rstrip(".")
    room = WIDTH - indent - max(width, len(name)) - 1
    if len(text) > room:
        text = text[: room - 3].rsplit(" ", 1)[0] + " ..."
    return f"{' ' * indent}{name:<{width}} {text}".rstrip()


def wrapped(items: list[str], indent: int) -> list[str]:
    lines, line = [], ""
    for item in items:
        if line and indent + len(line) + len(item) + 1 > WIDTH:
            lines.append(" " * indent + line)
            line = ""
        line = f"{line} {item}" if line else item
    return [*lines, " " * indent + line] if line else lines


def help_text() -> str:
    if not GlobalHydra.instance().is_initialized():
        start(user_dirs())
    lines = ["usage: dlcourse-train [-m] [--cfg job|hydra|all] [--config-dir DIR] [key=value ...]", "",
             "Train a configured experiment: an experiment is a recipe of options; any value changes with",
             "key=value (optimizer.lr=0.01), any option with group=option (optimizer=sgd).", "",
             "experiments (experiment=NAME):"]
    for name, path in option_files("experiment").items():
        lines.append(one_line(name, first_comment(path), 2))
    lines += ["", "groups and their options (group=option), each with its keys and defaults (group.key=value):"]
    for group, what in GROUPS.items():
        if group == "experiment":
            continue
        lines.append(f"  {group}: {what}")
        for name, path in option_files(group).items():
            lines.append(one_line(name, first_comment(path), 4, 14))
            base = base_option(path, group)
            lines += wrapped([*([f"{base} with:"] if base else []), *defaults(path)], 6)
    lines += ["", USEFUL, "", "flags:",
              "  -m, --multirun      run every combination of comma-separated values (a sweep)",
              "  -c, --cfg job       print the composed config (hydra | all: also Hydra's part); --resolve",
              "  -cd, --config-dir   a folder of your own configs, searched with dlcourse's (repeatable)",
              "  --hydra-help        Hydra's own flags", "", EXAMPLES]
    return "\n".join(lines)
