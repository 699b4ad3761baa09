"""Every use of a private member of Lightning, Hydra or a TensorBoard writer, in one place: no other
module of dlcourse reads, writes or overrides one (tests/test_package.py checks).

Each is here because the public API has no equivalent that keeps dlcourse's speed or behaviour;
tests/test_internals.py pins every one (it fails when a release renames or changes it), and
pyproject.toml pins Lightning and Hydra to the releases those tests pass on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager


def optimizer_step(optimizer) -> None:
    """Step the torch optimizer inside a LightningOptimizer, keeping Lightning's step counter
    (trainer.global_step) exact. LightningOptimizer.step() wraps the same step in hooks and a
    closure that cost about 2 ms a step, 10-30% of a small model's epoch on a CPU."""
    optimizer._on_before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()


def set_ddp_rank_command(command: Callable[[int], tuple[Sequence[str], str]]) -> None:
    """Replace the command Lightning starts the extra DDP ranks with when Hydra runs the app (see
    dlcourse.sweeps.jobs.ddp_rank_command: Lightning's own repeats the whole command line)."""
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pl_launcher

    fabric_launcher._hydra_subprocess_cmd = command
    pl_launcher._hydra_subprocess_cmd = command


def hydra_app():
    """The Hydra object behind the compose API (GlobalHydra), whose `multirun` starts a sweep
    (sweeper, launcher, callbacks) on the config dlcourse composed and validated."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().hydra


def event_file_writer(experiment):
    """The event file writer of a logger's TensorBoard SummaryWriter (torch's or tensorboardX's),
    opened again where Lightning closed it at the end of fit, as the writer's own add_image does; None
    for another kind of logger. Figures pass their PNG bytes to it, encoded once."""
    get = getattr(experiment, "_get_file_writer", None)
    return get() if callable(get) else None


def publish_callback_metrics(trainer, values: dict, bar_values: dict) -> None:
    """Epoch values into the dicts early stopping, checkpointing and the progress bar read: what
    LightningModule.log fills, at about 2 ms per key and call (dlcourse.metrics.publish)."""
    trainer.callback_metrics.update(values)
    trainer.progress_bar_metrics.update(bar_values)


def learning_rates(monitor, trainer, interval: str) -> dict[str, float]:
    """The learning rates a LearningRateMonitor would log now, under its own names (`lr-Adam`, ...)."""
    return monitor._extract_stats(trainer, interval)


def attached_trainer(callback):
    """The trainer a progress bar is attached to, or None (its `trainer` property raises instead)."""
    return callback._trainer


class TrainDescription:
    """Mixin for Lightning's progress bars: the training bar's text comes from `epoch_text` (the Rich
    bar builds it in a private hook; the tqdm bar's text is set by dlcourse's own bar)."""

    def _get_train_description(self, current_epoch: int) -> str:
        return self.epoch_text(current_epoch)


def failed_job_error(job_return) -> BaseException:
    """The exception a failed Hydra job ended with (JobReturn.return_value raises it, after printing
    a line to stderr that a sweep's own failure record replaces)."""
    return job_return._return_value


def run_hydra_job(task_function, cfg, job_dir_key: str, callbacks):
    """Hydra's job runner outside `@hydra.main`: the run directory, .hydra/, the job's logging and
    working directory, as `hydra.main` would set them up, on a config dlcourse composed itself."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=callbacks)
    return run_job(task_function=task_function, config=cfg, job_dir_key=job_dir_key, job_subdir_key=None,
                   hydra_context=context)


def register_plugin(target: str) -> None:
    """Make `_target_: hydra_plugins.<module>.<class>` (dlcourse's launcher, sweeper) instantiable where
    Hydra's scan of the `hydra_plugins` namespace package missed it: Hydra instantiates only the plugins
    its scan found, and an editable install (pip install -e) hides the package from that scan."""
    import importlib

    from hydra.core.plugins import Plugins

    registry = Plugins.instance().class_name_to_class
    if target not in registry:
        module, _, name = target.rpartition(".")
        registry[target] = getattr(importlib.import_module(module), name)


class _RememberingConfigLoader:
    """Hydra's config loader, remembering the configs it composed (a sweep's job configs, composed by
    dlcourse to check them): Hydra's own uses of the same job (the sweeper's check of each batch, the
    launcher's `load_sweep_config`) then get a copy instead of composing it again. Hydra's own
    `load_sweep_config` runs unchanged on top of this `load_configuration`. Pickled (joblib's and
    submitit's workers) it is the plain loader again."""

    def __init__(self, loader):
        self.loader, self.memo = loader, {}

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __reduce__(self):
        return _same, (self.loader,)

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        import copy
        import os

        # from_shell only words an error message; the rest is everything a composition depends on
        # (the config files do not change while a sweep starts).
        key = (config_name, tuple(overrides), run_mode, validate_sweep_overrides, os.getcwd())
        if key not in self.memo:
            self.memo[key] = self.loader.load_configuration(
                config_name=config_name, overrides=overrides, run_mode=run_mode, from_shell=from_shell,
                validate_sweep_overrides=validate_sweep_overrides)
        return copy.deepcopy(self.memo[key])  # each caller changes its own (job number, run name)

    def load_sweep_config(self, master_config, sweep_overrides):
        return type(self.loader).load_sweep_config(self, master_config, sweep_overrides)


def _same(loader):
    return loader


@contextmanager
def compositions_remembered():
    """While the block runs, every composition through GlobalHydra's Hydra object is remembered."""
    hydra = hydra_app()
    real = hydra.config_loader
    hydra.config_loader = _RememberingConfigLoader(real)
    try:
        yield
    finally:
        hydra.config_loader = real
