"""The files a sweep summary writes: summary.csv, summary.md and, for seed repeats, summary_seeds.csv
(each written whole or not at all: dlcourse.report.write_text)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dlcourse.report import write_text


def _csv(fieldnames, rows) -> str:
    buffer = io.StringIO(newline="")
    w = csv.DictWriter(buffer, fieldnames=fieldnames)
    w.writeheader()
    w.writerows(rows)
    return buffer.getvalue()


def write_files(sweep_dir: Path, header, table, markdown: str, seeds, keys) -> None:
    write_text(sweep_dir / "summary.csv", _csv(header, table), newline="")
    write_text(sweep_dir / "summary.md", markdown)
    if seeds:
        seed_header = list(dict.fromkeys(k for g in seeds for k in ["config", *g] if k != "config"))
        rows = [{**g["config"], **{k: v for k, v in g.items() if k != "config"}} for g in seeds]
        write_text(sweep_dir / "summary_seeds.csv", _csv([*[k for k in keys if k != "seed"],
                                                            *seed_header], rows), newline="")
