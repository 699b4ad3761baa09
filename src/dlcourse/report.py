"""Writing what a run produced: metrics.json, the HParams entry, the console summary."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Config groups whose values go into the HParams view (paths, hydra and callbacks do not).
HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler", "trainer")


def write_json(path: Path, obj) -> None:
    """Atomic write: a run killed mid-write never leaves a half file that parses as something else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


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
    out: dict = {"experiment": cfg.name, "seed": cfg.seed, "loss": cfg.loss}
    for group in HPARAM_GROUPS:
        _flatten(group, {k: v for k, v in (plain.get(group) or {}).items() if k != "_partial_"}, out)
    return {k: v for k, v in out.items() if not str(v).startswith("${")}


def print_summary(metrics: dict, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{metrics['experiment']}: {metrics['epochs']} epochs, {metrics['wall_time_s']:.1f} s, "
                        f"{metrics['params']:,} parameters")
    table.add_column("metric")
    table.add_column("val (best epoch)", justify="right")
    table.add_column("test", justify="right")
    names = sorted({k.split("/", 1)[1] for k in [*metrics["val"], *metrics["test"]] if "/" in k})
    for name in names:
        v, t = metrics["val"].get(f"val/{name}"), metrics["test"].get(f"test/{name}")
        table.add_row(name, "" if v is None else f"{v:.4f}", "" if t is None else f"{t:.4f}")
    console.print(table)
    console.print(f"run directory: {run_dir}")
    console.print(f"TensorBoard:   tensorboard --logdir {run_dir.parent}")
