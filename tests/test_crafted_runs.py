"""Run directories, sweep directories, checkpoints and images from someone else are data: a crafted one
cannot make dlcourse write outside the run directory, follow a link out of it, or use memory its
size does not justify. Each case ends in one line naming the key or file, exit status 2, and every
file it aimed at untouched."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_in_process
from dlcourse.compose import conf_dir

TINY = ["experiment=iris_mlp", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "~callbacks.model_summary",
        "~callbacks.figures", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from dlcourse.app import execute

    run = tmp_path_factory.mktemp("finished") / "run"
    execute([*TINY, f"hydra.run.dir={run}"])
    return run


def digest(path: Path) -> dict[str, str]:
    """Every file below `path` (or the file itself) and its hash."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def copy_run(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(to)], check=True)
    return to


def add_override(run: Path, override: str) -> None:
    path = run / ".hydra" / "overrides.yaml"
    OmegaConf.save(OmegaConf.create([*OmegaConf.load(path), override]), path)


def one_line_error(result, *names: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(n in line for n in names), line
    return line


def train(args, cwd, capfd):
    from dlcourse.app import main

    return run_in_process(main, args, cwd, capfd)


def evaluate(args, cwd, capfd):
    from dlcourse.evaluate import main

    return run_in_process(main, args, cwd, capfd)


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


def test_an_option_written_as_a_path_cannot_load_a_file_that_configures_hydra(finished_run, tmp_path, victim, capfd):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "extra.yaml").write_text(f"""# @package _global_
hydra:
  job_logging:
    handlers:
      evil: {{class: logging.FileHandler, filename: {victim}, mode: w}}
    root: {{handlers: [console, file, evil]}}
""")
    add_override(run, "logger=" + os.path.relpath(run / "extra", conf_dir() / "logger"))
    before, kept = digest(run), digest(victim)
    line = one_line_error(train([f"ckpt_path={run}", "trainer.max_epochs=3"], tmp_path, capfd), "overrides.yaml",
                          "logger=../", "not an option of logger")
    assert "extra" in line and digest(run) == before and digest(victim) == kept


@pytest.mark.parametrize("how", ["command line", "config dir"])
def test_a_resume_config_is_checked_whole_hydra_log_handlers_included(finished_run, tmp_path, victim, capfd, how):
    run = copy_run(finished_run, tmp_path / "run")
    handler = f"{{class: logging.FileHandler, filename: {victim}, mode: w}}"
    args = [f"ckpt_path={run}", "trainer.max_epochs=3"]
    if how == "command line":
        args += [f"+hydra.job_logging.handlers.evil={handler}", "hydra.job_logging.root.handlers=[console,file,evil]"]
    else:  # an option of a config dir, chosen by name: allowed as a name, its hydra section still checked
        (tmp_path / "mine" / "logger").mkdir(parents=True)
        (tmp_path / "mine" / "logger" / "evil.yaml").write_text(
            f"# @package _global_\nhydra:\n  job_logging:\n    handlers:\n      evil: {handler}\n")
        add_override(run, "logger=evil")
        args = ["--config-dir", str(tmp_path / "mine"), *args]
    before, kept = digest(run), digest(victim)
    one_line_error(train(args, tmp_path, capfd), "hydra.job_logging.handlers.evil.filename", str(victim),
                   "outside the run directory")
    assert digest(run) == before and digest(victim) == kept


@pytest.mark.parametrize("override, names", [
    ("callbacks.model_checkpoint.filename=VICTIM", ["filename", "inside the run directory"]),
    ("callbacks.model_checkpoint.filename=../../../victim", ["filename", "../"]),
    ("logger.tensorboard.save_dir=VICTIM", ["save_dir", "output locations"]),
    ("+logger.mlflow.artifact_location=VICTIM", ["artifact_location"]),
    ("hydra/job_logging=disabled", ["hydra/job_logging", "Hydra"]),
])
def test_saved_overrides_may_not_name_files_outside_the_run(finished_run, tmp_path, victim, capfd, override, names):
    run = copy_run(finished_run, tmp_path / "run")
    add_override(run, override.replace("VICTIM", str(victim.with_suffix(""))))
    before = digest(run)
    one_line_error(train([f"ckpt_path={run}", "trainer.max_epochs=3"], tmp_path, capfd), "overrides.yaml", *names)
    assert digest(run) == before and not list(tmp_path.glob("victim.ckpt")) and not (tmp_path / "outputs").exists()


def test_a_checkpoints_folder_linked_into_another_run_is_refused(finished_run, tmp_path, capfd):
    other = copy_run(finished_run, tmp_path / "other")
    run = copy_run(finished_run, tmp_path / "run")
    subprocess.run(["rm", "-r", str(run / "checkpoints")], check=True)
    (run / "checkpoints").symlink_to(other / "checkpoints")
    before, theirs = digest(run), digest(other)
    for result in (train([f"ckpt_path={run}", "trainer.max_epochs=3"], tmp_path, capfd),
                   evaluate([f"ckpt_path={run}"], tmp_path, capfd)):
        one_line_error(result, f"{run / 'checkpoints'} is a link out of its run directory")
    one_line_error(evaluate([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], tmp_path, capfd), "last.ckpt",
                   "is a link out of its run directory")
    assert digest(other) == theirs and digest(run) == before


def test_a_train_log_linked_to_another_file_is_refused(finished_run, tmp_path, victim, capfd):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "train.log").unlink()
    (run / "train.log").symlink_to(victim)
    kept = digest(victim)
    one_line_error(train([f"ckpt_path={run}", "trainer.max_epochs=3"], tmp_path, capfd), "train.log", "link out")
    assert digest(victim) == kept


