"""Options compose: any experiment with any option, runs without an experiment, a user's own configs
and models. (Bad values and data errors: the catalogue in tests/test_integrity.py.)"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR, write_pngs, write_table
from dlcourse.app import main
from dlcourse.compose import compose, job_config
from dlcourse.config.validate import validate
from dlcourse.errors import ConfigError

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUPS = ("optimizer", "scheduler", "model", "data")
# Options that need the user's own data: any values do for composing and validating.
USER_DATA = {"csv": ["data.path=t.csv", "data.target=label"], "csv_series": ["data.path=s.csv"]}
FAST = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "~callbacks.model_summary", "~callbacks.figures"]


def options(group: str) -> list[str]:
    """The group's base options. A variant (`defaults: [/group/base@_here_]`, a base with other values, such
    as model=cnn_dropout) takes the inputs its base takes; each experiment composes with its own variants."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if "@_here_" not in p.read_text())


def choices() -> list[tuple[str, list[str]]]:
    """(group, overrides) to compose with each experiment: every option of every group, the optimizers
    and the schedulers (which never refuse each other) in pairs, so one composition checks two."""
    pairs = itertools.zip_longest(options("optimizer"), options("scheduler"))
    paired = [("optimizer+scheduler", [f"optimizer={o}"] * (o is not None) + [f"scheduler={s}"] * (s is not None))
              for o, s in pairs]
    return paired + [(group, [f"{group}={option}", *USER_DATA.get(option, [])]) for group in ("model", "data")
                     for option in options(group)]


def test_the_pairs_cover_every_option():
    chosen = {c for _, overrides in choices() for c in overrides if "." not in c.split("=")[0]}
    assert chosen == {f"{group}={option}" for group in GROUPS for option in options(group)}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_every_option(experiment):
    """`experiment=X group=option` validates for every option (no `~key` needed), except a model that
    cannot take the data's inputs, which is one line saying which models can."""
    for group, chosen in choices():
        overrides = [f"experiment={experiment}", *chosen]
        cfg = job_config(compose(overrides))
        try:
            validate(cfg)
        except ConfigError as e:
            if group == "data" and str(e).startswith("optimized_metric="):
                continue  # a classification experiment on regression data or back: its metric does not exist
            assert group in ("model", "data") and "models for" in str(e), (overrides, str(e))
            assert str(e).startswith("model="), str(e)


def test_no_option_is_named_after_an_experiment():
    """A recipe reads in its one file: its tuned options are named by what they hold (model=cnn_dropout),
    beside their base option, not in a folder per experiment or after the experiment that first used them."""
    for folder in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("experiment", "hparams_search")):
        assert not (folder / "experiment").exists(), folder
        named = {p.stem for p in folder.glob("*.yaml")} & set(EXPERIMENTS)
        assert not named, (folder.name, named)


def run(args: list[str], root: Path) -> dict:
    """The command line in-process (torch is already imported here); the run's metrics.json."""
    os.environ["DLCOURSE_ROOT"] = str(root)
    try:
        main([*args, *FAST])
    finally:
        os.environ.pop("DLCOURSE_ROOT")
    (metrics,) = root.glob("outputs/*/*/metrics.json")
    return json.loads(metrics.read_text())


@pytest.fixture
def table(tmp_path) -> Path:
    return write_table(tmp_path / "animals.csv")


@pytest.fixture
def pictures(tmp_path) -> Path:
    write_pngs(tmp_path / "pics", per_class=10, size=24)
    return tmp_path / "pics"


@pytest.mark.parametrize("args", [
    ["experiment=gaussian_mlp", "optimizer=adam", "data.n_train=200", "data.n_val=100", "data.n_test=200"],
    ["experiment=iris_mlp", "optimizer=sgd"],
    ["experiment=sine_rnn", "model=mlp", "data.n_series=300"],
], ids=lambda a: " ".join(a[:2]))
def test_an_experiment_with_another_option_runs(tmp_path, args):
    metrics = run(args, tmp_path)
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    assert metrics["experiment"] == args[0].split("=")[1]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_own_table_without_an_experiment_uses_neutral_defaults(tmp_path, table, optimizer):
    metrics = run(["data=csv", f"data.path={table}", "data.target=label", f"optimizer={optimizer}"], tmp_path)
    assert metrics["experiment"] == "csv-mlp" and metrics["class_names"] == ["cat", "dog", "fox"]
    (run_dir,) = (tmp_path / "outputs" / "csv-mlp").iterdir()
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert saved.data.batch_size == 32 and saved.callbacks.early_stopping.patience == 10
    assert saved.optimizer._target_.endswith("Adam" if optimizer == "adam" else "SGD")


