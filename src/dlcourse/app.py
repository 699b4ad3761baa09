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
import os
import sys
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from dlcourse.cli_args import check_config_flags
from dlcourse.compose import USER_DIRS_ENV, compose, job_config, start, stop, user_dirs
from dlcourse.config.renamed import renamed_overrides
from dlcourse.config.validate import check_targets, validate
from dlcourse.config_hints import explain
from dlcourse.errors import ConfigError, DlcourseError, SweepFailedError, fail
from dlcourse.isolation import restored_logging
from dlcourse.lean import console_setup
from dlcourse.rundir import run_lock
from dlcourse.runs import finish, prepare_run, sweep_job
from dlcourse.sweeps.launch import SweepOutcome, job_overrides, sweep

# Flags whose whole handling is Hydra's own (they print information about Hydra, not run anything).
DELEGATED = ("--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--config-path", "-cp",
             "--config-name", "-cn", "--experimental-rerun")


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
    """The console script: the library's `execute`, with a problem printed as one line (exit 2, or 1
    when a sweep's jobs or a run's training failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a.partition("=")[0] in DELEGATED for a in argv):
        try:
            check_config_flags(argv)
        except DlcourseError as e:
            fail(str(e), e.exit_code)
        return hydra_main(argv)
    args = parser().parse_intermixed_args(argv)  # `dlcourse-train experiment=x -m lr=...`: -m anywhere
    if args.help:
        from dlcourse.help import help_text

        print(help_text())
        return
    if "" not in sys.path and os.getcwd() not in sys.path:  # modules in the folder run from, as `python -m` finds them
        sys.path.insert(0, os.getcwd())
    console_setup()
    try:
        if args.cfg:  # of a sweep: its first job
            print(show(args.overrides, args.cfg, args.package, args.resolve, args.multirun, args.config_dir), end="")
            return
        outcome = execute(args.overrides, multirun=args.multirun, config_dirs=args.config_dir)
        if isinstance(outcome, SweepOutcome) and outcome.failed_line:
            raise SweepFailedError(outcome.failed_line)
    except DlcourseError as e:
        fail(str(e), e.exit_code)


def execute(overrides: list[str] | tuple[str, ...], multirun: bool = False, config_dirs=()):
    """What `dlcourse-train [-m] OVERRIDES` does, raising DlcourseError (one line) on a bad input: a run's
    directory (Path), or a sweep's SweepOutcome."""
    with composing(overrides, config_dirs) as overrides:
        return sweep(overrides) if multirun else run(overrides)


@contextmanager
def composing(overrides, config_dirs=()):
    """Hydra started on dlcourse's configs and the user's config dirs for the block, which gets the
    overrides as the command line spells them (`~/` expanded); Hydra's and OmegaConf's errors become a
    one-line ConfigError. Afterwards no search path is left behind: this process may compose again (a
    notebook, tests)."""
    dirs = user_dirs(list(config_dirs))
    for folder in dirs:
        if not folder.is_dir():
            raise ConfigError(message=f"--config-dir={folder} is invalid: no such folder (it holds your configs as "
                                      "conf/ does: experiment/, model/, ...)")
    saved = os.environ.get(USER_DIRS_ENV)
    if dirs:  # DDP ranks, parallel and cluster jobs start new processes: they need the same search path
        os.environ[USER_DIRS_ENV] = os.pathsep.join(map(str, dirs))
    overrides = renamed_overrides([expand_home(str(o)) for o in overrides])  # before Hydra sees them: sweeps too
    try:
        start(dirs)
        yield overrides
    except HydraException as e:
        raise ConfigError(message=explain(e, overrides, lambda key: compose([o for o in overrides if not _sets(o, key)]))) from None
    except OmegaConfBaseException as e:
        raise ConfigError(message=str(e).strip().splitlines()[0]) from None
    finally:
        stop()
        if saved is None:
            os.environ.pop(USER_DIRS_ENV, None)
        else:
            os.environ[USER_DIRS_ENV] = saved


def _sets(override: str, key: str) -> bool:
    return override.lstrip("+~").partition("=")[0] == key


