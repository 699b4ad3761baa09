"""Shared fixtures: compose any config fast and run it in-process on tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dlcourse.cli import CONF_DIR

REPO = Path(__file__).resolve().parents[1]

# Settings that make any experiment finish in seconds on a CPU (tests check behaviour, not accuracy).
FAST = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.model_summary",
]


def make_cfg(overrides: list[str], output_dir: Path):
    """Compose conf/train.yaml like the CLI does, with the run directory set explicitly."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"paths.output_dir={output_dir}"])
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture
def cfg_factory(tmp_path):
    runs = iter(range(1_000_000))

    def factory(*overrides: str, fast: bool = True):
        # A fresh run directory per config, as the CLI gives each run its own.
        return make_cfg([*(FAST if fast else []), *overrides], tmp_path / f"run{next(runs)}")

    return factory


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 300,
            module: str = "dlcourse.train") -> subprocess.CompletedProcess:
    """Run a dlcourse command as a user would, with outputs under `cwd`."""
    env = {**os.environ, "DLCOURSE_ROOT": str(cwd), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
