"""K-fold cross-validation: `dlcourse-train experiment=iris_mlp cv.folds=5`.

The training and validation splits are pooled and cut into K folds (stratified by class for
classification, seeded by `seed`); the test split is untouched (not used). Fold k trains a fresh model
on the other K-1 folds and validates on fold k, as an ordinary run in `<run_dir>/fold_<k>/` (its own
checkpoints, figures, metrics.json and TensorBoard run). The run's own metrics.json reports the mean
(`val`) and standard deviation (`val_std`) of every validation metric over the folds, and the
per-fold values under `cv`.

`cv.refit=true` then trains one final model on all train+val rows, as scikit-learn's GridSearchCV
does after its search: with no rows left to validate on, it trains for a fixed number of epochs, the
folds' mean best epoch (the epoch each fold's checkpoint was selected from), without early stopping.
It runs in `<run_dir>/refit/`, and its test metrics are the run's `test` metrics: the test split's
first and only use.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from pathlib import Path

from omegaconf import DictConfig, open_dict

from dlcourse.atomic_files import write_json
from dlcourse.console_summary import accuracy_line, to_log_file
from dlcourse.run_records import run_record
from dlcourse.train import Prepared, fit, train

log = logging.getLogger("dlcourse")


def fold_config(cfg: DictConfig, fold: int, run_dir: Path) -> DictConfig:
    fcfg = copy.deepcopy(cfg)
    with open_dict(fcfg):
        fcfg.paths.output_dir = str(run_dir / f"fold_{fold + 1}")
        fcfg.cv.fold = fold
        fcfg.test = False  # the folds never see the test split (a refit run may, once, at the end)
        fcfg.ckpt_path = None
    if fold > 0:
        without_model_summary(fcfg)
    return fcfg


def without_model_summary(cfg: DictConfig) -> None:
    """The model is the same in every fold and the refit: its summary is printed once, for fold 1."""
    with open_dict(cfg):
        for name, cb in (cfg.get("callbacks") or {}).items():
            if str((cb or {}).get("_target_", "")).endswith("ModelSummary"):
                cfg.callbacks[name] = None


def refit_config(cfg: DictConfig, run_dir: Path, epochs: int) -> DictConfig:
    """One run on train+val for `epochs` epochs: no validation, so nothing to stop early on or to
    select a checkpoint by (the last epoch's weights are the model)."""
    rcfg = copy.deepcopy(cfg)
    with open_dict(rcfg):
        rcfg.paths.output_dir = str(run_dir / "refit")
        rcfg.cv.fold = "refit"
        rcfg.ckpt_path = None
        rcfg.trainer.max_epochs = epochs
        rcfg.trainer.limit_val_batches = 0
        rcfg.trainer.num_sanity_val_steps = 0
        for name, cb in (rcfg.get("callbacks") or {}).items():
            target = str((cb or {}).get("_target_", ""))
            if target.endswith("EarlyStopping"):
                rcfg.callbacks[name] = None
            elif target.endswith("ModelCheckpoint"):
                cb.monitor, cb.filename, cb.save_top_k = None, "epoch={epoch:03d}", 1
    without_model_summary(rcfg)
    return rcfg


def refit_epochs(results: list[dict]) -> int:
    """The folds' mean best epoch, as a count of epochs (val `epoch` counts from 1)."""
    best = [r["val"]["epoch"] if "epoch" in r.get("val", {}) else r["epochs"] for r in results]
    return max(1, round(statistics.fmean(best)))


def aggregate(per_fold: list[dict]) -> tuple[dict, dict]:
    names = [k for k in per_fold[0] if k != "epoch"]
    mean, std = {}, {}
    for name in names:
        values = [float(v[name]) for v in per_fold if name in v]
        mean[name] = statistics.fmean(values)
        std[name] = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def cross_validate(cfg: DictConfig, first: Prepared | None = None) -> dict:
    """K folds (and the refit) in `cfg.paths.output_dir`. `first`: fold 1 already prepared, as the
    command line does to find data errors before the run directory exists."""
    folds = int(cfg.cv.folds)
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    results = []
    for k in range(folds):
        log.info("cross-validation: fold %d of %d", k + 1, folds)
        fold_cfg = fold_config(cfg, k, run_dir)
        results.append(fit(first, fold_cfg) if k == 0 and first is not None else train(fold_cfg))
    refit = None
    if cfg.cv.get("refit"):
        epochs = refit_epochs(results)
        log.info("cross-validation: refit on train+val for %d epochs (the folds' mean best epoch)", epochs)
        refit = train(refit_config(cfg, run_dir, epochs))
    per_fold = [r["val"] for r in results]
    mean, std = aggregate(per_fold)
    metrics = run_record(
        cfg, run_dir, task=results[0].get("task"), epochs=round(statistics.fmean(r["epochs"] for r in results), 1),
        started=started, params=results[0].get("params"), val=mean, test=refit["test"] if refit else {},
        best_checkpoint=refit["best_checkpoint"] if refit else None,  # dlcourse-eval ckpt_path=<run_dir>
        n_test=refit.get("n_test") if refit else None,
        cv={"folds": folds, "per_fold": per_fold, "fold_dirs": [r["run_dir"] for r in results],
            "epochs": [r["epochs"] for r in results]},
        val_std=std, refit={"epochs": refit["epochs"], "run_dir": refit["run_dir"]} if refit else None)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        write_json(run_dir / "metrics.json", metrics)
        log_hparams(cfg, run_dir, mean, std, metrics["test"])
        print_cv(metrics, run_dir)
    return metrics


def log_hparams(cfg: DictConfig, run_dir: Path, mean: dict, std: dict, test: dict) -> None:
    """The CV means (and stds), and the refit model's test metrics, as this run's HParams row."""
    if not any(lg is not None and "TensorBoard" in str(lg.get("_target_", ""))
               for lg in (cfg.get("logger") or {}).values()):
        return
    from dlcourse.tensorboard_hparams import hparam_entries, metric_order
    from dlcourse.tensorboard_logger import TensorBoardLogger

    lg = TensorBoardLogger(save_dir=str(run_dir))
    hp, first = hparam_entries(cfg)
    hp.update({"cv.folds": int(cfg.cv.folds), "cv.refit": bool(cfg.cv.get("refit"))})
    results = {**mean, **{f"{k}_std": v for k, v in std.items()}, **test}
    lg.log_results(hp, first | {"cv.folds"}, results, 0, metric_order(results, cfg.optimized_metric))
    lg.finalize("success")


def print_cv(metrics: dict, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    cv = metrics["cv"]
    table = Table(title=f"{metrics['experiment']}: {cv['folds']}-fold cross-validation, "
                        f"{metrics['wall_time_s']:.1f} s" + ("" if metrics.get("refit") else " (test split not used)"))
    table.add_column("val metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for k in range(cv["folds"]):
        table.add_column(f"fold {k + 1}", justify="right")
    for name, mean in metrics["val"].items():
        table.add_row(name.split("/", 1)[-1], f"{mean:.4f}", f"{metrics['val_std'][name]:.4f}",
                      *[f"{f.get(name, float('nan')):.4f}" for f in cv["per_fold"]])
    console = Console(record=True)
    console.print(table)
    refit = metrics.get("refit")
    if refit:
        test = Table(title=f"refit on train+val, {refit['epochs']} epochs: test split")
        test.add_column("test metric")
        test.add_column("value", justify="right")
        for name, value in metrics["test"].items():
            test.add_row(name.split("/", 1)[-1], f"{value:.4f}")
        console.print(test)
        line = accuracy_line(metrics)
        if line:
            console.print(line)
    where = f"folds in fold_1 ... fold_{cv['folds']}" + (", final model in refit" if refit else "")
    console.print(f"run directory: {run_dir} ({where})")
    to_log_file(console.export_text())
