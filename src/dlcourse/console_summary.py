"""What the console prints when a run ends (and train.log keeps): the metrics table, how the run ended,
how precise the test figure is, where to look at the run. The TensorBoard text card says the same."""

from __future__ import annotations

from pathlib import Path

from dlcourse import runcard
from dlcourse.intervals import error_line


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
