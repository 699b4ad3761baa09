"""dlcourse's Optuna sweeper (`hydra/sweeper=optuna`, conf/hydra/sweeper/optuna.yaml), on Optuna's
ask/tell API. Hydra finds it as hydra_plugins.dlcourse_optuna.OptunaSweeper; the work is done here.

The search space is `hydra.sweeper.params` (and sweep overrides on the command line) in Hydra's
syntax: `interval(a, b)`, `tag(log, interval(a, b))`, `choice(...)`, `range(...)`. Every batch of
`n_jobs` trials is asked from the study, launched as jobs of the sweep (their own directories and
metrics.json), and told back: completed with the job's value, failed, or pruned. Running the same
command again continues the study: the sampler sees every earlier trial, its seed is shifted by the
number of trials already there (reproducible, but not the same proposals again), and a parameter
set that a trial of the study already has is not proposed again while the space has others.

Optuna is imported when a sweep starts, not when Hydra scans its plugins."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
# Trials asked in this process, by (study name, trial number): a job that runs in this process (the
# basic launcher) reports its epochs to the very trial (also with an in-memory storage).
ACTIVE_TRIALS: dict[tuple[str, int], Any] = {}
PRUNERS = {"median": "optuna.pruners.MedianPruner", "hyperband": "optuna.pruners.HyperbandPruner",
           "none": "optuna.pruners.NopPruner"}


def distribution(override) -> Any:
    """The Optuna distribution of a sweep override, or its value as a string for a plain one."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():  # range(start, stop, step): stop excluded, as in Python
        step = value.step or 1
        if all(isinstance(v, int) for v in (value.start, value.stop, step)):
            return IntDistribution(int(value.start), int(value.stop) - int(step), step=int(step))
        n = int((value.stop - value.start) / step - 1e-9)
        return FloatDistribution(value.start, value.start + n * step, step=step)
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: not a search space the Optuna sweeper knows")


