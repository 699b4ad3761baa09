"""The files a sweep summary reads (each job's .hydra/overrides.yaml and metrics.json: data, checked for
their shape) and writes: summary.csv, summary.md and, for seed repeats, summary_seeds.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from omegaconf import OmegaConf

from dlcourse.atomic_files import write_text
from dlcourse.errors import DataError

NOT_DLCOURSE = "this is not a sweep directory dlcourse wrote"


def read_overrides(job: Path) -> list[str]:
    """A job's saved overrides: a list of strings, or one line naming the file."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(saved, list) or not all(isinstance(o, str | int | float | bool) for o in saved):
        raise DataError(f"{path} is not a list of overrides; {NOT_DLCOURSE}")
    return [str(o) for o in saved]


def read_metrics(job: Path) -> dict:
    """A job's metrics.json: an object whose splits are objects, or one line naming the file."""
    path = job / "metrics.json"
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    shapes = {"val": dict, "test": dict, "val_std": dict, "overrides": list, "status": str}
    if not isinstance(metrics, dict) or any(metrics.get(k) is not None and not isinstance(metrics[k], t)
                                            for k, t in shapes.items()):
        raise DataError(f"{path} is not a dlcourse metrics record (an object with val and test objects); {NOT_DLCOURSE}")
    return metrics


def _csv(header, rows) -> str:
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def write_files(sweep_dir: Path, header, table, markdown: str, seeds, keys) -> None:
    """Each file whole or not at all (a temporary file renamed over it); a file planted as a link is
    refused, nothing is written through it."""
    names = ["summary.csv", "summary.md", *(["summary_seeds.csv"] if seeds else [])]
    for name in names:
        if (sweep_dir / name).is_symlink():
            raise DataError(f"{sweep_dir / name} is a link (to {(sweep_dir / name).readlink()}); dlcourse-summary "
                            "writes no file through a link: remove it")
    write_text(sweep_dir / "summary.csv", _csv(header, table), newline="")
    write_text(sweep_dir / "summary.md", markdown)
    if seeds:
        seed_header = list(dict.fromkeys(k for g in seeds for k in ["config", *g] if k != "config"))
        rows = [{**g["config"], **{k: v for k, v in g.items() if k != "config"}} for g in seeds]
        write_text(sweep_dir / "summary_seeds.csv", _csv([*[k for k in keys if k != "seed"], *seed_header], rows),
                   newline="")
