"""Lightning's learning-rate finder (Tuner.lr_find) on dlcourse's Task, before a run trains (`lr_find.*`).

The Task optimises by hand, several batches per training_step call, and returns no loss: Lightning's
finder, which steps its schedule and reads the loss only in automatic optimisation, sees nothing. While
the finder runs, the training loop's finder mode (dlcourse.loop, `finding_lr`) asks for one batch per
call, steps the finder's schedule after every step and returns the step's loss. The finder
trains a throwaway Trainer; Lightning restores the weights afterwards and the global RNG is isolated,
so the run that follows starts exactly as it would have without the finder.
"""

from __future__ import annotations

import logging
import math
import tempfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcourse.atomic_files import write_json
from dlcourse.build import build_trainer
from dlcourse.callbacks.figures import save_figures
from dlcourse.console_summary import to_log_file
from dlcourse.errors import LrFindError
from dlcourse.metric_figures import lr_find_figure
from dlcourse.run_records import run_record

log = logging.getLogger("dlcourse")
SKIP_BEGIN, SKIP_END = 10, 1  # what _LRFinder.suggestion() leaves out by default


def find_lr_if_enabled(prepared, cfg: DictConfig, run_dir: Path, loggers=()) -> dict | None:
    """fit()'s call: the finder's result with `lr_find.enabled`, else None (also when the run resumes:
    the checkpoint's optimizer state keeps the rate its run trained with)."""
    if not OmegaConf.select(cfg, "lr_find.enabled", default=False):
        return None
    if prepared.resumed:
        log.info("lr_find: skipped, the run resumes from %s (its optimizer keeps its learning rate)", cfg.ckpt_path)
        return None
    return find_lr(prepared, cfg, run_dir, loggers)


@contextmanager
def finder_mode(task):
    """The loop's finder mode (one batch per training_step call, the loss returned; dlcourse.loop), for
    as long as the finder runs."""
    task.loop.finding_lr = True
    try:
        yield
    finally:
        task.loop.finding_lr = False


