"""The summary of a sweep directory: one row per job with its overridden values, final metrics,
epochs, wall time and status (a failed job shows its error line), best first by
`optimized_metric`/`optimized_mode`, and the best job's overrides as a command that reruns it.
Repeats over seeds (`seed=1,2,3`) are also summarised per configuration as mean and standard
deviation (`summary_seeds.csv`). Written at the end of every multirun (dlcourse.sweeps.jobs), and
for a sweep that is still running or was interrupted:

    dlcourse-summary outputs/iris_mlp/multirun/2024-05-01_12-00-00
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlcourse.errors import DlcourseError
from dlcourse.sweeps.files import read_metrics, read_overrides, write_files
from dlcourse.sweeps.seeds import best_by_mean, best_group_lines, seed_groups, seed_lines

# Overrides that start a sweep rather than a run: left out of the "rerun the best job" command.
NOT_RERUN = ("hparams_search=", "hydra.", "+hydra.", "cv.fold=", "sweep.")


def _parse_override(text: str) -> tuple[str, str]:
    if text.startswith("~"):
        key, _, value = text[1:].partition("=")
        return key, "(removed)"
    key, _, value = text.partition("=")
    return key.lstrip("+"), value


def _job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()
            and ((p / ".hydra" / "overrides.yaml").is_file() or (p / "metrics.json").is_file())]
    return sorted(jobs, key=lambda p: int(p.name))


def _sweep_settings(sweep_dir: Path, jobs: list[Path], keys: tuple[str, ...]) -> dict:
    """optimized_mode / optimized_metric of the sweep's config (known before any job finished): each
    from the first config file that sets it plainly."""
    found: dict = {}
    for cfg_file in [sweep_dir / "multirun.yaml", *(j / ".hydra" / "config.yaml" for j in jobs)]:
        try:
            cfg = OmegaConf.load(cfg_file) if len(found) < len(keys) and cfg_file.is_file() else {}
        except Exception:
            continue
        if not isinstance(cfg, DictConfig | dict):  # a file of another shape (a list): nothing to learn from it
            continue
        plain = {k: v for k in keys if isinstance(v := cfg.get(k), str) and "${" not in v}
        found = {**plain, **found}
    return found


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per job directory: job, status, overrides (ordered list), metrics.json content."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for job in _job_dirs(sweep_dir):
        overrides, metrics = read_overrides(job), read_metrics(job)
        status = metrics.get("status") or "incomplete"  # still running, or killed before it finished
        overrides = overrides or [str(o) for o in metrics.get("overrides") or []]  # a job that never started
        rows.append({"job": int(job.name), "dir": job, "overrides": overrides, "metrics": metrics, "status": status})
    return rows


def _num(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _short(value: str) -> str:
    """Optuna's 0.011842729505689 -> 0.01184 in the Markdown table (summary.csv keeps every digit)."""
    try:
        return f"{float(value):.4g}" if len(value) > 8 else value
    except (TypeError, ValueError):
        return value


def summarize(sweep_dir: str | Path, write: bool = True) -> dict[str, Any]:
    """Build (and write) summary.csv, summary.md and, for seed repeats, summary_seeds.csv."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    settings = _sweep_settings(sweep_dir, [r["dir"] for r in rows], ("optimized_mode", "optimized_metric"))
    mode = settings.get("optimized_mode") if settings.get("optimized_mode") in ("min", "max") else "min"
    opt = next((r["metrics"].get("optimized_metric") for r in rows if r["metrics"].get("optimized_metric")), None)
    opt = opt or settings.get("optimized_metric") or "val/loss"
    keys: list[str] = []
    for r in rows:
        r["values"] = dict(_parse_override(o) for o in r["overrides"])
        keys += [k for k in r["values"] if k not in keys]
    varying = [k for k in keys if len({r["values"].get(k) for r in rows}) > 1]
    metric_names = _metric_names(rows)
    _score(rows, mode)
    std_names = [f"{opt} std"] if any(f"{opt} std" in r["flat"] for r in rows) else []
    header, table = _table(rows, keys, opt, std_names, metric_names)
    best = next((r for r in rows if r["value"] is not None), None)
    rerun = _rerun_command(best) if best is not None else None
    seeds = seed_groups(rows, keys, opt, metric_names, mode) if "seed" in varying else []
    best_group, members = best_by_mean(rows, seeds, opt)
    if best_group is not None:  # the configuration with the best mean over seeds, not the luckiest seed
        best = next(r for r in members if r["value"] is not None)
        rerun = _rerun_command(best, seeds=[r["values"].get("seed") for r in members])
    markdown = _markdown(sweep_dir, rows, table, keys, varying, opt, std_names, metric_names, mode, seeds, best, rerun,
                         best_group)
    if write and rows:
        write_files(sweep_dir, header, table, markdown, seeds, keys)
    n_failed = sum(r["status"] not in ("completed", "incomplete", "pruned") for r in rows)  # failed, cancelled, timeout, ...
    n_done = sum(r["status"] == "completed" for r in rows)
    return {"rows": rows, "table": table, "markdown": markdown, "best": best, "rerun": rerun,
            "failed": n_failed, "completed": n_done, "seeds": seeds, "optimized_metric": opt, "mode": mode}


def status_counts(rows) -> str:
    """"3 completed, 1 failed, 0 incomplete" (and any other final state SLURM gave a job)."""
    counts = {"completed": 0, "failed": 0, "incomplete": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _metric_names(rows) -> list[str]:
    names: list[str] = []
    for split in ("val", "test"):
        for r in rows:
            names += [k for k in (r["metrics"].get(split) or {}) if k != "epoch" and k not in names]
    return names


def _score(rows, mode: str) -> None:
    """Best first by the optimised value; completed jobs before failed and incomplete ones."""
    def key(r):
        v = _num(r["metrics"].get("optimized_value")) if r["status"] == "completed" else None
        return (v is None, 0.0 if v is None else (v if mode == "min" else -v), r["job"])

    rows.sort(key=key)
    for r in rows:
        m = r["metrics"]
        r["value"] = _num(m.get("optimized_value")) if r["status"] == "completed" else None
        r["flat"] = {**(m.get("val") or {}), **(m.get("test") or {})}
        if m.get("val_std"):
            r["flat"].update({f"{k} std": v for k, v in m["val_std"].items()})


def _table(rows, keys, opt, std_names, metric_names) -> tuple[list[str], list[dict]]:
    """summary.csv: every override key and every metric, machine-readable."""
    header = ["job", "status", *keys, opt, *std_names, *[n for n in metric_names if n != opt],
              "epochs", "wall_time_s", "error", "run_dir"]
    table = []
    for r in rows:
        m = r["metrics"]
        table.append({"job": r["job"], "status": r["status"], **{k: r["values"].get(k, "") for k in keys},
                      opt: r["value"], **{n: r["flat"].get(n) for n in [*std_names, *metric_names] if n != opt},
                      "epochs": m.get("epochs"), "wall_time_s": m.get("wall_time_s"),
                      "error": m.get("error", ""), "run_dir": str(r["dir"])})
    return header, table


def _rerun_command(best: dict, seeds: list | None = None) -> str:
    """The best job's command; with `seeds`, its configuration over all of them (a multirun)."""
    args = [o.removesuffix("=null") if o.startswith("~") else o  # Hydra saves `~key` as `~key=null`
            for o in best["overrides"] if not o.startswith(NOT_RERUN)]
    if seeds:
        args = ["-m", *[a for a in args if _parse_override(a)[0] != "seed"], "seed=" + ",".join(dict.fromkeys(map(str, seeds)))]
    return "dlcourse-train " + " ".join(shlex.quote(a) for a in args)