def show(overrides: list[str], part: str = "job", package: str | None = None, resolve: bool = False,
         multirun: bool = False, config_dirs=()) -> str:
    """`--cfg job|hydra|all` (of a sweep: its first job): the validated config as YAML text."""
    with composing(overrides, config_dirs) as overrides:
        cfg = compose(job_overrides(overrides)[0] if multirun else overrides)
        validate(job_config(cfg))
        node = cfg if part == "all" else (cfg.hydra if part == "hydra" else job_config(cfg))
        if package:
            node = OmegaConf.select(node, package)
        return OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, DictConfig) else f"{node}\n"


def run(overrides: list[str]):
    """One run: compose, validate, build data and model, then Hydra makes the run directory and trains.
    Returns the run directory (a SweepOutcome where the config asks for a sweep, e.g. hparams_search=)."""
    from hydra.types import RunMode

    cfg = compose(overrides)
    if cfg.hydra.mode == RunMode.MULTIRUN:  # e.g. hparams_search=...: a sweep without -m
        return sweep(overrides)
    if cfg.ckpt_path is not None:
        from dlcourse.checkpoints import read_checkpoint
        from dlcourse.resume import resume_overrides
        from dlcourse.trust import check_checkpoint_names, check_resumed_config

        overrides = resume_overrides(overrides, cfg)
        cfg = compose(overrides)
        check_resumed_config(cfg, pin_run_dir(cfg))  # the hydra section too: its log handlers open files
        ckpt = read_checkpoint(cfg.ckpt_path)
        check_checkpoint_names(ckpt, cfg.ckpt_path)
        stored = ckpt.get("dlcourse_config")
        if isinstance(stored, dict):  # never built here, but a checkpoint naming foreign code is not ours to trust
            check_targets(stored, where=f"; in the config stored in {cfg.ckpt_path}")
    validate(cfg)
    prepared = prepare_run(cfg)  # torch from here on: the run will happen
    run_dir = pin_run_dir(cfg)
    resuming = cfg.ckpt_path is not None and Path(cfg.ckpt_path).resolve().parent.parent == run_dir
    with run_lock(run_dir, resuming):
        start_job(prepared, cfg)
    return run_dir


def pin_run_dir(cfg: DictConfig) -> Path:
    """The run directory, resolved once: its name holds the time, which must not move on; `..` and links
    resolved, so that every check sees the directory that will be written."""
    run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser().resolve()
    with read_write(cfg.hydra.run), open_dict(cfg.hydra.run):
        cfg.hydra.run.dir = str(run_dir)
    return run_dir


def start_job(prepared, cfg: DictConfig) -> None:
    """Hydra's job: the run directory's .hydra/ and train.log, the working directory, then the run."""
    from dlcourse.internals import run_hydra_job, set_ddp_rank_command
    from dlcourse.sweeps.jobs import ddp_rank_command

    set_ddp_rank_command(ddp_rank_command)
    with restored_logging():  # the run's log handlers end with it (a notebook, tests: this process goes on)
        result = run_hydra_job(partial(_run_job, prepared), cfg, "hydra.run.dir", _NoCallbacks())
    value = result.return_value  # re-raises an unexpected error of the job
    if isinstance(value, DlcourseError):
        raise value


class _NoCallbacks:
    """A single run has no Hydra callbacks to call (sweeps use conf/hydra/default.yaml's)."""

    def on_job_start(self, **kwargs) -> None: ...

    def on_job_end(self, **kwargs) -> None: ...


def _run_job(prepared, cfg: DictConfig):
    """Hydra's task function. A DlcourseError is handed back as the job's value, so that it reaches the
    caller as itself (Hydra would announce an exception it catches as a crash of the job)."""
    try:
        return finish(prepared, cfg)
    except DlcourseError as e:
        return e


def hydra_main(argv: list[str]) -> None:
    """Hydra's own command line (--info, --hydra-help, shell completion), on dlcourse's configs."""
    import hydra

    from dlcourse.compose import conf_dir

    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(sweep_job)()


if __name__ == "__main__":
    main()