@contextmanager
def quiet_lightning():
    """Lightning's info lines about the throwaway Trainer (its devices, its temporary checkpoint, why it
    stopped) stay off the console: the finder's own line says what matters."""
    loggers = [logging.getLogger(name) for name in (
        "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector", "lightning.pytorch.tuner.lr_finder")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def finder_trainer(cfg: DictConfig, root: str):
    """A Trainer as the run's (device, precision), without callbacks, loggers or checkpoints; enough
    epochs for the finder's steps (each has one at least), none of them validated."""
    steps = int(cfg.lr_find.num_training)
    return build_trainer(cfg, callbacks=[], logger=False, default_root_dir=root, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=steps,
                         check_val_every_n_epoch=steps + 1, num_sanity_val_steps=0)


def find_lr(prepared, cfg: DictConfig, run_dir: Path, loggers=()) -> dict:
    """Run the finder on the prepared task and data; write figures/lr_find.png (and the image to the
    TensorBoard loggers among `loggers`); with lr_find.apply, make the task's optimizer use the suggestion."""
    from lightning.pytorch.tuner import Tuner
    from lightning.pytorch.utilities.seed import isolate_rng

    s = cfg.lr_find
    dm, task = prepared.dm, prepared.task
    if not any(p.requires_grad for p in task.model.parameters()):
        raise LrFindError("lr_find: this model has nothing to train, so no learning rate to find; "
                          "set lr_find.enabled=false")
    with (tempfile.TemporaryDirectory(prefix="dlcourse-lr_find-") as scratch, isolate_rng(), quiet_lightning(),
          finder_mode(task)):
        finder = Tuner(finder_trainer(cfg, scratch)).lr_find(
            task, datamodule=dm, min_lr=float(s.min_lr), max_lr=float(s.max_lr), num_training=int(s.num_training),
            mode=str(s.mode), update_attr=False)
    if finder is None:  # Lightning skips the finder under fast_dev_run
        raise LrFindError("lr_find: Lightning skips the finder under trainer.fast_dev_run; set "
                          "trainer.fast_dev_run=false or lr_find.enabled=false")
    lrs, losses = [float(v) for v in finder.results["lr"]], [float(v) for v in finder.results["loss"]]
    enough = sum(math.isfinite(v) for v in losses[SKIP_BEGIN:-SKIP_END]) >= 2
    suggestion = float(finder.suggestion(SKIP_BEGIN, SKIP_END)) if enough else None
    (figure,) = save_figures({"lr_find": lr_find_figure(lrs, losses, suggestion)}, Path(run_dir) / "figures", loggers, 0)
    if suggestion is None:
        raise LrFindError(no_suggestion(lrs, losses, s, figure))
    applied = bool(s.apply and s.train)
    if applied:  # the optimizer the run's Trainer builds takes it (and OneCycle's max_lr, from the optimizer)
        task.optimizer_factory = partial(task.optimizer_factory, lr=suggestion)
    found = {"suggestion": suggestion, "min_lr": float(s.min_lr), "max_lr": float(s.max_lr),
             "num_training": int(s.num_training), "mode": str(s.mode), "lrs": lrs, "losses": losses,
             "applied": applied, "figure": str(figure)}
    announce(found, cfg)
    return found


def announce(found: dict, cfg: DictConfig) -> None:
    """One console (and train.log) line: the suggestion, the range tried, what the run does with it."""
    steps, planned = len(found["lrs"]), found["num_training"]
    tried = f"tried {found['min_lr']:g}..{found['lrs'][-1]:.3g} over {steps} steps" + (
        "" if steps >= planned else f" of {planned}, stopped as the loss diverged")
    if found["applied"]:
        then = "training with it"
    elif not cfg.lr_find.train:
        then = "not training (lr_find.train=false)"
    else:
        then = f"not applied (lr_find.apply=false), training with optimizer.lr={OmegaConf.select(cfg, 'optimizer.lr')}"
    line = f"lr_find: suggested optimizer.lr={found['suggestion']:.3g} ({tried}), {then}; figure: {found['figure']}"
    print(line, flush=True)
    to_log_file(line)


def no_suggestion(lrs: list[float], losses: list[float], s: DictConfig, figure: Path) -> str:
    """Why there is no suggestion, in one line: the loss diverged at once or was never finite."""
    finite = sum(math.isfinite(v) for v in losses)
    if len(lrs) < s.num_training:
        why = f"the loss diverged after {len(lrs)} of {s.num_training} steps, at lr {lrs[-1] if lrs else s.min_lr:.3g}"
    else:
        why = f"only {finite} of its {len(lrs)} steps had a finite loss"
    return (f"lr_find: no suggestion ({why}; it needs 2 finite losses after the first {SKIP_BEGIN} steps): "
            f"lower lr_find.min_lr ({s.min_lr:g}) and lr_find.max_lr ({s.max_lr:g}); figure: {figure}")


def lr_find_record(found: dict | None) -> dict:
    """metrics.json's `lr_find` record (without the curve: the figure shows it); {} without the finder."""
    if found is None:
        return {}
    return {"lr_find": {"suggestion": found["suggestion"], "applied": found["applied"],
                        "range": [found["min_lr"], found["max_lr"]], "mode": found["mode"],
                        "steps": len(found["lrs"]), "num_training": found["num_training"],
                        "figure": "figures/lr_find.png"}}


def record_lr_find_only(prepared, cfg: DictConfig, run_dir: Path, found: dict, loggers=()) -> dict:
    """`lr_find.train=false`: the run ends after the finder; metrics.json says so (status lr_find)."""
    from dlcourse.models.layers import count_parameters

    record = run_record(cfg, run_dir, task=prepared.dm.task, epochs=0, started=prepared.started,
                        params=count_parameters(prepared.task.model), val={}, test={}, best_checkpoint=None,
                        **lr_find_record(found))
    record["status"] = "lr_find"
    write_json(Path(run_dir) / "metrics.json", record)
    for lg in loggers:
        lg.finalize("success")
    print(f"run directory: {run_dir}", flush=True)
    return record
