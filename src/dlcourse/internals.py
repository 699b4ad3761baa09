"""Every use of a private member of Lightning, Hydra or a TensorBoard writer, in one place.

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


def register_launcher(target: str, clazz) -> None:
    """Make `hydra.launcher._target_: <target>` instantiate `clazz`: Hydra only instantiates plugins it
    found itself under the `hydra_plugins` namespace (dlcourse's SLURM launcher lives in dlcourse)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().class_name_to_class[target] = clazz


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
