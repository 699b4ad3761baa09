"""What a run writes about itself: metrics.json's record (the run card included), history.csv (one row
per epoch) and the flat hyperparameters of the HParams view."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcourse import runcard
from dlcourse.atomic_files import write_text
from dlcourse.intervals import accuracy_interval

# Config groups whose values go into the HParams view (paths, hydra and callbacks do not).
HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler", "task", "trainer")


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