def test_best_checkpoint_counts_only_inside_the_run(finished_run, tmp_path, capfd):
    other = copy_run(finished_run, tmp_path / "other")
    (other / "checkpoints" / "elsewhere.ckpt").write_bytes((other / "checkpoints" / "last.ckpt").read_bytes())
    run = copy_run(finished_run, tmp_path / "run")
    record = json.loads((run / "metrics.json").read_text())
    record["best_checkpoint"] = str(other / "checkpoints" / "elsewhere.ckpt")  # no such file in the copy
    (run / "metrics.json").write_text(json.dumps(record))
    theirs = digest(other)
    one_line_error(evaluate([f"ckpt_path={run}"], tmp_path, capfd), "metrics.json", "best_checkpoint", "elsewhere.ckpt")
    assert digest(other) == theirs and not (run / "eval_test.json").exists()
    copied = copy_run(finished_run, tmp_path / "copied")  # best_checkpoint: the original's absolute path
    assert evaluate([f"ckpt_path={copied}"], tmp_path, capfd).returncode == 0
    evaluated = json.loads((copied / "eval_test.json").read_text())["checkpoint"]
    assert Path(evaluated).parent == copied / "checkpoints" and not (finished_run / "eval_test.json").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_malformed_metrics_json_under_eval_is_one_line(finished_run, tmp_path, capfd, text):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "metrics.json").write_text(text)
    one_line_error(evaluate([f"ckpt_path={run}"], tmp_path, capfd), str(run / "metrics.json"))
    assert not (run / "eval_test.json").exists()


def sweep_dir(root: Path) -> Path:
    for job, lr in ((0, 0.1), (1, 0.01)):
        (root / str(job) / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"optimizer.lr={lr}"]), root / str(job) / ".hydra" / "overrides.yaml")
        (root / str(job) / "metrics.json").write_text(json.dumps(
            {"status": "completed", "optimized_value": lr, "val": {"val/loss": lr}, "test": {}, "epochs": 1}))
    return root


def summary(args, cwd, capfd):
    from dlcourse.sweeps.summary import main

    return run_in_process(main, args, cwd, capfd)


def test_summary_writes_no_file_through_a_planted_link(tmp_path, victim, capfd):
    sweep = sweep_dir(tmp_path / "sweep")
    (sweep / "summary.md").symlink_to(victim)
    kept = digest(victim)
    one_line_error(summary([str(sweep)], tmp_path, capfd), str(sweep / "summary.md"), "link")
    assert digest(victim) == kept and not (sweep / "summary.csv").exists()
    (sweep / "summary.md").unlink()
    assert summary([str(sweep)], tmp_path, capfd).returncode == 0
    assert sorted(p.name for p in sweep.iterdir() if p.is_file()) == ["summary.csv", "summary.md"]  # no temp file


@pytest.mark.parametrize("name, text", [("metrics.json", "[1, 2]"), ("metrics.json", '{"val": [1]}'),
                                        ("metrics.json", "{broken"), (".hydra/overrides.yaml", "a: 1"),
                                        (".hydra/overrides.yaml", "[[1, 2]]"), (".hydra/overrides.yaml", "{x: ["),
                                        (".hydra/config.yaml", "[1, 2]")])
def test_summary_of_job_files_of_the_wrong_shape_is_one_line(tmp_path, capfd, name, text):
    sweep = sweep_dir(tmp_path / "sweep")
    (sweep / "1" / name).write_text(text)
    result = summary([str(sweep)], tmp_path, capfd)
    if name == ".hydra/config.yaml":  # read only for optimized_metric/mode: a file of another shape tells nothing
        assert result.returncode == 0 and (sweep / "summary.md").is_file(), result.stderr[-2000:]
        return
    one_line_error(result, str(sweep / "1" / name))
    assert not (sweep / "summary.md").exists()


def test_a_checkpoint_naming_files_outside_its_folder_is_refused(finished_run, tmp_path, victim, capfd):
    import torch

    run = copy_run(finished_run, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    (key,) = [k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint")]
    state = ckpt["callbacks"][key]
    for name, value in state.items():  # as if written here: Lightning restores what it names
        state[name] = value.replace(str(finished_run), str(run)) if isinstance(value, str) else value
    state["best_k_models"] = {state["best_model_path"]: state["best_model_score"],
                              str(victim): torch.tensor(99.0)}  # the worst "top-k" file: deleted on improvement
    last.unlink()
    torch.save(ckpt, last)
    kept = digest(victim)
    one_line_error(train([f"ckpt_path={run}", "trainer.max_epochs=4"], tmp_path, capfd), str(last), str(victim))
    assert digest(victim) == kept


def test_a_checkpoint_cannot_make_eval_download_into_a_folder_it_names(finished_run, tmp_path, capfd):
    import torch

    run = copy_run(finished_run, tmp_path / "run")
    last, target = run / "checkpoints" / "last.ckpt", tmp_path / "elsewhere"
    ckpt = torch.load(last, weights_only=True)
    ckpt["dlcourse_config"]["data"] = {"_target_": "dlcourse.data.mnist.MNISTDataModule", "root": str(target),
                                       "download": True, "batch_size": 32}
    torch.save(ckpt, last)
    line = one_line_error(evaluate([f"ckpt_path={last}"], tmp_path, capfd), "data.download=true")
    assert str(target) in line and not target.exists()  # asked for, not fetched: the user decides


def test_saved_overrides_cannot_make_a_resume_download_into_a_folder_they_name(finished_run, tmp_path, capfd):
    run, target = copy_run(finished_run, tmp_path / "run"), tmp_path / "elsewhere"
    for override in ("data=mnist", f"data.root={target}", "data.download=true"):
        add_override(run, override)
    line = one_line_error(train([f"ckpt_path={run}"], tmp_path, capfd), "data.download=true")
    assert str(target) in line and not target.exists()
