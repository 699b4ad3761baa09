"""dlcourse from Python: the command line's runs and sweeps, called with its own override strings.

    result = dlcourse.run("experiment=iris_mlp", "seed=3")
    result.metrics["test"]["test/acc"], result.history, result.figures["confusion_matrix"]
    sweep = dlcourse.sweep("experiment=iris_mlp", "optimizer.lr=0.003,0.01,0.03")
    sweep.summary                               # the sweep's summary.csv as a DataFrame, best first

The composition, the validation, the run directory and everything written into it are those of
`dlcourse-train`; a bad input raises DlcourseError with the line the command line prints, before
anything is written. The caller's working directory, environment, logging set-up and warnings
filters are as they were once the call returns (Hydra and dlcourse change them during the run).
"""

from __future__ import annotations

from pathlib import Path

from dlcourse.isolation import isolated
from dlcourse.results import Result, SweepResult


def run(*overrides: str, config_dir: str | Path | list | None = None) -> Result | SweepResult:
    """`dlcourse-train OVERRIDES` in this process: the finished run as a Result (a config that asks
    for a sweep, e.g. `hparams_search=...`, gives a SweepResult as `dlcourse-train` would sweep)."""
    from dlcourse.app import execute
    from dlcourse.sweeps.launch import SweepOutcome

    with isolated():
        outcome = execute(_strings(overrides), config_dirs=_dirs(config_dir))
    return SweepResult.of(outcome) if isinstance(outcome, SweepOutcome) else Result(Path(outcome))


def sweep(*overrides: str, config_dir: str | Path | list | None = None) -> SweepResult:
    """`dlcourse-train -m OVERRIDES` in this process: every job runs (a failed one is listed with its
    error, as in summary.md), then the summary and each job's Result."""
    from dlcourse.app import execute

    with isolated():
        outcome = execute(_strings(overrides), multirun=True, config_dirs=_dirs(config_dir))
    return SweepResult.of(outcome)


def lr_find(*overrides: str, config_dir: str | Path | list | None = None) -> Result:
    """Lightning's learning-rate finder on an experiment, without training it: the Result's `lr_find`
    holds the suggestion (`result.lr_find["suggestion"]`), its figure is `result.figures["lr_find"]`.
    Train with it: `dlcourse.run(..., f"optimizer.lr={suggestion}")`, or in one go with
    `dlcourse.run(..., "lr_find.enabled=true")`."""
    return run(*overrides, "lr_find.enabled=true", "lr_find.train=false", config_dir=config_dir)


def _strings(overrides) -> list[str]:
    for o in overrides:
        if not isinstance(o, str):
            raise TypeError(f"overrides are strings as on the command line, e.g. 'optimizer.lr=0.01'; got {o!r}")
    return list(overrides)


def _dirs(config_dir) -> list[str]:
    if config_dir is None:
        return []
    return [str(d) for d in config_dir] if isinstance(config_dir, list | tuple) else [str(config_dir)]


__all__ = ["Result", "SweepResult", "lr_find", "run", "sweep"]
