"""Composing the config: where conf/ lives, the search path for a user's own config dirs, and the
one composition a run gets. Needs Hydra and OmegaConf only (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from dlcourse.config.renamed import renamed_overrides

CONFIG_NAME = "train"
# A user's own config folders (experiments, models, ...), besides --config-dir: os.pathsep-separated.
USER_DIRS_ENV = "DLCOURSE_CONFIG_DIRS"


def _add(a, b) -> int:
    return int(a) + int(b)


# The job directories of a continued sweep are numbered after its earlier ones (dlcourse.sweeps.sweepdir):
# `${dlcourse_add:${hydra.job.num},N}`, resolved in whichever process runs the job (all import this module).
if not OmegaConf.has_resolver("dlcourse_add"):
    OmegaConf.register_new_resolver("dlcourse_add", _add)


def conf_dir() -> Path:
    """conf/ inside the installed package (a wheel), or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"dlcourse's configs are missing: no {CONFIG_NAME}.yaml in {here / 'conf'}")


def user_dirs(extra: list[str] | tuple = ()) -> list[Path]:
    dirs = [*extra, *filter(None, os.environ.get(USER_DIRS_ENV, "").split(os.pathsep))]
    return [Path(d).expanduser().absolute() for d in dirs]


def start(config_dirs: list[Path] | tuple = ()) -> None:
    """Initialise Hydra on dlcourse's configs; `config_dirs` are searched first (a user's own options)."""
    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(conf_dir()), job_name=CONFIG_NAME, version_base="1.3")
    global _search_path
    _search_path = [f"file://{d}" for d in config_dirs]


_search_path: list[str] = []


def search_dirs() -> list[Path]:
    """The user's config folders this process was started with (--config-dir)."""
    return [Path(p.removeprefix("file://")) for p in _search_path]


def stop() -> None:
    global _search_path
    _search_path = []
    GlobalHydra.instance().clear()


def with_search_path(overrides: list[str]) -> list[str]:
    if not _search_path or any(o.startswith("hydra.searchpath=") for o in overrides):
        return list(overrides)
    return [*overrides, f"hydra.searchpath=[{','.join(_search_path)}]"]


def compose(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The run's config, with its `hydra` node. HydraConfig is set, so `${hydra:...}` resolves (the
    run name from the chosen options); `output_dir` fixes the run directory (tests, scripts)."""
    if not GlobalHydra.instance().is_initialized():
        start(user_dirs())
    overrides = renamed_overrides(overrides)  # an old key's spelling, with a warning
    cfg = hydra_compose(CONFIG_NAME, overrides=with_search_path(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.name = str(cfg.name).replace("/", "-")  # a name, not a path: resolved now, from the choices
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
    return cfg


def job_config(cfg: DictConfig) -> DictConfig:
    """The config without the `hydra` node, as a job sees it."""
    job = cfg.copy()
    with open_dict(job):
        job.pop("hydra", None)
    return job
