"""What the console tells a student: how a run ended, where its TensorBoard run is, and --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from dlcourse.train import train

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_summary_says_the_run_used_all_its_epochs_and_opens_this_run(cfg_factory, capsys):
    cfg = cfg_factory("experiment=iris_mlp", "trainer.max_epochs=2", "~callbacks.early_stopping")
    metrics = train(cfg)
    out = " ".join(capsys.readouterr().out.split())
    best = int(metrics["val"]["epoch"])  # metrics.json counts epochs from 1, as the console does
    assert 1 <= best <= 2
    assert f"ended: all 2 epochs (trainer.max_epochs=2); best epoch {best}, the one tested" in out
    # This run's directory, not its parent (every other run would appear too); rich may wrap the path.
    assert "".join(out.split()).endswith(f"tensorboard--logdir{cfg.paths.output_dir}")


def test_help_lists_every_option_of_every_group_with_its_defaults_without_torch():
    code = ("import sys\nfrom dlcourse.help import help_text\nprint(help_text())\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert text.rstrip().endswith("NO-TORCH")
    tokens = set(text.split())
    for group in ("experiment", "data", "model", "optimizer", "scheduler", "task", "trainer", "callbacks",
                  "logger", "hparams_search"):
        for path in sorted((CONF / group).glob("*.yaml")):
            assert f"  {path.stem} " in text or f"  {path.stem}\n" in text, f"{group}={path.stem}"
            if group == "experiment":
                continue
            data = yaml.safe_load(path.read_text()) or {}
            for key, value in data.items():
                if key.startswith("_") or key == "defaults" or isinstance(value, dict):
                    continue
                shown = "null" if value is None else str(value)
                assert f"{key}={shown}" in tokens or f"{key}={shown}" in text, f"{group}/{path.stem}: {key}"
    assert text.count("dlcourse-train ") >= 5  # the examples


def test_cross_validation_prints_one_model_summary_without_empty_columns(cfg_factory, capsys):
    from dlcourse.cv import cross_validate

    cfg = cfg_factory("experiment=iris_mlp", "trainer.accelerator=cpu", "trainer.max_epochs=1",
                      "trainer.enable_progress_bar=false", "cv.folds=3", fast=False)
    cross_validate(cfg)
    out = capsys.readouterr().out
    assert out.count("Trainable params") == 1  # the same model in every fold: one summary, for fold 1
    header = next(line for line in out.splitlines() if "Name" in line and "Type" in line)
    assert "Params" in header and "FLOPs" not in header and "Mode" not in header  # all 0 / all `train`
    assert "Total FLOPs" not in out


def test_progress_bar_counts_real_batches_and_samples_per_second(tmp_path, capfd):
    from conftest import run_here

    args = ["experiment=gaussian_mlp", "data.n_train=1000", "data.n_val=200", "data.n_test=200", "data.batch_size=50",
            "task.steps_per_call=5", "trainer.max_epochs=2", "trainer.accelerator=cpu", "~callbacks.model_summary"]
    result = run_here(args, tmp_path, capfd, env_extra={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    bar = next(line for line in result.stdout.splitlines() if line.startswith("Epoch 2/2"))
    # 20 batches of 50 in 4 calls of 5: the bar counts the 20 batches, and the rate is in samples
    assert "Epoch 2/2, batches of 50" in bar and " 20/20 " in bar and "samples/s" in bar, bar
