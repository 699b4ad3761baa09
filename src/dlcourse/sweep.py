"""Sweeps: the multirun summary, failure records, and the per-job set-up that Hydra's launchers need.

At the end of every multirun, `SweepCallback` writes `summary.csv` and `summary.md` in the sweep
directory: one row per job with its overridden values, final metrics, epochs, wall time and status
(a failed job shows its error line), best first by `optimized_metric`/`optimized_mode`, and the best
job's overrides as a command that reruns it. Repeats over seeds (`seed=1,2,3`) are also summarised
per configuration as mean and standard deviation (`summary_seeds.csv`). For a sweep that is still
running or was interrupted:

    dlcourse-summary outputs/iris_mlp/multirun/2024-05-01_12-00-00
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import logging
import math
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("dlcourse")

# Overrides that start a sweep rather than a run: left out of the "rerun the best job" command.
NOT_RERUN = ("hparams_search=", "hydra.", "+hydra.", "cv.fold=")
# Environment variables that Lightning's DDP launcher sets in the process that starts the ranks.
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_ENV_AT_FIRST_JOB: dict[str, str | None] | None = None


# -- failure records -----------------------------------------------------------------------------
def error_line(e: BaseException) -> str:
    from dlcourse.errors import DlcourseError

    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, DlcourseError) and text else f"{type(e).__name__}: {text}".rstrip(": ")


def record_failure(cfg: DictConfig, error: BaseException | str, run_dir: str | Path | None = None) -> Path | None:
    """Write `<run_dir>/metrics.json` with status "failed" and the error line (rank zero only), so the
    sweep summary lists the job. A completed record already there is left alone."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from dlcourse.report import write_json

    if getattr(rank_zero_only, "rank", 0) != 0:
        return None
    if run_dir is None:
        run_dir = OmegaConf.select(cfg, "paths.output_dir", default=None, throw_on_resolution_failure=False)
    if run_dir is None:
        return None
    path = Path(run_dir) / "metrics.json"
    if path.is_file():
        try:
            if json.loads(path.read_text()).get("status") == "completed":
                return path
        except (OSError, ValueError):
            pass

    def get(key):
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    write_json(path, {
        "experiment": get("name"),
        "status": "failed",
        "error": error if isinstance(error, str) else error_line(error),
        "run_dir": str(run_dir),
        "seed": get("seed"),
        "optimized_metric": get("optimized_metric"),
        "optimized_value": None,
    })
    return path


# -- reading a sweep directory ----------------------------------------------------------------------
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