def search_space(arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(distributions, fixed values) of `key=value` overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import BaseDistribution

    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(arguments):
        value = distribution(override)
        key = override.get_key_element()
        (space if isinstance(value, BaseDistribution) else fixed)[key] = value
        (fixed if isinstance(value, BaseDistribution) else space).pop(key, None)
    return space, fixed


def build_pruner(spec: Any):
    """`median`, `hyperband`, `none` (or null) or a `{_target_: ...}` config: an Optuna pruner."""
    from hydra.utils import instantiate

    if spec is None or isinstance(spec, str):
        name = str(spec or "none").lower()
        if name not in PRUNERS:
            from dlcourse.errors import ConfigError

            raise ConfigError("hydra.sweeper.pruner", spec, f"one of {', '.join(PRUNERS)} or a {{_target_: ...}} config")
        return instantiate({"_target_": PRUNERS[name]})
    return instantiate(spec)


def pruning_on(spec: Any) -> bool:
    return spec is not None and not (isinstance(spec, str) and spec.lower() == "none")


def direction_name(direction: Any) -> str:
    d = str(direction).lower()
    return {"min": "minimize", "max": "maximize"}.get(d, d)


class OptunaSearch(Sweeper):
    """Hydra sweeper: asks a study for trials, runs them as the sweep's jobs, tells it the results."""

    def __init__(self, sampler: Any = None, direction: Any = "minimize", storage: str | None = None,
                 study_name: str | None = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failure_rate: float = 0.0, pruner: Any = "none", params: Any = None,
                 trial: int | None = None) -> None:
        self.sampler_cfg, self.direction, self.storage = sampler, direction_name(direction), storage
        self.study_name, self.n_trials, self.n_jobs = study_name, int(n_trials), max(1, int(n_jobs))
        self.max_failure_rate, self.pruner_cfg, self.params = float(max_failure_rate), pruner, params
        self.config = self.launcher = self.hydra_context = None
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.job_idx, self.config, self.hydra_context = 0, config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def _check(self) -> None:
        from dlcourse.errors import ConfigError

        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ConfigError("hydra.sweeper.max_failure_rate", self.max_failure_rate, "between 0 and 1")
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError("hydra.sweeper.direction", self.direction, "minimize or maximize")
        launcher = str(OmegaConf.select(self.config, "hydra.launcher._target_", default=""))
        if pruning_on(self.pruner_cfg) and self.storage is None and "BasicLauncher" not in launcher:
            raise ConfigError("hydra.sweeper.storage", None, "a storage that the trials share (e.g. sqlite:///"
                              "outputs/optuna.db): with a pruner, trials in other processes report their epochs "
                              "to the study, and an in-memory study cannot be shared across processes")

    def _sampler(self, n_before: int, space: dict):
        """The configured sampler, its seed shifted by the trials already in the study."""
        from hydra.utils import instantiate

        from dlcourse.sweeps.norepeat import NoRepeatSampler

        cfg = OmegaConf.create(OmegaConf.to_container(self.sampler_cfg, resolve=True)) if self.sampler_cfg else \
            OmegaConf.create({"_target_": "optuna.samplers.TPESampler"})
        seed = cfg.get("seed")
        if seed is not None:
            cfg.seed = int(seed) + n_before
        return NoRepeatSampler(instantiate(cfg), space, seed=None if seed is None else int(seed) + n_before)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        self._check()
        params = [f"{k}={v}" for k, v in (self.params or {}).items()] + list(arguments)
        space, fixed = search_space(params)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, direction=self.direction,
                                    pruner=build_pruner(self.pruner_cfg), load_if_exists=True)
        n_before = len(study.trials)
        study.sampler = self._sampler(n_before, space)
        log.info("Optuna study %s (%s, %d trials before this run), storage %s, sampler %s, pruner %s",
                 study.study_name, self.direction, n_before, self.storage, type(study.sampler.base).__name__,
                 type(study.pruner).__name__)
        to_go = self.n_trials
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask(fixed_distributions=space) for _ in range(batch)]
            self._run_batch(study, trials, fixed)
            to_go -= batch

    def _run_batch(self, study, trials, fixed: dict[str, str]) -> None:
        overrides = []
        for trial in trials:
            ACTIVE_TRIALS[(study.study_name, trial.number)] = trial
            overrides.append((*(f"{k}={v}" for k, v in {**trial.params, **fixed}.items()),
                              f"hydra.sweeper.trial={trial.number}"))
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        finally:
            for trial in trials:
                ACTIVE_TRIALS.pop((study.study_name, trial.number), None)
        self.job_idx += len(returns)
        failures = sum(not self._tell(study, trial, ret) for trial, ret in zip(trials, returns, strict=True))
        if returns and failures / len(returns) > self.max_failure_rate:
            raise RuntimeError(f"{failures} of {len(returns)} trials failed (hydra.sweeper.max_failure_rate="
                               f"{self.max_failure_rate}); the study stops")

    def _tell(self, study, trial, ret) -> bool:
        """Tell the study how a trial ended; False if it failed."""
        from optuna.trial import TrialState

        record = _job_record(ret, Path(str(self.config.hydra.sweep.dir)))
        if record.get("status") == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            return True
        try:
            value = float(ret.return_value)
        except Exception as e:  # the job raised, or returned no value (a recorded failure)
            log.warning("trial %d failed: %s", trial.number, record.get("error") or e)
            study.tell(trial, state=TrialState.FAIL)
            return False
        if value != value:  # NaN
            study.tell(trial, state=TrialState.FAIL)
            return False
        study.tell(trial, value)
        return True


def _job_record(ret, sweep_dir: Path) -> dict:
    """The job's metrics.json (empty if there is none)."""
    out = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None) if ret.hydra_cfg else None
    path = Path(str(out)) / "metrics.json" if out else None
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
