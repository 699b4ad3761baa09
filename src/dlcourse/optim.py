"""The task's optimisation helpers: when a schedule steps, the arguments it takes from the run, L1."""

from __future__ import annotations

import inspect

import torch

# Schedules designed to step every batch (their length is counted in optimizer steps).
PER_BATCH = ("OneCycleLR", "CyclicLR")


def schedule_interval(factory, interval: str) -> str:
    """`auto`: every batch for the per-batch schedules, else every epoch (Lightning's default)."""
    if interval != "auto":
        return interval
    cls = getattr(factory, "func", factory)
    return "step" if getattr(cls, "__name__", "") in PER_BATCH else "epoch"


def schedule_defaults(factory, optimizer: torch.optim.Optimizer, length: int) -> dict:
    """Fill in what a schedule needs from the run itself (so the user never types it twice): OneCycle's
    max_lr is the optimizer's lr; its length and cosine's span are `length`, the run's steps or epochs
    (dlcourse.loop.schedule_length: optimizer steps, not Lightning's calls, which may hold several)."""
    given = getattr(factory, "keywords", {}) or {}
    accepted = inspect.signature(getattr(factory, "func", factory)).parameters
    defaults = {}
    if "max_lr" in accepted and given.get("max_lr") is None:
        defaults["max_lr"] = [g["lr"] for g in optimizer.param_groups]
    if "total_steps" in accepted and given.get("total_steps") is None:
        defaults["total_steps"] = int(length)
    if "T_max" in accepted and given.get("T_max") is None:
        defaults["T_max"] = int(length)
    return defaults


def l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    """Weights only (matrices and kernels), not biases or norm scales, as L1 is usually taught."""
    return sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)


def step_per_epoch(scheduler, monitored) -> None:
    """An epoch's schedule step; plateau steps on the watched metric (validated before this hook)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if monitored is not None:
            scheduler.step(monitored)
    else:
        scheduler.step()
