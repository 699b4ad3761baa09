"""Files from others are data: what a run directory holds (its saved overrides, its links) and the
config a resume composes from it are checked against what dlcourse itself would have written, before
anything is built or written.

- A saved override may choose an option only by its name in the shipped or the user's config dirs
  (`logger=../../x` would load a YAML file from anywhere, Hydra settings included), and may not set
  Hydra, `paths.*`, a `_target_` or an output location; a checkpoint `filename` stays relative.
- A run directory's symbolic links stay inside it (a `checkpoints/` linked into another run would
  rewrite that run's checkpoints; a linked `train.log` would append to any file).
- The composed config of a resume, the `hydra` section included: every target allowed, every log
  handler a logging class writing inside the run directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlcourse.errors import CheckpointError

OVERRIDE = re.compile(r"(?P<prefix>[+~]{0,2})(?P<key>[A-Za-z_][\w-]*(?:[./][\w-]+)*)(?:@[\w.]*)?(?:=(?P<value>.*))?",
                      re.S)
OPTION = re.compile(r"[\w-]+(?:/[\w-]+)*")  # a name, or a name in a subfolder (experiment/iris_mlp): no dots
# The last part of a key that says where something is written: never from a file of someone else's.
OUTPUT_KEYS = {"_target_", "_args_", "_partial_", "dirpath", "save_dir", "artifact_location", "run_dir", "log_dir",
               "default_root_dir", "root_dir", "output_dir"}
NOT_DLCOURSE = "this is not a run directory dlcourse wrote"


def _config_folders() -> list[Path]:
    from dlcourse.config.targets import config_folders

    return [f for f in config_folders() if f.is_dir()]


def _options(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        return [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
    return [value.strip("'\"")]


def _why_not(override: str) -> str | None:
    """Why a saved override is refused; None if dlcourse could have written it."""
    match = OVERRIDE.fullmatch(override)
    if match is None:
        return "it is not an override (key=value) of dlcourse's configs"
    key, value = match["key"], match["value"] or ""
    parts = re.split(r"[./]", key)
    if parts[0] in ("hydra", "paths"):
        return "a run's saved overrides may not set Hydra or paths"
    if parts[-1] in OUTPUT_KEYS:
        return "a run's saved overrides may not set targets or output locations"
    if parts[-1] == "tracking_uri" and not re.match(r"https?://", value.strip("'\"")):
        return "a run's saved overrides may name an MLflow server (http://...), not a file"
    if parts[-1] == "filename" and _leaves(re.sub(r"\{[^}]*\}", "x", value.strip("'\""))):
        return "a checkpoint file name must stay inside the run directory"
    folders = _config_folders()
    if any((folder / key).is_dir() for folder in folders):  # a config group: its value names options
        for option in _options(value):
            if option in ("null", ""):
                continue
            if not OPTION.fullmatch(option) or not any((f / key / f"{option}.yaml").is_file() for f in folders):
                return f"{option!r} is not an option of {key} in dlcourse's or your config dirs"
    return None


def _leaves(name: str) -> bool:
    """A file name that is absolute, starts at home or climbs out (`..`) of the folder it is joined to."""
    return name.startswith(("/", "~", "\\")) or ".." in re.split(r"[/\\]", name) or bool(re.match(r"[A-Za-z]:", name))


def check_saved_overrides(saved: list[str], path: Path) -> None:
    for override in saved:
        if (why := _why_not(override)) is not None:
            raise CheckpointError(f"{path} holds {override!r}: {why}; {NOT_DLCOURSE}")


def check_links(run_dir: Path) -> None:
    """Every symbolic link below `run_dir` points inside it (links are not followed while looking)."""
    root = run_dir.resolve()
    for folder, dirs, files in os.walk(run_dir):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise CheckpointError(f"{path} is a link out of its run directory (to {os.readlink(path)}): a run "
                                      f"directory's files stay inside it; {NOT_DLCOURSE}")


# Hydra's own plugins (the launcher and sweeper of every config) besides the targets a job may build.
HYDRA_OWN = ("hydra._internal.core_plugins.", "hydra_plugins.")
# What a logging config may name: handlers that write to a stream or to a file (checked below), formatters.
LOG_CLASSES = {"logging.StreamHandler", "logging.FileHandler", "logging.NullHandler", "logging.Formatter",
               "logging.Filter", "logging.handlers.RotatingFileHandler", "logging.handlers.TimedRotatingFileHandler",
               "logging.handlers.WatchedFileHandler", "rich.logging.RichHandler", "colorlog.ColoredFormatter"}


def check_resumed_config(cfg: DictConfig, run_dir: Path) -> None:
    """The composed config of a resume as a whole, resolved as the run will see it: every target one
    dlcourse may build, the run's log files and outputs inside `run_dir`."""
    from dlcourse.config.targets import all_targets, allowed

    whole = _resolved(cfg, run_dir)
    for key, target in all_targets(whole):
        if not (allowed(target) or target.startswith(HYDRA_OWN)):
            raise CheckpointError(f"{key}={target!r} is not a class dlcourse may build; in the config of this resume")
    hydra = whole.get("hydra") or {}
    for section in ("job_logging", "hydra_logging"):
        _check_logging(hydra.get(section), f"hydra.{section}", run_dir)
    _check_inside(hydra.get("output_subdir"), "hydra.output_subdir", run_dir)
    for group in ("callbacks", "logger"):
        for name, node in (whole.get(group) or {}).items():
            if isinstance(node, dict):
                for key in ("dirpath", "save_dir"):
                    _check_inside(node.get(key), f"{group}.{name}.{key}", run_dir)
                if isinstance(node.get("filename"), str) and _leaves(re.sub(r"\{[^}]*\}", "x", node["filename"])):
                    raise CheckpointError(f"{group}.{name}.filename={node['filename']!r} leaves the run directory "
                                          f"{run_dir}; in the config of this resume")


