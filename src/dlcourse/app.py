"""`dlcourse-train`: one composition, one validation, then the run.

    dlcourse-train experiment=iris_mlp optimizer.lr=0.05
    dlcourse-train -m experiment=iris_mlp optimizer.lr=0.003,0.01,0.03      # a sweep
    dlcourse-train --cfg job data=csv data.path=t.csv data.target=label     # print the config, run nothing

The config is composed once and validated (no torch import: a typo is answered in a fraction of a
second). A run then builds its data and model, and only then does Hydra create the run directory,
so a bad value, a missing file or a model that does not fit the data leaves nothing behind. Every
problem the user can fix ends with one line `error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from functools import partial
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlcourse.compose import USER_DIRS_ENV, compose, job_config, start, stop, user_dirs
from dlcourse.config.validate import validate
from dlcourse.errors import ConfigError, DlcourseError, fail
from dlcourse.hints import explain

# Flags whose whole handling is Hydra's own (they print information about Hydra, not run anything).
DELEGATED = ("--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--config-path", "-cp",
             "--config-name", "-cn", "--experimental-rerun")
MAX_CHECKED_JOBS = 1000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcourse-train", add_help=False,
                                description="Train a configured experiment (see --help).")
    p.add_argument("overrides", nargs="*")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-m", "--multirun", action="store_true")
    p.add_argument("-c", "--cfg", choices=["job", "hydra", "all"])
    p.add_argument("-p", "--package")
    p.add_argument("--resolve", action="store_true")
    p.add_argument("-cd", "--config-dir", action="append", default=[])
    return p


def expand_home(override: str) -> str:
    """`key=~/data` (or quoted) -> the home directory spelled out; Hydra's grammar has no `~/` values."""
    key, sep, value = override.partition("=")
    if not sep or key.startswith("~"):
        return override
    quote = value[:1] if value[:1] in "'\"" else ""
    bare = value[len(quote):]
    if bare == "~" or bare.startswith("~/"):
        return f"{key}={quote}{os.path.expanduser(bare)}{value[len(quote) + len(bare):]}"
    return override


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a.partition("=")[0] in DELEGATED for a in argv):
        return hydra_main(argv)
    args = parser().parse_args(argv)
    if args.help:
        from dlcourse.help import help_text

        print(help_text())
        return
    if "" not in sys.path and os.getcwd() not in sys.path:  # modules in the folder run from, as `python -m` finds them
        sys.path.insert(0, os.getcwd())
    dirs = user_dirs(args.config_dir)
    for folder in dirs:
        if not folder.is_dir():
            fail(f"--config-dir={folder} is invalid: no such folder (it holds your configs as conf/ does: "
                 "experiment/, model/, ...)")
    saved = os.environ.get(USER_DIRS_ENV)
    if dirs:  # DDP ranks, parallel and cluster jobs start new processes: they need the same search path
        os.environ[USER_DIRS_ENV] = os.pathsep.join(map(str, dirs))
    overrides = [expand_home(o) for o in args.overrides]
    try:
        start(dirs)
        if args.cfg:  # of a sweep: its first job
            show(job_overrides(overrides)[0] if args.multirun else overrides, args.cfg, args.package, args.resolve)
        elif args.multirun:
            sweep(overrides)
        else:
            run(overrides)
    except DlcourseError as e:
        fail(str(e), e.exit_code)
    except HydraException as e:
        fail(explain(e, overrides, lambda key: compose([o for o in overrides if not _sets(o, key)])))
    except OmegaConfBaseException as e:
        fail(str(e).strip().splitlines()[0])
    finally:  # main() may run again in this process (tests): no search path left behind
        stop()
        if saved is None:
            os.environ.pop(USER_DIRS_ENV, None)
        else:
            os.environ[USER_DIRS_ENV] = saved


def _sets(override: str, key: str) -> bool:
    return override.lstrip("+~").partition("=")[0] == key


def show(overrides: list[str], part: str, package: str | None, resolve: bool) -> None:
    cfg = compose(overrides)
    validate(job_config(cfg))
    node = cfg if part == "all" else (cfg.hydra if part == "hydra" else job_config(cfg))
    if package:
        node = OmegaConf.select(node, package)
    text = OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, DictConfig) else f"{node}\n"
    print(text, end="")