@pytest.mark.parametrize("model", ["lenet5", "cnn", "mlp", "resnet"])
def test_own_images_with_any_image_model(tmp_path, pictures, model):
    metrics = run(["data=image_folder", f"data.root={pictures}", "data.image_size=16", f"model={model}",
                   "data.batch_size=8"], tmp_path)
    assert metrics["experiment"] == f"image_folder-{model}" and metrics["class_names"] == ["blue", "red"]


def test_a_users_own_config_dir_and_model(tmp_path, monkeypatch):
    """A model with keys no shipped model has (`width`, `head: cls`), in the user's package and config dir."""
    (tmp_path / "user_nets.py").write_text(
        "from typing import Literal\nfrom torch import nn\n\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self, input_shape, num_outputs, width: int = 8, head: Literal['cls', 'mean'] = 'cls'):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], width), nn.ReLU(),\n"
        "                                 nn.Linear(width, num_outputs))\n\n"
        "    def forward(self, x):\n        return self.net(x)\n")
    conf = tmp_path / "my_conf"
    (conf / "model").mkdir(parents=True)
    (conf / "experiment").mkdir()
    (conf / "model" / "tiny.yaml").write_text("_target_: user_nets.Tiny\nwidth: 8\nhead: cls\n")
    (conf / "experiment" / "my_iris.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: iris\n  - override /model: tiny\n\nname: my_iris\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    metrics = run(["--config-dir", str(conf), "experiment=my_iris", "model.width=16", "model.head=mean"], tmp_path)
    assert metrics["experiment"] == "my_iris" and metrics["params"] == 4 * 16 + 16 + 16 * 3 + 3
    sys.modules.pop("user_nets", None)


def test_a_users_model_is_validated_by_its_own_signature(tmp_path, capsys, monkeypatch):
    (tmp_path / "user_nets2.py").write_text(
        "from typing import Literal\nfrom torch import nn\n\nclass Tiny(nn.Module):\n"
        "    def __init__(self, input_shape, num_outputs, width: int = 8, head: Literal['cls', 'mean'] = 'cls'):\n"
        "        super().__init__()\n")
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tiny2.yaml").write_text("_target_: user_nets2.Tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    for bad, says in ((["+model.widht=3"], "did you mean model.width?"), (["+model.head=max"], "allowed: cls, mean"),
                      (["+model.width=wide"], "must be an integer")):
        with pytest.raises(SystemExit):
            main(["--config-dir", str(tmp_path / "conf"), "data=iris", "model=tiny2", *bad])
        assert says in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_home_paths_are_expanded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(["data=csv", "data.path=~/no_such_table.csv", "data.target=label"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{tmp_path}/no_such_table.csv" in err and "no such file" in err


def test_a_moved_key_in_a_users_experiment_names_its_new_place(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "old_conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "old.yaml").write_text("# @package _global_\ntrainer:\n  batch_size: 16\n")
    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["--config-dir", str(tmp_path / "old_conf"), "experiment=old"])
    assert "trainer.batch_size=16 is invalid: this key moved: set data.batch_size instead" in capsys.readouterr().err


def test_a_run_is_composed_once_and_validated_once(tmp_path, monkeypatch):
    """Also under cross-validation (each fold used to validate again)."""
    import dlcourse.app as app
    import dlcourse.compose as composing

    calls = {"compose": 0, "validate": 0}
    real_compose, real_validate = composing.hydra_compose, app.validate

    def counting_compose(*args, **kwargs):
        calls["compose"] += 1
        return real_compose(*args, **kwargs)

    def counting_validate(cfg):
        calls["validate"] += 1
        return real_validate(cfg)

    monkeypatch.setattr(composing, "hydra_compose", counting_compose)
    monkeypatch.setattr(app, "validate", counting_validate)
    metrics = run(["experiment=iris_mlp", "cv.folds=3"], tmp_path)
    assert metrics["cv"]["folds"] == 3
    assert calls == {"compose": 1, "validate": 1}
