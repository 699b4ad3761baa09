"""Repeats over seeds in a sweep (`seed=1,2,3`): mean and standard deviation per configuration."""

from __future__ import annotations

import statistics
from typing import Any


def _num(v) -> float | None:
    import math

    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


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


def seed_lines(rows, varying, show, seeds, fmt) -> list[str]:
    lines = ["", f"## Over seeds (mean ± std of {len({r['values'].get('seed') for r in rows})} seeds)", ""]
    seed_cols = [k for k in varying if k != "seed"]
    cols = [*seed_cols, "n", *[n for n in show if not n.endswith(" std")], "failed"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for g in seeds:
        cells = [*[g["config"].get(k, "") for k in seed_cols], g["n"],
                 *[f"{fmt(g.get(n + ' mean'))} ± {fmt(g.get(n + ' std'))}" if g.get(n + " mean") is not None else ""
                   for n in show if not n.endswith(" std")], g["failed"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def best_by_mean(rows, seeds, opt) -> tuple[dict | None, list]:
    """The configuration with the best mean over seeds (seed_groups sorts them) and its jobs in order."""
    group = seeds[0] if seeds and seeds[0].get(f"{opt} mean") is not None else None
    if group is None:
        return None, []
    members = [r for r in rows if all(r["values"].get(k) == v for k, v in group["config"].items())]
    return group, sorted(members, key=lambda r: r["job"])


def best_group_lines(group, varying, opt, fmt, rerun) -> list[str]:
    config = " ".join(f"{k}={v}" for k, v in group["config"].items() if k in varying) or "the common overrides"
    return ["", f"Best configuration by its mean over seeds: `{config}`, {opt} = {fmt(group[opt + ' mean'])} ± "
            f"{fmt(group[opt + ' std'])} ({group['n']} seeds). Rerun it (every seed) with:", "", "```", rerun, "```"]