def run(overrides: list[str]) -> None:
    """One run: compose, validate, build data and model, then Hydra makes the run directory and trains."""
    from hydra.types import RunMode

    cfg = compose(overrides)
    if cfg.hydra.mode == RunMode.MULTIRUN:  # e.g. hparams_search=...: a sweep without -m
        return sweep(overrides)
    if cfg.ckpt_path is not None:
        from dlcourse.checkpoints import read_checkpoint
        from dlcourse.resume import resume_overrides

        overrides = resume_overrides(overrides, cfg)
        cfg = compose(overrides)
        read_checkpoint(cfg.ckpt_path)
    validate(cfg)
    prepared = prepare_run(cfg)  # torch from here on: the run will happen
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    from dlcourse.internals import set_ddp_rank_command
    from dlcourse.sweep.jobs import ddp_rank_command

    set_ddp_rank_command(ddp_rank_command)
    context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=_NoCallbacks())
    result = run_job(task_function=partial(_run_job, prepared), config=cfg, job_dir_key="hydra.run.dir",
                     job_subdir_key=None, hydra_context=context)
    _ = result.return_value  # re-raises an unexpected error of the job


class _NoCallbacks:
    """A single run has no Hydra callbacks to call (sweeps use conf/hydra/default.yaml's)."""

    def on_job_start(self, **kwargs) -> None: ...

    def on_job_end(self, **kwargs) -> None: ...


def prepare_run(cfg: DictConfig):
    """Build the data and the task (fold 1 of a cross-validation): every data error is raised here."""
    from dlcourse.train import prepare

    if OmegaConf.select(cfg, "cv.folds"):
        from dlcourse.cv import fold_config

        return prepare(fold_config(job_config(cfg), 0, Path(".")))
    return prepare(job_config(cfg))


def _run_job(prepared, cfg: DictConfig):
    try:
        return finish(prepared, cfg)
    except DlcourseError as e:
        fail(str(e), e.exit_code)


def finish(prepared, cfg: DictConfig) -> float | None:
    """Train (or cross-validate) a prepared run in the job's directory; the optimised value."""
    if OmegaConf.select(cfg, "cv.folds"):
        from dlcourse.cv import cross_validate

        metrics = cross_validate(cfg, first=prepared)
    else:
        from dlcourse.train import fit

        metrics = fit(prepared, cfg)
    value = metrics.get("optimized_value")
    return value if value is None or math.isfinite(value) else None


# -- sweeps ----------------------------------------------------------------------------------------
def sweep(overrides: list[str]) -> None:
    """Check every job of a grid first (one line for the first bad one), then let Hydra's sweeper and
    launcher run them; each job validates its own config again (an Optuna trial's values are new)."""
    check_sweep(overrides)
    from dlcourse.compose import with_search_path
    from dlcourse.internals import hydra_app

    hydra_app().multirun(config_name="train", task_function=sweep_job, overrides=with_search_path(overrides))


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """The grid's jobs (discrete sweeps only: ranges and choices; intervals belong to Optuna)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = []
    for o, text in zip(parsed, overrides, strict=True):
        if o.is_sweep_override() and o.is_discrete_sweep():
            key = text.partition("=")[0]
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        elif not o.is_sweep_override():
            axes.append([text])
    return [list(job) for job in itertools.islice(itertools.product(*axes), MAX_CHECKED_JOBS)]


def check_sweep(overrides: list[str]) -> None:
    for n, job in enumerate(job_overrides(overrides)):
        try:
            validate(compose(job))
        except ConfigError as e:
            raise ConfigError(e.key, e.value, f"{e.allowed} (in job {n}: {' '.join(job)})") from None


def sweep_job(cfg: DictConfig) -> float | None:
    """One job of a sweep. A failure is recorded in its directory (the summary lists it) and the
    other jobs go on."""
    from dlcourse.sweep.jobs import record_failure

    try:
        validate(cfg)
        return finish(prepare_run(cfg), cfg)
    except DlcourseError as e:
        record_failure(cfg, e)
        print(f"error: {e}", file=sys.stderr)
        return None


def hydra_main(argv: list[str]) -> None:
    """Hydra's own command line (--info, --hydra-help, shell completion), on dlcourse's configs."""
    import hydra

    from dlcourse.compose import conf_dir

    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(sweep_job)()


if __name__ == "__main__":
    main()