def _markdown(sweep_dir, rows, table, keys, varying, opt, std_names, metric_names, mode, seeds, best, rerun,
              best_group=None) -> str:
    """summary.md: the overrides that differ, the main metrics, status and error."""
    show = [opt, *std_names]
    split_of_opt, _, base = opt.partition("/")
    for extra in (f"{'test' if split_of_opt == 'val' else 'val'}/{base}", "val/loss", "test/loss"):
        if extra in metric_names and extra not in show:
            show.append(extra)
    lines = [f"# Sweep summary: {sweep_dir}", "", f"{len(rows)} jobs: {status_counts(rows)}. "
             f"Sorted by `{opt}` ({mode}imize).", ""]
    common = [k for k in keys if k not in varying]
    if common:
        lines += ["Common overrides: `" + " ".join(f"{k}={rows[0]['values'].get(k)}" for k in common) + "`", ""]
    cols = ["job", *varying, *show, "epochs", "wall s", "status"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r, t in zip(rows, table, strict=True):
        status = f"{r['status']}: {t['error']}".replace("|", "/") if t["error"] else r["status"]
        if r["status"] == "pruned":  # an Optuna trial its pruner stopped (dlcourse.sweeps.pruning)
            status = f"pruned at epoch {r['metrics'].get('pruned_epoch')}"
        cells = [r["job"], *[_short(r["values"].get(k, "")) for k in varying],
                 *[_fmt(r["value"]) if n == opt else _fmt(r["flat"].get(n)) for n in show],
                 _fmt(t["epochs"]), _fmt(t["wall_time_s"]), status]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if seeds:
        lines += seed_lines(rows, varying, show, seeds, _fmt)
    if rerun and best_group is not None:
        lines += best_group_lines(best_group, varying, opt, _fmt, rerun)
    elif rerun:
        lines += ["", f"Best: job {best['job']}, {opt} = {_fmt(best['value'])}. Rerun it with:", "",
                  "```", rerun, "```"]
    return "\n".join(lines) + "\n"


def print_report(result: dict, sweep_dir: Path) -> None:
    print(result["markdown"], end="")
    print(f"summary: {sweep_dir / 'summary.md'} and summary.csv")
    print(f"TensorBoard (HParams tab): tensorboard --logdir {sweep_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dlcourse-summary",
        description="Summarise a sweep directory (also one still running or interrupted): "
                    "writes summary.csv and summary.md there and prints the table.")
    parser.add_argument("sweep_dir", help="e.g. outputs/iris_mlp/multirun/2024-05-01_12-00-00")
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    if not sweep_dir.is_dir():
        print(f"error: {sweep_dir} is not a directory", file=sys.stderr)
        sys.exit(2)
    try:
        result = summarize(sweep_dir)
    except DlcourseError as e:  # a job's file of the wrong shape, a summary file planted as a link
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    if not result["rows"]:
        print(f"error: no job directories (0/, 1/, ... with .hydra/overrides.yaml) in {sweep_dir}", file=sys.stderr)
        sys.exit(2)
    print_report(result, sweep_dir)
    if result["failed"]:  # some job ended without completing (failed, cancelled, timeout, ...)
        sys.exit(1)


if __name__ == "__main__":
    main()
