"""dlcourse from Python (dlcourse.run, dlcourse.sweep, the exceptions, a notebook): the same runs as
the command line, in this process, leaving the process as it found it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dlcourse
from conftest import REPO, run_cli

IRIS = ["experiment=iris_mlp", "seed=3", "trainer.max_epochs=3", "trainer.enable_progress_bar=false"]


def process_state(loggers: dict | None = None) -> tuple:
    """What a call must leave as it found it; of the loggers, those that existed before it."""
    root = logging.getLogger()
    names = loggers or {n for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    return (os.getcwd(), list(root.handlers), root.level, list(warnings.filters), list(sys.argv),
            {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate, logging.getLogger(n).level,
                 list(logging.getLogger(n).filters)) for n in names})


def test_run_equals_the_command_line_and_leaves_the_process_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli").mkdir()
    cli = run_cli(IRIS, cwd=tmp_path / "cli")
    assert cli.returncode == 0, cli.stderr[-2000:]
    (cli_run,) = (tmp_path / "cli" / "outputs" / "iris_mlp").iterdir()
    expected = json.loads((cli_run / "metrics.json").read_text())

    before = process_state()
    first = dlcourse.run(*IRIS)
    assert process_state(before[-1]) == before  # cwd, argv, logging handlers, warnings filters, environment
    second = dlcourse.run(*IRIS)      # again in the same process: the same numbers
    for result in (first, second):
        assert result.status == "completed"
        assert result.run_dir.parent == tmp_path / "outputs" / "iris_mlp"  # below the working directory
        assert result.metrics["test"] == expected["test"]  # every digit
        assert result.metrics["val"] == expected["val"]
    assert first.run_dir != second.run_dir

    history = first.history
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr"} <= set(history.columns)
    best = int(first.metrics["val"]["epoch"])  # counted from 1, as history's epoch column
    assert history.set_index("epoch").loc[best, "val/loss"] == pytest.approx(first.metrics["val"]["val/loss"])
    assert first.config.optimizer.lr == 0.01 and first.config.seed == 3
    assert {"confusion_matrix", "roc_curve"} <= set(first.figures)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in first.figures.values())
    page = first._repr_html_()
    assert page.count("<img") == len(first.figures) and "<table>" in page and "test accuracy" in page


@pytest.mark.parametrize("overrides", [
    ["experiment=iris_mlp", "optimizer.lr=-1"],                      # a value out of range
    ["experiment=iris_mlp", "optimiser=adam"],                       # a Hydra error, made one line
    ["experiment=iris_mlp", "model=lstm"],                           # an option that does not exist
    ["data=csv", "data.path=missing.csv", "data.target=label"],      # data that cannot be read
], ids=["range", "typo", "option", "data"])
def test_a_bad_input_raises_the_command_lines_line_and_writes_nothing(tmp_path, monkeypatch, capsys, overrides):
    from dlcourse.app import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(overrides)
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    with pytest.raises(dlcourse.DlcourseError) as error:
        dlcourse.run(*overrides)
    assert f"error: {error.value}" == line and "\n" not in str(error.value)
    assert not (tmp_path / "outputs").exists()


def test_config_errors_are_the_exported_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dlcourse.ConfigError, match=r"^model.dropout=1.5 is invalid"):
        dlcourse.run("experiment=iris_mlp", "model.dropout=1.5")
    with pytest.raises(TypeError, match="strings as on the command line"):
        dlcourse.run("experiment=iris_mlp", 0.01)


def test_sweep_returns_its_summary_and_each_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = process_state()
    sweep = dlcourse.sweep("experiment=iris_mlp", "optimizer.lr=0.003,0.03", "trainer.max_epochs=2",
                           "trainer.enable_progress_bar=false")
    assert process_state(before[-1]) == before
    assert sweep.failed_line is None
    assert len(sweep.summary) == 2 and len(sweep.jobs) == 2
    assert {j.status for j in sweep.jobs} == {"completed"}
    assert sorted(j.config.optimizer.lr for j in sweep.jobs) == [0.003, 0.03]
    best = min(sweep.jobs, key=lambda j: j.metrics["val"]["val/loss"])
    assert sweep.best.run_dir == best.run_dir and "optimizer.lr=" in sweep.rerun
    assert sweep.summary.iloc[0]["val/loss"] == pytest.approx(best.metrics["val"]["val/loss"])
    assert "|" in sweep._repr_markdown_()


def test_a_sweep_with_a_failing_job_returns_it_failed(tmp_path, monkeypatch):
    """The command line exits 1 (tests/test_sweeps.py); Python gets every job, the failed one with its error."""
    monkeypatch.chdir(tmp_path)
    from test_sweeps import TINY

    sweep = dlcourse.sweep(*TINY, "optimizer.lr=0.1,1e6")
    statuses = sorted(j.status for j in sweep.jobs)
    assert statuses == ["completed", "failed"]
    assert sweep.failed_line.startswith("1 of 2 jobs failed")
    failed = next(j for j in sweep.jobs if j.status == "failed")
    assert "non-finite" in failed.metrics["error"]


def test_import_dlcourse_leaves_other_libraries_alone():
    """torchmetrics' own plotting works after `import dlcourse` (it used to fail: pyplot hidden), and the
    import brings no torch and keeps matplotlib's settings."""
    code = ("import sys, dlcourse, matplotlib\n"
            "assert 'torch' not in sys.modules, 'import dlcourse imported torch'\n"
            "rc = dict(matplotlib.rcParams)\n"
            "import torch, torchmetrics\n"
            "m = torchmetrics.classification.BinaryAccuracy()\n"
            "m.update(torch.tensor([0.9, 0.2]), torch.tensor([1, 0]))\n"
            "fig, ax = m.plot()\n"
            "import dlcourse.train, dlcourse.metric_figures, dlcourse.api\n"
            "assert dict(matplotlib.rcParams) == rc, 'dlcourse changed matplotlib settings'\n"
            "print('plotted', type(fig).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "plotted Figure" in out.stdout


def test_example_notebook_runs_in_a_jupyter_kernel(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "examples" / "notebook.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = "EPOCHS = 2\nFINDER_STEPS = 20"
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError with the cell's traceback if a cell fails
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    shown = "".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("text", "")) for o in outputs)
    assert "<img" in shown and "iris_mlp" in shown                 # the result, with its figures inline
    assert "Epoch 1/2" in shown                                    # the progress bar in the notebook
    assert any("image/png" in o.get("data", {}) for o in outputs)  # figures and the history plot
    assert "error: optimizer.lr=-1 is invalid" in shown
    assert len(list((tmp_path / "outputs" / "iris_mlp").iterdir())) >= 3  # runs below the notebook's folder
    assert Path(tmp_path / "outputs" / "iris_mlp" / "multirun").is_dir()


