"""Every use of a private member of Lightning or Hydra, in one place.

Each is here because the public API has no equivalent that keeps dlcourse's speed or behaviour;
tests/test_internals.py pins every one (it fails when a release renames or changes it), and
pyproject.toml pins Lightning and Hydra to the releases those tests pass on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def optimizer_step(optimizer) -> None:
    """Step the torch optimizer inside a LightningOptimizer, keeping Lightning's step counter
    (trainer.global_step) exact. LightningOptimizer.step() wraps the same step in hooks and a
    closure that cost about 2 ms a step, 10-30% of a small model's epoch on a CPU."""
    optimizer._on_before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()


def set_ddp_rank_command(command: Callable[[int], tuple[Sequence[str], str]]) -> None:
    """Replace the command Lightning starts the extra DDP ranks with when Hydra runs the app (see
    dlcourse.sweep.jobs.ddp_rank_command: Lightning's own repeats the whole command line)."""
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pl_launcher

    fabric_launcher._hydra_subprocess_cmd = command
    pl_launcher._hydra_subprocess_cmd = command


def hydra_app():
    """The Hydra object behind the compose API (GlobalHydra), whose `multirun` starts a sweep
    (sweeper, launcher, callbacks) on the config dlcourse composed and validated."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().hydra


def register_launcher(target: str, clazz) -> None:
    """Make `hydra.launcher._target_: <target>` instantiate `clazz`: Hydra only instantiates plugins it
    found itself under the `hydra_plugins` namespace (dlcourse's SLURM launcher lives in dlcourse)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().class_name_to_class[target] = clazz
