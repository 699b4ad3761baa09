"""The run card: what produced a result, so that it can be traced back and run again. metrics.json
holds it (`command`, `environment`); the TensorBoard summary card and other trackers show it too.

    "command": "dlcourse-train experiment=iris_mlp seed=3",
    "environment": {"python": "3.11.7", "torch": "2.14.1", "lightning": "2.6.6", "hydra": "1.3.2",
                    "dlcourse": "0.1.0", "git": {"commit": "709a69c...", "dirty": false, "root": "/home/me/study"},
                    "device": {"accelerator": "cpu", "cpu": "AMD EPYC 7763 64-Core Processor", "threads": 2,
                               "gpu": null}, "platform": "Linux-6.1-x86_64"}
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from importlib import metadata

PACKAGES = {"torch": "torch", "lightning": "lightning", "hydra": "hydra-core", "torchmetrics": "torchmetrics",
            "dlcourse": "dlcourse"}


def job_overrides() -> list[str]:
    """The running job's command-line overrides (a sweep job's include its swept values); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def command(overrides: list[str]) -> str:
    """The command line that runs this configuration again (a sweep job: its own values)."""
    return " ".join(["dlcourse-train", *(shlex.quote(str(o)) for o in overrides)])


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name, dist in PACKAGES.items():
        try:
            found[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_state(folder: str | None = None) -> dict | None:
    """The commit and dirty flag of the repository the run was started in (the user's code), or None
    outside a repository or without git. Untracked files count as dirty: they may be the code."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder or os.getcwd(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    status = git("status", "--porcelain=v2", "--branch") if root is not None else None  # commit and changes at once
    if status is None:
        return None
    lines = status.splitlines()
    oid = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {"commit": None if oid == "(initial)" else oid, "dirty": any(not line.startswith("#") for line in lines),
            "root": root}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device(accelerator: str | None) -> dict:
    import torch

    gpu = None
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.cuda.current_device())
    return {"accelerator": "gpu" if gpu else "cpu", "cpu": cpu_name(), "threads": torch.get_num_threads(), "gpu": gpu}


def environment(accelerator: str | None) -> dict:
    return {**versions(), "git": git_state(), "device": device(accelerator),
            "platform": platform.platform(terse=True)}


def markdown(card_command: str, env: dict) -> str:
    """Two lines for the TensorBoard summary card."""
    git = env.get("git") or {}
    commit = f"git {git['commit'][:10]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else "no git"
    dev = env.get("device") or {}
    where = dev.get("gpu") or f"{dev.get('cpu')}, {dev.get('threads')} threads"
    soft = ", ".join(f"{k} {env.get(k)}" for k in ("python", "torch", "lightning", "hydra", "dlcourse"))
    return f"`{card_command}`\n\n{soft}; {commit}; {where}"