def test_the_api_names_stay_functions_after_every_module_is_imported():
    """A module named like an API function (dlcourse/sweep/, dlcourse/export.py) would replace it as soon as
    anything imports that module."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(dlcourse.__path__, "dlcourse."):
        if not module.name.startswith("dlcourse.conf") and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in ("run", "sweep", "lr_find", "load", "export"):
        assert callable(getattr(dlcourse, name)) and not isinstance(getattr(dlcourse, name), type(dlcourse)), name


def test_metrics_json_holds_the_run_card(tmp_path, monkeypatch):
    """What produced the result: the command that reruns it, the software versions, the git commit of the
    repository it was started in (dirty when its files changed) and the machine."""
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    (tmp_path / "notes.txt").write_text("my study\n")
    (tmp_path / ".gitignore").write_text("outputs/\n")
    subprocess.run(["git", "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    card = dlcourse.run(*IRIS[:2], "trainer.max_epochs=1", "trainer.enable_progress_bar=false").metrics
    assert card["command"] == "dlcourse-train experiment=iris_mlp seed=3 trainer.max_epochs=1 trainer.enable_progress_bar=false"
    env = card["environment"]
    import lightning
    import torch

    assert env["torch"].split("+")[0] == torch.__version__.split("+")[0] and env["lightning"] == lightning.__version__
    assert env["dlcourse"] == dlcourse.__version__ and env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["git"] == {"commit": head, "dirty": False, "root": str(tmp_path.resolve())}
    assert env["device"]["threads"] >= 1 and env["device"]["cpu"] and env["device"]["gpu"] is None
    (tmp_path / "notes.txt").write_text("changed\n")
    again = dlcourse.run(*IRIS[:2], "trainer.max_epochs=1", "trainer.enable_progress_bar=false").metrics
    assert again["environment"]["git"]["dirty"] is True
