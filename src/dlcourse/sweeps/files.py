"""The files a sweep summary writes: summary.csv, summary.md and, for seed repeats, summary_seeds.csv."""

from __future__ import annotations

import csv
from pathlib import Path


def write_files(sweep_dir: Path, header, table, markdown: str, seeds, keys) -> None:
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
