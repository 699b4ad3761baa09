"""Writing what a run produced: metrics.json, the HParams entry, the console summary."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcourse import runcard
from dlcourse.errors import OutputError
from dlcourse.intervals import error_line

# Config groups whose values go into the HParams view (paths, hydra and callbacks do not).
HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler", "task", "trainer")


def write_json(path: Path, obj) -> None:
    """Atomic write: a run killed mid-write never leaves a half file that parses as something else."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    """As write_text, for a binary file (a figure's PNG)."""
    write_text(path, data)


def write_text(path: Path, text: str | bytes, newline: str | None = None) -> None:
    """Write through a temporary file renamed over `path`: readers see the old file or the whole new one;
    a failed write (a full disk, a folder in the way) leaves no temporary file and is one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": newline})) as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as the run's other files (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def history_rows(train: list[dict], val: list[dict]) -> list[dict]:
    """One row per epoch (numbered from 1, as the console counts them): train then validation columns."""
    rows: dict[int, dict] = {}
    for entry in [*train, *val]:
        epoch = int(entry["epoch"])  # counted from 1, as the task's histories count
        rows.setdefault(epoch, {"epoch": epoch}).update({k: v for k, v in entry.items() if k != "epoch"})
    return [rows[e] for e in sorted(rows)]


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv: the per-epoch curves as a table (`dlcourse.run(...).history` reads it)."""
    import csv
    import io

    columns = list(dict.fromkeys(k for row in rows for k in row))
    ordered = ["epoch", *[c for c in columns if c.startswith("train/")], *[c for c in columns if c.startswith("val/")]]
    columns = ordered + [c for c in columns if c not in ordered]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _flatten(prefix: str, node, out: dict) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(node, (list, tuple)):
        out[prefix] = str(list(node))
    elif node is None:
        out[prefix] = "null"
    else:
        out[prefix] = node


def flat_hparams(cfg: DictConfig) -> dict:
    """`model.hidden` -> "[100]" etc.: the scalar form TensorBoard's HParams view can show and filter."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    out: dict = {"experiment": cfg.name, "seed": cfg.seed}
    for group in HPARAM_GROUPS:
        _flatten(group, {k: v for k, v in (plain.get(group) or {}).items() if k != "_partial_"}, out)
    return {k: v for k, v in out.items() if not str(v).startswith("${")}


def run_record(cfg: DictConfig, run_dir: Path, *, task: str | None, epochs, started: float, params: int | None,
               val: dict, test: dict, best_checkpoint: str | None, n_test: int | None = None, **extra) -> dict:
    """metrics.json of a run (train) or of a cross-validation (cv): the same fields in the same order."""
    record = {"experiment": cfg.name, "status": "completed", "run_dir": str(run_dir), "seed": cfg.seed, "task": task,
              "epochs": epochs, "wall_time_s": round(time.perf_counter() - started, 3), "params": params,
              "best_checkpoint": best_checkpoint, **extra, "val": val, "test": test}
    if "test/acc" in test and n_test:  # how precise one split's accuracy is: small test sets say little
        record.update(accuracy_interval("test", test["test/acc"], n_test))
    opt = cfg.optimized_metric
    record["optimized_metric"] = opt
    record["optimized_value"] = (record.get(opt.split("/")[0]) or {}).get(opt)
    record["command"] = runcard.command(runcard.job_overrides())  # the run card: what produced this result
    record["environment"] = runcard.environment(OmegaConf.select(cfg, "trainer.accelerator"))
    return record


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of an accuracy measured on n examples (Wilson score interval: sound
    near 0 and 1, where the normal approximation breaks). On 30 iris flowers, 29 right is 83-99%."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    center = (accuracy + z * z / (2 * n)) / denom
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def accuracy_interval(split: str, accuracy: float, n: int) -> dict:
    """`n_<split>` and `<split>_acc_ci95`, as metrics.json (training) and dlcourse-eval write them."""
    return {f"n_{split}": n, f"{split}_acc_ci95": [round(v, 4) for v in wilson_interval(accuracy, n)]}


def accuracy_line(metrics: dict) -> str | None:
    """"test accuracy 93.33% (28 of 30; 95% CI 78.7-98.2%)": how much one split's figure can say."""
    ci, n, acc = metrics.get("test_acc_ci95"), metrics.get("n_test"), metrics.get("test", {}).get("test/acc")
    if "test_mse_ci95" in metrics:  # regression, forecasts: the bootstrap interval of the error
        return error_line(metrics)
    if ci is None or not n or acc is None:
        return None
    return (f"test accuracy {100 * acc:.2f}% ({round(acc * n)} of {n}; 95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%, "
            "Wilson)")


def ending_line(metrics: dict) -> str:
    """How the run ended, in words: all epochs, early stopping (at which epoch, which was best), divergence."""
    epochs, most = metrics.get("epochs"), metrics.get("max_epochs")
    best = metrics.get("val", {}).get("epoch")
    best_text = "" if best is None else f"; best epoch {int(best)}, the one tested"
    if metrics.get("diverged_epoch") is not None:
        return (f"ended: diverged in epoch {metrics['diverged_epoch']} of {most} (the loss became nan or inf); "
                f"the last good checkpoint stays")
    if metrics.get("stopped_early"):
        return f"ended: early stopping at epoch {epochs} of {most} (no improvement for its patience){best_text}"
    return f"ended: all {epochs} epochs (trainer.max_epochs={most}){best_text}"


def markdown_summary(metrics: dict, overrides: list[str]) -> str:
    """The TensorBoard text card: the command's overrides, how the run ended, the final values."""
    lines = [f"**{metrics['experiment']}** {' '.join(overrides)}".rstrip(), "", ending_line(metrics), "",
             "| metric | val (best epoch) | test |", "|---|---:|---:|"]
    lines += [f"| {name} | {val} | {test} |" for name, val, test in metric_rows(metrics)]
    line = accuracy_line(metrics)
    lines = [*lines, "", line] if line else lines
    if metrics.get("environment"):
        lines += ["", runcard.markdown(metrics.get("command", ""), metrics["environment"])]
    return "\n".join(lines)


def metric_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """(metric, its validation value at the best epoch, its test value), as text: the summary's rows."""
    names = sorted({k.split("/", 1)[1] for k in [*metrics["val"], *metrics["test"]] if "/" in k})
    text = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    return [(n, text(metrics["val"].get(f"val/{n}")), text(metrics["test"].get(f"test/{n}"))) for n in names]


def viewer_lines(run_dir: Path, loggers=None) -> list[str]:
    """Where to look at this run, one line per logger (TensorBoard when the loggers are not known)."""
    lines = []
    for lg in loggers if loggers is not None else [None]:
        kind = type(lg).__name__ if lg is not None else "TensorBoardLogger"
        if kind == "TensorBoardLogger":
            lines.append(f"TensorBoard:   tensorboard --logdir {run_dir}")
        elif kind == "MLFlowLogger":
            uri = getattr(lg, "store_uri", None)  # dlcourse's logger; Lightning's keeps its store private
            lines.append(f"MLflow:        mlflow ui --backend-store-uri {uri}" if uri else "MLflow:        mlflow ui")
        elif kind == "CSVLogger":
            lines.append(f"CSV:           {Path(lg.log_dir) / 'metrics.csv'}")
    return lines


def print_summary(metrics: dict, run_dir: Path, loggers=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(record=True)
    table = Table(title=f"{metrics['experiment']}: {metrics['epochs']} epochs, {metrics['wall_time_s']:.1f} s, "
                        f"{metrics['params']:,} parameters")
    table.add_column("metric")
    table.add_column("val (best epoch)", justify="right")
    table.add_column("test", justify="right")
    for row in metric_rows(metrics):
        table.add_row(*row)
    console.print(table)
    console.print(ending_line(metrics))
    line = accuracy_line(metrics)
    if line:
        console.print(line)
    console.print(f"run directory: {run_dir}")
    for line in viewer_lines(run_dir, loggers):
        console.print(line)
    to_log_file(console.export_text())


def to_log_file(text: str) -> None:
    """Text the console showed, into the run's log file (train.log) too, not to the console again."""
    import logging

    record = logging.LogRecord("dlcourse", logging.INFO, __file__, 0, "summary:\n%s", (text.rstrip(),), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