def _sweep_mode(sweep_dir: Path, jobs: list[Path]) -> str:
    for cfg_file in [sweep_dir / "multirun.yaml", *(j / ".hydra" / "config.yaml" for j in jobs)]:
        if cfg_file.is_file():
            try:
                mode = OmegaConf.load(cfg_file).get("optimized_mode")
            except Exception:
                continue
            if mode in ("min", "max"):
                return mode
    return "min"


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per job directory: job, status, overrides (ordered list), metrics.json content."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for job in _job_dirs(sweep_dir):
        overrides: list[str] = []
        if (job / ".hydra" / "overrides.yaml").is_file():
            overrides = [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]
        metrics: dict = {}
        if (job / "metrics.json").is_file():
            try:
                metrics = json.loads((job / "metrics.json").read_text())
            except (OSError, ValueError):
                metrics = {}
        status = metrics.get("status") or "incomplete"  # still running, or killed before it finished
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
    mode = _sweep_mode(sweep_dir, [r["dir"] for r in rows])
    opt = next((r["metrics"].get("optimized_metric") for r in rows if r["metrics"].get("optimized_metric")), None)
    opt = opt or "val/loss"

    keys: list[str] = []
    for r in rows:
        r["values"] = dict(_parse_override(o) for o in r["overrides"])
        keys += [k for k in r["values"] if k not in keys]
    varying = [k for k in keys if len({r["values"].get(k) for r in rows}) > 1]
    common = [k for k in keys if k not in varying]
    metric_names: list[str] = []
    for split in ("val", "test"):
        for r in rows:
            metric_names += [k for k in (r["metrics"].get(split) or {}) if k != "epoch" and k not in metric_names]

    def score(r):
        v = _num(r["metrics"].get("optimized_value")) if r["status"] == "completed" else None
        return (v is None, 0.0 if v is None else (v if mode == "min" else -v), r["job"])

    rows.sort(key=score)
    for r in rows:
        m = r["metrics"]
        r["value"] = _num(m.get("optimized_value")) if r["status"] == "completed" else None
        r["flat"] = {**(m.get("val") or {}), **(m.get("test") or {})}
        if m.get("val_std"):
            r["flat"].update({f"{k} std": v for k, v in m["val_std"].items()})
    std_names = [f"{opt} std"] if any(f"{opt} std" in r["flat"] for r in rows) else []

    # summary.csv: every override key and every metric, machine-readable
    header = ["job", "status", *keys, opt, *std_names, *[n for n in metric_names if n != opt],
              "epochs", "wall_time_s", "error", "run_dir"]
    table = []
    for r in rows:
        m = r["metrics"]
        table.append({"job": r["job"], "status": r["status"], **{k: r["values"].get(k, "") for k in keys},
                      opt: r["value"], **{n: r["flat"].get(n) for n in [*std_names, *metric_names] if n != opt},
                      "epochs": m.get("epochs"), "wall_time_s": m.get("wall_time_s"),
                      "error": m.get("error", ""), "run_dir": str(r["dir"])})

    best = next((r for r in rows if r["value"] is not None), None)
    rerun = None
    if best is not None:
        args = [o.removesuffix("=null") if o.startswith("~") else o  # Hydra saves `~key` as `~key=null`
                for o in best["overrides"] if not o.startswith(NOT_RERUN)]
        rerun = "dlcourse-train " + " ".join(shlex.quote(a) for a in args)

    seeds = seed_groups(rows, keys, opt, metric_names, mode) if "seed" in varying else []

    # summary.md: the overrides that differ, the main metrics, status and error
    show = [opt, *std_names]
    split_of_opt, _, base = opt.partition("/")
    for extra in (f"{'test' if split_of_opt == 'val' else 'val'}/{base}", "val/loss", "test/loss"):
        if extra in metric_names and extra not in show:
            show.append(extra)
    n_failed = sum(r["status"] == "failed" for r in rows)
    n_done = sum(r["status"] == "completed" for r in rows)
    lines = [f"# Sweep summary: {sweep_dir}", "",
             f"{len(rows)} jobs: {n_done} completed, {n_failed} failed, {len(rows) - n_done - n_failed} incomplete. "
             f"Sorted by `{opt}` ({mode}imize).", ""]
    if common:
        lines += ["Common overrides: `" + " ".join(f"{k}={rows[0]['values'].get(k)}" for k in common) + "`", ""]
    cols = ["job", *varying, *show, "epochs", "wall s", "status"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r, t in zip(rows, table, strict=True):
        status = r["status"] if r["status"] != "failed" else f"failed: {t['error']}".replace("|", "/")
        cells = [r["job"], *[_short(r["values"].get(k, "")) for k in varying],
                 *[_fmt(r["value"]) if n == opt else _fmt(r["flat"].get(n)) for n in show],
                 _fmt(t["epochs"]), _fmt(t["wall_time_s"]), status]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if seeds:
        lines += ["", f"## Over seeds (mean ± std of {len({r['values'].get('seed') for r in rows})} seeds)", ""]
        seed_cols = [k for k in varying if k != "seed"]
        cols = [*seed_cols, "n", *[n for n in show if not n.endswith(" std")], "failed"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for g in seeds:
            cells = [*[g["config"].get(k, "") for k in seed_cols], g["n"],
                     *[f"{_fmt(g.get(n + ' mean'))} ± {_fmt(g.get(n + ' std'))}" if g.get(n + " mean") is not None else ""
                       for n in show if not n.endswith(" std")], g["failed"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if rerun:
        lines += ["", f"Best: job {best['job']}, {opt} = {_fmt(best['value'])}. Rerun it with:", "",
                  "```", rerun, "```"]
    markdown = "\n".join(lines) + "\n"

    if write and rows:
        with open(sweep_dir / "summary.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(table)
        (sweep_dir / "summary.md").write_text(markdown)
        if seeds:
            seed_header = list(dict.fromkeys(k for g in seeds for k in ["config", *g] if k != "config"))
            with open(sweep_dir / "summary_seeds.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=[*[k for k in keys if k != "seed"], *seed_header])
                w.writeheader()
                for g in seeds:
                    w.writerow({**g["config"], **{k: v for k, v in g.items() if k != "config"}})
    return {"rows": rows, "table": table, "markdown": markdown, "best": best, "rerun": rerun,
            "failed": n_failed, "completed": n_done, "seeds": seeds, "optimized_metric": opt, "mode": mode}


def seed_groups(rows, keys, opt, metric_names, mode) -> list[dict]:
    """Rows grouped by every override except the seed: n, failures, mean and std of each metric."""
    groups: dict[tuple, list] = {}
    for r in rows:
        config = tuple((k, r["values"].get(k)) for k in keys if k != "seed")
        groups.setdefault(config, []).append(r)
    out = []
    for config, members in groups.items():
        done = [r for r in members if r["status"] == "completed"]
        g: dict[str, Any] = {"config": dict(config), "n": len(done), "failed": sum(r["status"] == "failed" for r in members),
                             "seeds": " ".join(str(r["values"].get("seed")) for r in done)}
        for name in [opt, *[n for n in metric_names if n != opt]]:
            vals = [v for v in ((r["value"] if name == opt else _num(r["flat"].get(name))) for r in done) if v is not None]
            if vals:
                g[f"{name} mean"] = statistics.fmean(vals)
                g[f"{name} std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(g)
    key = f"{opt} mean"
    out.sort(key=lambda g: (g.get(key) is None, 0.0 if g.get(key) is None else (g[key] if mode == "min" else -g[key])))
    return out


def print_report(result: dict, sweep_dir: Path) -> None:
    print(result["markdown"], end="")
    print(f"summary: {sweep_dir / 'summary.md'} and summary.csv")
    print(f"TensorBoard (HParams tab): tensorboard --logdir {sweep_dir}")


# -- per-job set-up --------------------------------------------------------------------------------
def share_cpu_threads(config: DictConfig) -> None:
    """Parallel jobs on one machine (joblib launcher): each job gets cpu_count // n_jobs threads."""
    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_jobs = int(launcher.get("n_jobs") or -1)
    if n_jobs < 0:  # joblib's convention: -1 = all CPUs, -2 = all but one, ...
        n_jobs = max(1, cpus + 1 + n_jobs)
    threads = max(1, cpus // n_jobs)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    log.info("parallel job (joblib, n_jobs=%d): %d CPU threads of %d", n_jobs, threads, cpus)


def _ddp_subprocess_cmd(local_rank: int) -> tuple[list[str], str]:
    """Replaces Lightning's command for the extra DDP ranks under Hydra. Lightning's repeats the
    command line (in a multirun that includes `-m` and every sweep value, so each rank would start a
    whole sweep) and uses `hydra.run.dir` (a fresh timestamp, not the job's directory). Here every rank
    gets this job's own overrides and its directory: one run directory, written by rank zero."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "dlcourse.train", *[str(o) for o in hc.overrides.task],
               f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
               "hydra.output_subdir=null"]
    return command, get_original_cwd()


def install_ddp_fix() -> None:
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pl_launcher

    fabric_launcher._hydra_subprocess_cmd = _ddp_subprocess_cmd
    pl_launcher._hydra_subprocess_cmd = _ddp_subprocess_cmd


def reset_ddp_between_jobs() -> None:
    """Several DDP jobs in one process (a local multirun): the first job's launcher left LOCAL_RANK etc.
    in the environment and a process group behind; without a reset the next job would not start its
    ranks and would wait for them forever. Variables a cluster (SLURM, torchrun) set are kept."""
    global _ENV_AT_FIRST_JOB
    if _ENV_AT_FIRST_JOB is None:
        _ENV_AT_FIRST_JOB = {k: os.environ.get(k) for k in DDP_ENV}
        return
    changed = [k for k in DDP_ENV if os.environ.get(k) != _ENV_AT_FIRST_JOB[k]]
    if not changed:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for k in changed:
        if _ENV_AT_FIRST_JOB[k] is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = _ENV_AT_FIRST_JOB[k]


def _prepare_storage(config: DictConfig) -> None:
    """Optuna's sqlite storage needs its folder to exist before the study is created."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None, throw_on_resolution_failure=False)
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


class SweepCallback(Callback):
    """Hydra callback (conf/hydra/default.yaml): summaries, failure records, threads, DDP."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.done = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.done = False
        _prepare_storage(config)
        # A sweeper that raises (e.g. Optuna when every trial failed) skips on_multirun_end;
        # the summary is still written when the process ends.
        atexit.register(self._finish, quiet=False)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        share_cpu_threads(config)
        install_ddp_fix()
        reset_ddp_between_jobs()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status == JobStatus.FAILED:  # an exception that is not a DlcourseError
            run_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
            record_failure(config, job_return._return_value, run_dir)

    def _finish(self, quiet: bool = False) -> dict | None:
        if self.done or self.sweep_dir is None or not self.sweep_dir.is_dir():
            return None
        self.done = True
        result = summarize(self.sweep_dir)
        if result["rows"]:
            print_report(result, self.sweep_dir)
        return result

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        result = self._finish()
        if result and result["failed"]:
            print(f"error: {result['failed']} of {len(result['rows'])} jobs failed; "
                  f"see {self.sweep_dir / 'summary.md'}", file=sys.stderr)
            sys.stdout.flush()
            sys.exit(1)  # after every job ran (SystemExit passes through Hydra's callback guard)


# -- dlcourse-summary -------------------------------------------------------------------------------
def summary_main(argv: list[str] | None = None) -> None:
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
    result = summarize(sweep_dir)
    if not result["rows"]:
        print(f"error: no job directories (0/, 1/, ... with .hydra/overrides.yaml) in {sweep_dir}", file=sys.stderr)
        sys.exit(2)
    print_report(result, sweep_dir)


if __name__ == "__main__":
    summary_main()