def _check_logging(node, where: str, run_dir: Path) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_logging(item, f"{where}[{i}]", run_dir)
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        full = f"{where}.{key}"
        if key in ("class", "()") and str(value) not in LOG_CLASSES:
            raise CheckpointError(f"{full}={value!r} is not a logging class dlcourse allows in a resume "
                                  f"({', '.join(sorted(LOG_CLASSES))})")
        if key in ("filename", "path"):
            _check_inside(value, full, run_dir)
        _check_logging(value, full, run_dir)


def _check_inside(value, key: str, run_dir: Path) -> None:
    if value is None:
        return
    path = Path(str(value)).expanduser()
    if not (run_dir / path).resolve().is_relative_to(run_dir.resolve()):  # `run_dir / absolute` is the absolute one
        raise CheckpointError(f"{key}={str(value)!r} is outside the run directory {run_dir}; a resume writes only there")


def _resolved(cfg: DictConfig, run_dir: Path) -> dict:
    """The config as a plain tree, interpolations resolved as in the run (`${hydra:runtime.output_dir}` is
    the run directory); a node that cannot be resolved yet is checked as written."""
    import copy

    from hydra.core.hydra_config import HydraConfig

    whole = copy.deepcopy(cfg)
    with read_write(whole.hydra.runtime), open_dict(whole.hydra.runtime):
        whole.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(whole)
    try:
        return _plain(whole)
    finally:
        HydraConfig.instance().set_config(cfg)


def _plain(node):
    """Resolved where it resolves, key by key; a value that cannot be resolved yet (a required value,
    Hydra's help text) as written."""
    try:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except Exception:
        if not OmegaConf.is_config(node):
            return node
    raw = OmegaConf.to_container(node, resolve=False)
    keys = range(len(node)) if OmegaConf.is_list(node) else list(node.keys())
    out = [None] * len(node) if OmegaConf.is_list(node) else {}
    for key in keys:
        try:
            out[key] = _plain(node[key])
        except Exception:
            out[key] = raw[key]
    return out


def check_checkpoint_names(ckpt: dict, path: Path) -> None:
    """A checkpoint's ModelCheckpoint state names the files a resumed run deletes when better ones come
    (best_k_models) and links last.ckpt to: each must be a file directly in that state's own `dirpath`
    (which Lightning restores only when it is the resumed run's checkpoint folder). Lightning 2.x
    itself deletes only inside its dirpath; the names are checked here so that no release's or
    callback's handling of them has to be trusted."""
    for state in (ckpt.get("callbacks") or {}).values() if isinstance(ckpt.get("callbacks"), dict) else []:
        if not isinstance(state, dict) or "dirpath" not in state:
            continue
        folder = os.path.normpath(str(state["dirpath"]))
        names = [state.get(k) for k in ("best_model_path", "kth_best_model_path", "last_model_path")]
        for name in [*names, *(state.get("best_k_models") or {})]:
            if name not in (None, "") and (not isinstance(name, str) or os.path.dirname(os.path.normpath(name)) != folder):
                raise CheckpointError(f"{path} names the checkpoint file {name!r} outside its folder {folder}; a "
                                      "resume deletes and links only its own checkpoints")
