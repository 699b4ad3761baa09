"""What a run or a sweep left on disk, read back as objects: `dlcourse.run` and `dlcourse.sweep` return
them, and a notebook shows them (a summary table, the figures inline)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.errors import DlcourseError


@dataclass
class Result:
    """A run directory, read: what metrics.json holds, the per-epoch history (history.csv), the config
    it ran with (.hydra/config.yaml), its figures. Shown in a notebook as a short summary with the
    figures inline."""

    run_dir: Path
    metrics: dict = field(init=False)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        try:
            self.metrics = json.loads((self.run_dir / "metrics.json").read_text())
        except (OSError, ValueError) as e:
            raise DlcourseError(f"{self.run_dir} holds no readable metrics.json ({e})") from None
        if not isinstance(self.metrics, dict):  # data from a file: the shape dlcourse writes, or one line
            raise DlcourseError(f"{self.run_dir / 'metrics.json'} is not a JSON object; this is not a run directory "
                                "dlcourse wrote")

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))

    @property
    def history(self):
        """One row per epoch (`epoch` counted from 1), the train columns then the validation ones."""
        import pandas as pd

        path = self.run_dir / "history.csv"
        return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["epoch"])

    @property
    def config(self):
        """The run's config (OmegaConf DictConfig), as the run resolved it."""
        from omegaconf import OmegaConf

        return OmegaConf.load(self.run_dir / ".hydra" / "config.yaml")

    @property
    def figures(self) -> dict[str, Path]:
        folder = self.run_dir / "figures"
        return {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}

    @property
    def lr_find(self) -> dict | None:
        return self.metrics.get("lr_find")

    def load(self):
        """The trained model with its preprocessing (dlcourse.load of this run)."""
        from dlcourse.predictor import load

        return load(self.run_dir)

    def __repr__(self) -> str:
        return f"Result({self.metrics.get('experiment')!r}, status={self.status!r}, run_dir='{self.run_dir}')"

    def _repr_markdown_(self) -> str:
        from dlcourse.console_summary import ending_line, markdown_summary

        if self.status != "completed":
            return f"**{self.metrics.get('experiment')}**: {self.status} {self.metrics.get('error', '')}\n\n`{self.run_dir}`"
        if "val" not in self.metrics:
            return f"**{self.metrics.get('experiment')}**: {ending_line(self.metrics)}\n\n`{self.run_dir}`"
        return f"{markdown_summary(self.metrics, [])}\n\nrun directory: `{self.run_dir}`"

    def _repr_html_(self) -> str:
        import base64

        images = "".join(
            f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,'
            f'{base64.b64encode(p.read_bytes()).decode()}" style="max-width:360px"/>'
            f"<figcaption>{html.escape(name)}</figcaption></figure>" for name, p in self.figures.items())
        return f"{_markdown_html(self._repr_markdown_())}<div>{images}</div>"


@dataclass
class SweepResult:
    """A sweep directory, read: its summary (summary.csv, best first), the per-configuration mean and
    std over seeds (summary_seeds.csv, when seeds vary), each job's Result, the best job and the
    command that reruns it."""

    sweep_dir: Path | None
    jobs: list[Result]
    best: Result | None
    rerun: str | None
    failed_line: str | None

    @classmethod
    def of(cls, outcome) -> SweepResult:
        summary = outcome.summary or {}
        jobs = [Result(r["dir"]) for r in summary.get("rows", []) if (Path(r["dir"]) / "metrics.json").is_file()]
        best_row = summary.get("best")
        best = next((j for j in jobs if best_row is not None and j.run_dir == Path(best_row["dir"])), None)
        return cls(outcome.sweep_dir, jobs, best, summary.get("rerun"), outcome.failed_line)

    def _csv(self, name: str):
        import pandas as pd

        path = self.sweep_dir / name if self.sweep_dir is not None else None
        return pd.read_csv(path) if path is not None and path.is_file() else None

    @property
    def summary(self):
        """summary.csv as a DataFrame: one row per job, best first."""
        import pandas as pd

        table = self._csv("summary.csv")
        return table if table is not None else pd.DataFrame()

    @property
    def seeds(self):
        """summary_seeds.csv (mean and std over seeds per configuration), or None."""
        return self._csv("summary_seeds.csv")

    def __repr__(self) -> str:
        return f"SweepResult({len(self.jobs)} jobs, sweep_dir='{self.sweep_dir}')"

    def _repr_markdown_(self) -> str:
        path = self.sweep_dir / "summary.md" if self.sweep_dir is not None else None
        text = path.read_text() if path is not None and path.is_file() else "(no summary)"
        return text + (f"\n\n**{self.failed_line}**" if self.failed_line else "")


def _markdown_html(text: str) -> str:
    """The summary's few Markdown forms (bold, a table, code) as HTML, for notebooks that show HTML."""
    out, table = [], []

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-:")]
            cells = [[html.escape(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            escaped = html.escape(line)
            parts = escaped.split("**")
            escaped = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
            parts = escaped.split("`")
            out.append("<p>" + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)) + "</p>")
    flush()
    return "\n".join(out)
